#!py
"""
The dom0 side: for each guest this minion runs, its kernel (and initramfs)
in place, its config written and, with autostart, the guest booted (or
booted anyway with the inline pillar ``xen_nfsroot_boot: true``, which the
orchestration passes for a guest it was asked to boot by name), its boot
proven (kernel checked before, console watched after; a guest whose last
boot failed is booted again only with ``xen_nfsroot_retry: true``, which
the orchestration passes for ``retry: true``). A guest marked absent is
stopped and its config removed. The inline pillar ``xen_nfsroot_guest``
keeps one guest, ``xen_nfsroot_guests`` (a list: the orchestration's one
boot step on all its dom0s) those it names; the guests a run boots boot
at once (xen_nfsroot.state_data).

Every state, argument and requisite comes from xen_nfsroot.state_data,
which validated the pillar; this file only hands it over (Python rather than
Jinja and YAML for the same reason as server.sls).
"""


def run():
    # __pillar__, not pillar.get: Salt 3008 masks pillar.get's values in
    # #!py files.
    selection = {}
    if "xen_nfsroot_guest" in __pillar__:
        selection["only"] = __pillar__["xen_nfsroot_guest"]
    if "xen_nfsroot_guests" in __pillar__:
        selection["among"] = __pillar__["xen_nfsroot_guests"]
    boot = __pillar__.get("xen_nfsroot_boot", False) is True
    retry = __pillar__.get("xen_nfsroot_retry", False) is True
    return __salt__["xen_nfsroot.state_data"]("dom0", boot=boot, retry=retry, **selection)
