#!py
"""
The NFS server's confirmation that a guest booted by the orchestration
mounted its root: for each guest this minion exports (or the one the inline
pillar ``xen_nfsroot_guest`` names), ``nfs_export.mounted`` with the guest's
address. Where the server cannot tell, it warns instead of failing.
"""


def run():
    selection = {}
    if "xen_nfsroot_guest" in __pillar__:
        selection["only"] = __pillar__["xen_nfsroot_guest"]
    return __salt__["xen_nfsroot.state_data"]("mounted", **selection)
