"""The lab's guests, as lab/pillar/xen_nfsroot.sls defines them, the event
that boots one, and which of them a dom0's ``xl list`` shows running.

Their NFS server is the first dom0 (``labdom0-a``, ``10.99.0.1`` on the
lab's bridge network); every guest's home is that dom0.
"""

SERVER_ADDRESS = "10.99.0.1"
# The proven boot (steps 1 to 3), then moved live between the dom0s (7 to 10).
GUEST = "nfsguest"
GUEST_ROOT = "/srv/xen/guest"
GUEST_ADDRESS = "10.99.0.2"
# Booted by its event through the reactor (step 5), removed in step 6.
EVENT_GUEST = "nfsguest2"
EVENT_GUEST_ROOT = "/srv/xen/guest2"
# Named by a forged event: no pillar defines it.
FORGED_GUEST = "nosuchguest"
# Issue 13's two failures: a kernel refused before the boot, a root mount
# caught failing after it.
REFUSED_GUEST = "stockkernel"
UNMOUNTED_GUEST = "noexport"
# The event the formula's reactor boots a guest on.
BOOT_TAG = "xen_nfsroot/guest/boot"


def domains(xl_list):
    """The domain names of an ``xl list`` output."""
    return [line.split()[0] for line in xl_list.splitlines()[1:] if line.strip()]
