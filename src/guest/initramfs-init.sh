#!/bin/busybox sh
# banger's initramfs init (PID 1 until switch_root).
#
# Loads the virtio and overlay modules, assembles the root filesystem as an
# overlay of the shared read-only image (lower) and the VM's own disk (upper),
# mounts the work disk at /root, configures the network, then hands over to
# the guest's init. Contract with the VMM driver, on the kernel command line:
#   banger.root=DEV   read-only image disk        (required)
#   banger.upper=DEV  per-VM upper disk           (required)
#   banger.work=DEV   per-VM work disk for /root  (optional)
#   banger.ip=ADDR/PREFIX banger.gw=ADDR          (optional)
#   banger.init=minimal|systemd                   (default minimal)
#   banger.probe                                  (print banger-probe-ok, power off)
# Progress and failures are printed with a "banger-init:" prefix on the
# console; on failure the VM powers off so the host sees the boot fail.

BB=/bin/busybox
$BB mkdir -p /proc /sys /dev /lower /upper /newroot
$BB mount -t proc proc /proc
$BB mount -t sysfs sysfs /sys
$BB mount -t devtmpfs devtmpfs /dev
$BB --install -s /bin
export PATH=/bin

fail() {
  echo "banger-init: FAILED: $*"
  sleep 1
  poweroff -f
}

# An acceleration probe (banger.probe on the command line) only proves the
# kernel reached userspace: say so and power off.
if grep -q 'banger.probe' /proc/cmdline; then
  echo "banger-probe-ok"
  poweroff -f
fi

for module in $(cat /etc/banger/modules); do
  insmod "/lib/modules/$module.ko" || fail "insmod $module"
done

root='' upper='' work='' ip='' gw='' init=minimal
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    banger.root=*) root="${arg#*=}" ;;
    banger.upper=*) upper="${arg#*=}" ;;
    banger.work=*) work="${arg#*=}" ;;
    banger.ip=*) ip="${arg#*=}" ;;
    banger.gw=*) gw="${arg#*=}" ;;
    banger.init=*) init="${arg#*=}" ;;
  esac
done
[ -n "$root" ] || fail "no banger.root= on the kernel command line"
[ -n "$upper" ] || fail "no banger.upper= on the kernel command line"

wait_for_device() {
  tries=0
  while [ ! -b "$1" ]; do
    tries=$((tries + 1))
    [ "$tries" -gt 200 ] && fail "device $1 did not appear"
    sleep 0.05
  done
}

wait_for_device "$root"
wait_for_device "$upper"
mount -t ext4 -o ro "$root" /lower || fail "mount image $root"
mount -t ext4 "$upper" /upper || fail "mount upper disk $upper"
mkdir -p /upper/upper /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work /newroot || fail "mount overlay root"

if [ -n "$work" ]; then
  wait_for_device "$work"
  mkdir -p /newroot/root
  mount -t ext4 "$work" /newroot/root || fail "mount work disk $work"
  # A workspace import unpacks into /root/.banger-staging-* and renames it into
  # place when complete; one still there was cut off (VM stopped mid-import).
  rm -rf /newroot/root/.banger-staging-*
fi

# banger builds both per-VM disks on the host with mkfs.ext4 -d, so their
# files carry the host user's uid. Make them root's once, on first boot.
if [ ! -e /upper/.banger-owned ]; then
  chown -R 0:0 /upper/upper
  [ -n "$work" ] && chown -R 0:0 /newroot/root
  touch /upper/.banger-owned
fi

ip link set lo up
if [ -n "$ip" ]; then
  ip link set eth0 up || fail "no eth0"
  ip addr add "$ip" dev eth0 || fail "ip addr add $ip"
  [ -n "$gw" ] && { ip route add default via "$gw" || fail "default route via $gw"; }
fi

echo "banger-init: root assembled, starting $init init"
umount /proc /sys
mount --move /dev /newroot/dev
case "$init" in
  systemd) exec switch_root /newroot /sbin/init ;;
  minimal) exec switch_root /newroot /banger/busybox sh /banger/init ;;
  *) fail "unknown banger.init=$init" ;;
esac
