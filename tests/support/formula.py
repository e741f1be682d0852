"""Where the example pillar (pillar/xen_nfsroot.sls) puts things on the test
machine, for the integration tests (all inside tests/isolate's namespace)."""

import pathlib

from xen_nfsroot_lib import mounts

GUEST_ROOTS = {"XenGuest": pathlib.Path("/xen"), "StaticGuest": pathlib.Path("/srv/xen/static")}
KERNELS = [
    pathlib.Path("/boot/vmlinuz-2.6.18-53.1.14.el5.myxen"),
    pathlib.Path("/boot/vmlinuz-guest"),
]
EXPORTS_FILE = pathlib.Path("/etc/exports.d/xen-nfsroot.exports")
#: The NFS server's own fstab (where domu_root.confined keeps its bind mounts).
SERVER_FSTAB = pathlib.Path("/etc/fstab")


def mounts_at(path):
    """The live mounts stacked at path (this process's mountinfo), bottom first."""
    with open(mounts.MOUNTINFO, encoding="utf-8") as handle:
        return [mount for mount in mounts.parse(handle.read())
                if mount.mount_point == str(path)]
CONFIG_DIR = pathlib.Path("/etc/xen")
