#!py
"""
The dom0 side: for each guest this minion runs, its kernel (and initramfs)
in place, its config written and, with autostart, the guest booted (or
booted anyway with the inline pillar ``xen_nfsroot_boot: true``, which the
orchestration passes for a guest it was asked to boot by name). A guest
marked absent is stopped and its config removed.

Arguments come from xen_nfsroot.guests, which validated the pillar. Python
rather than Jinja and YAML for the same reason as server.sls.
"""


def run():
    # __pillar__, not pillar.get: Salt 3008 masks pillar.get's values in
    # #!py files.
    selection = {}
    if "xen_nfsroot_guest" in __pillar__:
        selection["only"] = __pillar__["xen_nfsroot_guest"]
    guests = __salt__["xen_nfsroot.guests"]("dom0", **selection)
    boot = __pillar__.get("xen_nfsroot_boot", False) is True
    minion_id = __grains__["id"]
    high = {}
    # A minion that is also the NFS server of its guests boots them only
    # after their exports are applied.
    if any(guest["nfs_server"] == minion_id for guest in guests.values()):
        high["include"] = ["xen_nfsroot.server"]
    managed = set()

    for name, guest in guests.items():
        guest_id = "xen_nfsroot-guest-" + name
        if guest["absent"]:
            high[guest_id] = {
                "xen_guest.absent": [{"name": name}, {"config_dir": guest["config_dir"]}]
            }
            continue

        require = []
        for file in ("kernel", "ramdisk"):
            source = guest[file + "_source"]
            if not source:
                continue
            file_id = "xen_nfsroot-file-" + guest[file]
            require.append({"file": file_id})
            if guest[file] in managed:
                continue
            managed.add(guest[file])
            args = [{"name": guest[file]}, {"source": source}]
            if guest[file + "_source_hash"]:
                args.append({"source_hash": guest[file + "_source_hash"]})
            args += [{"mode": "0644"}, {"makedirs": True}]
            high[file_id] = {"file.managed": args}
        if guest["nfs_server"] == minion_id:
            require.append({"nfs_export": "xen_nfsroot-exports-applied"})

        running = guest["autostart"] or boot
        args = [{key: value} for key, value in guest["states"]["xen_guest"].items()
                if value is not None]
        if running:
            args.append({"restart_on_change": guest["restart_on_change"]})
        if require:
            args.append({"require": require})
        state = "xen_guest.running" if running else "xen_guest.configured"
        high[guest_id] = {state: args}
    return high
