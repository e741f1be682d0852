#!py
"""
Orchestration: live migration of a guest between its dom0s, or the
evacuation of a dom0 (every guest running there moved to another of its
dom0s, one after the other).

    salt-run state.orchestrate orch.xen_nfsroot_migrate pillar='{"guest": "XenGuest", "to": "dom0-b"}'
    salt-run state.orchestrate orch.xen_nfsroot_migrate pillar='{"evacuate": "dom0-a"}'

Before anything moves, the guest's dom0s are asked directly where it runs
(xen_nfsroot.migration_plan: a dom0 that does not answer, a guest running
nowhere or twice, ``to`` not among its dom0s, two toolstacks: refused with
the reason, nothing moves). Then, for each move: both dom0s' migration keys,
the mine's copy of their public keys and domain lists sent again, both
dom0s' side of the guest (dom0.sls: kernel, ramdisk, config and the
trust of the other's key; a target without the guest's kernel fails here),
the migration on the source (xen_guest.migrated) and the arrival on the
target (xen_guest.received); a failed step stops the ones after it.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError


def _step(tgt, sls, pillar, require):
    args = [{"tgt": tgt}, {"sls": [sls]}, {"pillar": pillar}]
    if isinstance(tgt, list):
        args.append({"tgt_type": "list"})
    if require:
        args.append({"require": [{"salt": require}]})
    return {"salt.state": args}


def _mine(tgt, function, kwarg, require):
    """The mine's copy of ``function`` sent again by both dom0s (the states
    after read it: the other's key, where the guest runs)."""
    return {"salt.function": [{"name": "mine.send"}, {"tgt": tgt}, {"tgt_type": "list"},
                              {"arg": [function]}, {"kwarg": kwarg}, {"expect_minions": True},
                              {"require": [{"salt": require}]}]}


def run():
    asked = {key: __pillar__[key] for key in ("guest", "to", "evacuate") if key in __pillar__}
    try:
        moves = __salt__["xen_nfsroot.migration_plan"](**asked)
    except (SaltInvocationError, CommandExecutionError) as err:
        return {"xen_nfsroot-migration-refused": {
            "test.fail_without_changes": [{"comment": f"xen_nfsroot: {err}"}]}}
    high, previous = {}, None
    for move in moves:
        name, both = move["guest"], [move["from"], move["to"]]
        guest = {"xen_nfsroot_guest": name}
        migration = dict(guest, xen_nfsroot_migration={"from": move["from"], "to": move["to"]})
        ids = [f"xen_nfsroot-{step}-{name}"
               for step in ("keys", "keys-mined", "domains-mined", "ready", "migrate", "arrived")]
        high[ids[0]] = _step(both, "xen_nfsroot.migrate_key", {}, previous)
        high[ids[1]] = _mine(both, "xen_migrate.public_keys", {}, ids[0])
        high[ids[2]] = _mine(both, "xm.list_domains", {"fresh": True}, ids[1])
        high[ids[3]] = _step(both, "xen_nfsroot.dom0", guest, ids[2])
        high[ids[4]] = _step(move["from"], "xen_nfsroot.migrate", migration, ids[3])
        high[ids[5]] = _step(move["to"], "xen_nfsroot.migrate", migration, ids[4])
        previous = ids[5]
    return high
