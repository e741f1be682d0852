"""The original procedure's data: the guest fstab of the seed and what
``domu_fstab.nfs_root`` makes of it, the seed's export."""

SEED_FSTAB = (
    "/dev/sda1               /                       ext3    defaults        1 1\n"
    "none                    /dev/pts                devpts  gid=5,mode=620  0 0\n"
    "none                    /dev/shm                tmpfs   defaults        0 0\n"
    "none                    /proc                   proc    defaults        0 0\n"
    "none                    /sys                    sysfs   defaults        0 0\n"
    "/dev/sdb2               swap                    swap    defaults        0 0\n"
)
SEED_FSTAB_RESULT = (
    "#xen-nfsroot# /dev/sda1               /                       ext3    defaults        1 1\n"
    "/dev/nfs                /                       nfs     defaults        0 0\n"
    "none                    /dev/pts                devpts  gid=5,mode=620  0 0\n"
    "none                    /dev/shm                tmpfs   defaults        0 0\n"
    "none                    /proc                   proc    defaults        0 0\n"
    "none                    /sys                    sysfs   defaults        0 0\n"
    "#xen-nfsroot# /dev/sdb2               swap                    swap    defaults        0 0\n"
)
SEED_OPTIONS = ["rw", "no_root_squash", "async", "no_subtree_check"]
SEED_EXPORT = [{"hosts": "192.0.2.10", "options": SEED_OPTIONS}]
SEED_EXPORT_LINE = b"/xen 192.0.2.10(rw,no_root_squash,async,no_subtree_check)\n"


def guest_root(parent):
    """A guest root directory ``parent/xen`` with an etc/ and the seed's fstab."""
    root = parent / "xen"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "fstab").write_text(SEED_FSTAB)
    return root
