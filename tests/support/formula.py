"""Where the example pillar (pillar/xen_nfsroot.sls) puts things on the test
machine, for the integration tests (all inside tests/isolate's namespace)."""

import pathlib

GUEST_ROOTS = {"XenGuest": pathlib.Path("/xen"), "StaticGuest": pathlib.Path("/srv/xen/static")}
KERNELS = [
    pathlib.Path("/boot/vmlinuz-2.6.18-53.1.14.el5.myxen"),
    pathlib.Path("/boot/vmlinuz-guest"),
]
EXPORTS_FILE = pathlib.Path("/etc/exports.d/xen-nfsroot.exports")
CONFIG_DIR = pathlib.Path("/etc/xen")
