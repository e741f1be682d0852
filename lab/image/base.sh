#!/usr/bin/env bash
# Stage 1 of the lab image: a Debian bookworm tree with Xen 4.17, the Debian
# kernel, the kernel NFS server and a salt-minion (Salt from PyPI in a venv at
# /opt/salt).  Slow (debootstrap + pip), so lab/build caches its result by a
# hash of this file, the package list and the Salt release.
#
#   base.sh ROOT MIRROR SALT_RELEASE HOST_PIP
#
# ROOT must not exist.  HOST_PIP builds the wheels the chroot cannot build
# (it has no compiler).  Nothing is mounted outside a private mount namespace.
set -euo pipefail
root=$1 mirror=$2 salt_release=$3 host_pip=$4
here=$(cd "$(dirname "$0")" && pwd)

packages=$(grep -v '^#' "$here/packages" | paste -sd, -)
echo "== debootstrap bookworm from $mirror"
unshare --mount --propagation private -- \
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
    >"$root.debootstrap.log" 2>&1 || {
    tail -30 "$root.debootstrap.log" >&2
    echo "debootstrap failed (log: $root.debootstrap.log)" >&2
    exit 1
}

# Run a command inside ROOT with /proc mounted in a private mount namespace.
in_root() {
    unshare --mount --propagation private -- sh -c \
        'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$root" \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

echo "== salt-minion $salt_release in /opt/salt (pip in the chroot)"
# timelib has no wheel for this Python and the chroot has no compiler:
# build its wheel with the host's pip (same Python minor version, same libc).
mkdir -p "$root/tmp/wheels"
"$host_pip" wheel -q --no-deps timelib -w "$root/tmp/wheels" >&2
# pip inside the chroot needs the host's CA bundle and resolver configuration.
cp /etc/ssl/certs/ca-certificates.crt "$root/tmp/host-ca.crt"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
in_root python3 -m venv /opt/salt
in_root env PIP_CERT=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    /opt/salt/bin/pip install -q --find-links /tmp/wheels "salt==$salt_release"
in_root /opt/salt/bin/salt-call --version
rm -rf "$root/tmp/wheels" "$root/tmp/host-ca.crt" "$root/var/cache/apt/archives/"*.deb
: >"$root/etc/resolv.conf"
