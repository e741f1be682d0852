#!py
"""
The NFS server side: packages and service, then for each guest this minion
exports: its root filesystem in place (optionally unpacked once from an
archive, never into a root that exists), the guest's fstab turned to an NFS
root, and its export; one ``exportfs -ra`` at the end of the run, and only
when an export changed. A guest marked absent loses its export (its files
are left alone).

Arguments come from xen_nfsroot.guests, which validated the pillar; the
package and service names from map.jinja.

Python rather than Jinja and YAML: this SLS grows by three states per
guest, and at a thousand guests Salt's pure-Python YAML parser took longer
to read it than the states took to run (bench/notes.md).
"""

# map.jinja's merge of defaults.yaml, the os_family map and pillar
# xen_nfsroot:server, as data.
SERVER_MAP = '{% from "xen_nfsroot/map.jinja" import server with context %}{{ server | json }}'


def _server():
    return __salt__["slsutil.renderer"](
        string=SERVER_MAP, default_renderer="jinja|json", saltenv=saltenv
    )


def _args(mapping):
    """State arguments from a mapping, leaving out those that are None."""
    return [{key: value} for key, value in mapping.items() if value is not None]


def run():
    # __pillar__, not pillar.get: Salt 3008 masks pillar.get's values in
    # #!py files.
    selection = {}
    if "xen_nfsroot_guest" in __pillar__:
        selection["only"] = __pillar__["xen_nfsroot_guest"]
    guests = __salt__["xen_nfsroot.guests"]("server", **selection)
    high = {}
    if not guests:
        return high
    server = _server()
    if server["manage_packages"]:
        high["xen_nfsroot-server-packages"] = {"pkg.installed": [{"pkgs": server["packages"]}]}
    if server["manage_service"]:
        service = [{"name": server["service"]}, {"enable": True}]
        if server["manage_packages"]:
            service.append({"require": [{"pkg": "xen_nfsroot-server-packages"}]})
        high["xen_nfsroot-server-service"] = {"service.running": service}

    def exports():
        return [{"exports": server["exports_file"]}, {"reload": False}]

    for name, guest in guests.items():
        export_id = "xen_nfsroot-export-" + name
        if guest["absent"]:
            high[export_id] = {"nfs_export.absent": [{"name": guest["nfs_root"]}, *exports()]}
            continue

        root_id = "xen_nfsroot-root-" + name
        if guest["root_archive"]:
            high[root_id] = {
                "domu_root.populated": [{"name": guest["nfs_root"]}, *_args(guest["root_archive"])]
            }

        fstab_id = "xen_nfsroot-fstab-" + name
        fstab = guest["states"]["domu_fstab"]
        if fstab:
            args = _args(fstab)
            if guest["root_archive"]:
                args.append({"require": [{"domu_root": root_id}]})
            high[fstab_id] = {"domu_fstab.nfs_root": args}

        args = [*_args(guest["states"]["nfs_export"]), *exports()]
        if fstab:
            args.append({"require": [{"domu_fstab": fstab_id}]})
        high[export_id] = {"nfs_export.present": args}

    high["xen_nfsroot-exports-applied"] = {
        "nfs_export.reloaded": [{"require": ["xen_nfsroot-export-" + name for name in guests]}]
    }
    return high
