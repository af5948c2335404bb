/**
 * QEMU parses most option strings (`-drive`, `-netdev`, `-chardev`, `-qmp
 * unix:…`, `-name`) as `key=value,key=value`, where a comma ends a value. A
 * comma that belongs to the value is written twice; nothing else needs
 * escaping. Every value from outside banger's control (paths above all: an
 * image registered from `/tmp/a,b.ext4`) goes through this, so it can neither
 * break the option string nor inject options of its own (`x,readonly=off`).
 * Options QEMU takes as a whole argument (`-kernel`, `-initrd`, `-append`)
 * must not be escaped.
 */
export function qemuOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}
