#!/banger/busybox sh
# banger's minimal guest init: PID 1 after switch_root in --init minimal VMs.
# Mounts the kernel filesystems, sets the hostname, and execs busybox init,
# which runs sshd (respawning it) and reaps every orphaned process. It reads
# /etc/inittab, which banger writes to the VM's upper disk.
BB=/banger/busybox
$BB mount -t proc proc /proc
$BB mount -t sysfs sysfs /sys
$BB mkdir -p /dev/pts /dev/shm
$BB mount -t devpts -o gid=5,mode=620 devpts /dev/pts
$BB mount -t tmpfs -o mode=1777 tmpfs /dev/shm
$BB mount -t tmpfs -o mode=0755 tmpfs /run
$BB mount -t tmpfs -o mode=1777 tmpfs /tmp
$BB mkdir -p /run/sshd
$BB hostname -F /etc/hostname
echo "banger-init: minimal init up"
exec $BB init
