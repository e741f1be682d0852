#!py
"""
One live migration, for the orchestration orch.xen_nfsroot_migrate: on the
source dom0 (inline pillar ``xen_nfsroot_migration: {from, to}`` names it)
``xen_guest.migrated`` of the guest ``xen_nfsroot_guest``, on the target
``xen_guest.received``. Every argument comes from xen_nfsroot.state_data.
"""


def run():
    return __salt__["xen_nfsroot.state_data"](
        "migrate", migration=__pillar__.get("xen_nfsroot_migration"),
        only=__pillar__.get("xen_nfsroot_guest"))
