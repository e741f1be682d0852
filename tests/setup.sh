# Shared by tests/run and lab/run: install Debian packages and the Salt
# virtual environments. Sourced, not executed.

# Salt releases the project is tested against; the first one is the default.
# 3008.5 and 3007.17 need a newer certifi than the package index here holds.
SALT_RELEASES=(3008.4 3007.16)
# zstd and lz4: guest kernels and initramfs images compressed with them (guest_kernel).
# openssh-server and openssh-client: the migration trust's sshd, ssh and ssh-keygen
# (tests/functional/states/test_xen_migrate.py).
# libxenmisc4.17: Xen's libxlutil.so.4.17, xl's own config reader, which the xl.cfg
# writer is tested against (tests/support/libxlutil.py; no hypervisor needed).
# linux-libc-dev: the kernel's <linux/mount.h>, the mount(2) flags confined roots
# are mounted with (tests/unit/utils/test_mounts.py).
TEST_DEBIAN_PACKAGES=(nfs-kernel-server zstd lz4 openssh-server openssh-client libxenmisc4.17
                      linux-libc-dev)
# The QEMU Xen lab (lab/run, the end-to-end test).
LAB_DEBIAN_PACKAGES=(qemu-system-x86 qemu-utils debootstrap e2fsprogs)
CACHE_DIR=${XEN_NFSROOT_CACHE:-/var/cache/xen-nfsroot}

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: the tests need mount namespaces and the real exportfs" >&2
    exit 1
fi

install_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "== apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# salt_venv RELEASE: print the path of a virtual environment holding Salt
# RELEASE and this checkout (editable, with the test extra), creating or
# refreshing it when needed.
salt_venv() {
    local release=$1 venv stamp want
    venv=$CACHE_DIR/venv-salt-$release
    stamp=$venv/.xen-nfsroot-stamp
    want="$PWD $(sha256sum setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "== virtual environment for Salt $release in $venv" >&2
        mkdir -p "$CACHE_DIR"
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check \
            "salt==$release" -e ".[test]" >&2
        echo "$want" >"$stamp"
    fi
    echo "$venv"
}
