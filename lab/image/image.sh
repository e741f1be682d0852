#!/usr/bin/env bash
# Stage 2 of the lab image: from the cached base tree, the dom0 disk image and
# the files QEMU boots.
#
#   image.sh BASE_ROOT OUT HOST_SALT_VENV
#
# OUT receives:
#   dom0.img      ext4 image of the dom0 (mkfs.ext4 -d: nothing is mounted)
#   xen.elf       the Xen 4.17 hypervisor (QEMU's -kernel; multiboot)
#   vmlinuz       the Debian kernel (dom0 and guests)
#   initrd.img    the dom0's own initramfs (lab/image/dom0-initramfs: busybox
#                 and the modules of its virtio disk and ext4 root, no udev)
#   minion-ID.pub the public key of each dom0's minion (lab/image/dom0/etc/lab/dom0s),
#                 for the master to accept
#   manifest      versions of what is inside
# The dom0 gets its boot scripts (lab/image/dom0), an identity per dom0
# (/etc/lab/identity/ID: minion key, ssh host key; the kernel argument
# lab_id=ID picks one at boot), and a root for each lab guest to export,
# /srv/xen/NAME (lab/image/guest + a static busybox), whose etc/fstab is a
# disk-based one for the formula to rewrite.
set -euo pipefail
base_root=$1 out=$2 venv=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$out/root

in_root() {
    unshare --mount --propagation private -- sh -c \
        'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$root" \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

echo "== copying the base tree"
cp -a "$base_root" "$root"
cp -R "$here/dom0/." "$root/"
mkdir -p "$root/etc/lab/initramfs/conf.d" "$root/etc/lab/initramfs/scripts" \
    "$root/etc/lab/initramfs/hooks" "$root/etc/exports.d" "$root/srv/unrelated" \
    "$root/etc/xen" "$root/var/log/xen/console"

kver=$(ls "$root/lib/modules")
[ "$(echo "$kver" | wc -l)" -eq 1 ] || { echo "expected one kernel, found: $kver" >&2; exit 1; }
# Stable names for the guests' pillar, whatever the kernel's ABI number.
ln -sf "vmlinuz-$kver" "$root/boot/vmlinuz-guest"
echo "== small initramfs for kernel $kver"
in_root mkinitramfs -d /etc/lab/initramfs -o /boot/initrd-small.img "$kver"
rm -f "$root/boot/initrd.img-$kver" "$root/initrd.img" "$root/initrd.img.old"
echo "== the dom0's own initramfs"
python3 "$here/dom0-initramfs/build.py" "$root" "$kver" "$out/initrd.img"

echo "== the minion's Python: entry points read once per process"
site=$(echo "$root"/opt/salt/lib/python3.*/site-packages)
[ -d "$site" ] || { echo "no site-packages in $root/opt/salt" >&2; exit 1; }
cp "$here/dom0-python/lab_entry_points.py" "$here/dom0-python/lab-entry-points.pth" "$site/"
in_root /opt/salt/bin/python -c 'import importlib.metadata as m, lab_entry_points as l
assert m.entry_points is l.entry_points'

echo "== guest roots"
guest_roots="guest guest2 stockkernel noexport"
for guest in $guest_roots; do
    groot=$root/srv/xen/$guest
    mkdir -p "$groot"/{bin,sbin,etc,dev,proc,sys,run,tmp,root}
    cp -R "$here/guest/." "$groot/"
    cp "$root/bin/busybox" "$groot/bin/busybox"
    ln -s busybox "$groot/bin/sh"
    for applet in init poweroff reboot halt; do
        ln -s ../bin/busybox "$groot/sbin/$applet"
    done
    chmod 1777 "$groot/tmp"
done

echo "== an identity per dom0: minion key, ssh host key"
rm -f "$root"/etc/ssh/ssh_host_*
dom0s=$(awk '!/^#/ && NF { print $1 }' "$root/etc/lab/dom0s")
for id in $dom0s; do
    identity=$root/etc/lab/identity/$id
    mkdir -p "$identity"
    "$venv/bin/python" - "$identity" <<'EOF'
import pathlib
import sys

import salt.crypt

keydir = pathlib.Path(sys.argv[1])
private, public = salt.crypt.gen_keys(2048)
(keydir / "minion.pem").write_text(private)
(keydir / "minion.pem").chmod(0o400)
(keydir / "minion.pub").write_text(public)
EOF
    in_root ssh-keygen -q -t ed25519 -N '' -C "root@$id" \
        -f "/etc/lab/identity/$id/ssh_host_ed25519_key"
    cp "$identity/minion.pub" "$out/minion-$id.pub"
done

echo "== boot files"
xen_gz=$(ls "$root"/boot/xen-4.17-amd64.gz)
gunzip -c "$xen_gz" >"$out/xen.elf"
cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
{
    echo "kernel $kver"
    echo "xen $(in_root dpkg-query -W -f='${Version}' xen-hypervisor-4.17-amd64)"
    echo "nfs-kernel-server $(in_root dpkg-query -W -f='${Version}' nfs-kernel-server)"
    echo "openssh-server $(in_root dpkg-query -W -f='${Version}' openssh-server)"
    echo "salt $(in_root /opt/salt/bin/python -c 'import salt.version; print(salt.version.__version__)')"
    echo "guest initrd $(stat -c %s "$root/boot/initrd-small.img") bytes"
    echo "dom0 initrd $(stat -c %s "$out/initrd.img") bytes"
} >"$out/manifest"
cat "$out/manifest"

echo "== dom0.img"
truncate -s 3G "$out/dom0.img"
mkfs.ext4 -q -L labdom0 -d "$root" "$out/dom0.img"
rm -rf "$root"
