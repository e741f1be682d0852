#!py
"""
The NFS server side: for each guest this minion exports, its root
filesystem (populated once from an archive if pillar names one), its fstab
turned to an NFS root and its export; one ``exportfs -ra`` at the end of the
run, and only when an export needs it. A guest marked absent loses its
export (its files are left alone). The packages and the service come from
``xen_nfsroot.packages`` (map.jinja).

Every state, argument and requisite comes from xen_nfsroot.state_data,
which validated the pillar; this file only hands it over. Python rather than
Jinja and YAML: at a thousand guests Salt's pure-Python YAML parser took
longer to read the rendered file than the states took to run (bench/notes.md).
"""


def run():
    # __pillar__, not pillar.get: Salt 3008 masks pillar.get's values in
    # #!py files.
    selection = {}
    if "xen_nfsroot_guest" in __pillar__:
        selection["only"] = __pillar__["xen_nfsroot_guest"]
    return __salt__["xen_nfsroot.state_data"]("server", **selection)
