"""XenGuest may run on dom0-a (its home) and dom0-b: live migration by the
orchestration, an evacuation, and never two instances, whatever drives the
boot (highstate, a targeted state.apply, the orchestration, the reactor).

The two dom0s' xl doubles hand a migrated guest over as xl does (the
receiver's XenGuest--incoming, the sender's XenGuest--migratedaway, then the
guest under its own name on the receiver only); each dom0 publishes its
domain list through the real Salt mine.
"""

import json
import shlex
import time

from tests.integration.test_formula import (
    fire,
    orchestrate_steps,
    orchestrations_returned,
    state_results,
    wait_for,
)
from tests.support.cli_examples import MASTER_EXAMPLES


def orchestrate(salt_run_cli, sls, pillar=None):
    args = ["state.orchestrate", sls]
    if pillar is not None:
        args.append(f"pillar={json.dumps(pillar)}")
    ret = salt_run_cli.run(*args)
    order, steps = orchestrate_steps(ret)
    by_name = {sid.split("_|-")[1]: steps[sid] for sid in order}
    return ret, by_name


def migrate(salt_run_cli, **pillar):
    return orchestrate(salt_run_cli, "orch.xen_nfsroot_migrate", pillar)


def boot_on_a(salt_run_cli, xen_doubles):
    ret, steps = orchestrate(salt_run_cli, "orch.xen_nfsroot", {"guest": "XenGuest"})
    assert ret.returncode == 0, steps
    assert list(xen_doubles["dom0-a"].domains()) == ["XenGuest"]


def guest_state(run_on, minion_id, **pillar):
    """The XenGuest state of a targeted state.apply of dom0.sls."""
    ret = run_on(minion_id, "state.apply", "xen_nfsroot.dom0",
                 f"pillar={json.dumps({'xen_nfsroot_guest': 'XenGuest', **pillar})}")
    return state_results(ret.data)["xen_nfsroot-guest-XenGuest"]


def publish(run_on, minion_id):
    ret = run_on(minion_id, "mine.send", "xm.list_domains", "fresh=True")
    assert ret.returncode == 0 and ret.data is True, ret


def test_migrate_moves_the_guest_and_no_run_boots_it_twice(  # noqa: PLR0913,PLR0917 (fixtures)
        fresh, salt_run_cli, run_on, xen_doubles, salt_master, event_listener):
    boot_on_a(salt_run_cli, xen_doubles)
    ret, steps = migrate(salt_run_cli, guest="XenGuest", to="dom0-b")
    assert ret.returncode == 0, steps
    assert list(steps) == ["xen_nfsroot-keys-XenGuest", "xen_nfsroot-keys-mined-XenGuest",
                           "xen_nfsroot-domains-mined-XenGuest", "xen_nfsroot-ready-XenGuest",
                           "xen_nfsroot-migrate-XenGuest", "xen_nfsroot-arrived-XenGuest"]
    assert xen_doubles["dom0-a"].domains() == {}
    assert list(xen_doubles["dom0-b"].domains()) == ["XenGuest"]
    # xl migrate ran once, on dom0-a, over the formula's own ssh command.
    (call,) = xen_doubles["dom0-a"].spawns(command="migrate")
    key = xen_doubles["dom0-a"].dir / "trust" / "migrate_key"
    assert call[:4] == ["xl", "migrate", "-s", f"ssh -i {key} -o BatchMode=yes "
                        "-o IdentitiesOnly=yes -o UserKnownHostsFile="
                        f"{xen_doubles['dom0-a'].dir / 'trust' / 'known_hosts'} "
                        "-o StrictHostKeyChecking=yes"]
    assert call[4:] == ["XenGuest", "dom0-b"]
    # dom0-b trusts dom0-a's key for xl migrate-receive only, from dom0-a only.
    trust_b = (xen_doubles["dom0-b"].dir / "trust" / "authorized_keys").read_text()
    assert 'restrict,from="dom0-a",command=' in trust_b
    assert "xen-nfsroot-migrate@dom0-a" in trust_b

    # The state's own report: from where to where, and how long it took.
    migrate_step = steps["xen_nfsroot-migrate-XenGuest"]["changes"]["ret"]["dom0-a"]
    (moved,) = migrate_step.values()
    assert moved["changes"]["guest"] == {"old": "dom0-a", "new": "dom0-b"}
    assert moved["comment"].startswith("Migrated XenGuest live to dom0-b (dom0-b) in ")
    # Its arrival, checked on dom0-b (a check: no changes to report).
    assert steps["xen_nfsroot-arrived-XenGuest"]["result"] is True
    arrived = run_on("dom0-b", "state.apply", "xen_nfsroot.migrate", "pillar=" + json.dumps(
        {"xen_nfsroot_guest": "XenGuest",
         "xen_nfsroot_migration": {"from": "dom0-a", "to": "dom0-b"}}))
    assert state_results(arrived.data)["xen_nfsroot-migrate-XenGuest"]["comment"] == (
        "XenGuest runs on this dom0 (dom0-b), arrived from dom0-a")

    # Its home's highstate does not boot it again: it says where it runs.
    ret = run_on("dom0-a", "state.apply")
    assert ret.returncode == 0, ret
    home = state_results(ret.data)["xen_nfsroot-guest-XenGuest"]
    assert (home["result"], home["changes"]) == (True, {})
    assert home["comment"] == "XenGuest runs on dom0-b: not booted here"
    # Nor does a boot asked by name, nor the orchestration, nor the reactor.
    asked = guest_state(run_on, "dom0-a", xen_nfsroot_boot=True)
    assert asked["comment"] == "XenGuest runs on dom0-b: not booted here"
    ret, steps = orchestrate(salt_run_cli, "orch.xen_nfsroot", {"guest": "XenGuest"})
    assert ret.returncode == 0, steps
    start = time.time()
    fire(salt_run_cli, {"guest": "XenGuest"})
    assert wait_for(lambda: orchestrations_returned(event_listener, salt_master, start))
    assert xen_doubles["dom0-a"].domains() == {}
    assert len(xen_doubles["dom0-a"].spawns(command="create")) == 1

    # Evacuating dom0-b brings it home.
    ret, steps = migrate(salt_run_cli, evacuate="dom0-b")
    assert ret.returncode == 0, steps
    assert list(xen_doubles["dom0-a"].domains()) == ["XenGuest"]
    assert xen_doubles["dom0-b"].domains() == {}
    (back,) = xen_doubles["dom0-b"].spawns(command="migrate")
    assert back[-2:] == ["XenGuest", "dom0-a"]


def test_a_second_instance_is_refused_and_nothing_changes(fresh, salt_run_cli, run_on,
                                                          xen_doubles):
    boot_on_a(salt_run_cli, xen_doubles)
    # Someone boots it by hand on dom0-b too: two kernels on one root.
    ret = run_on("dom0-b", "cmd.run_all", "xl create /etc/xen/XenGuest.cfg")
    assert ret.data["retcode"] == 0, ret
    publish(run_on, "dom0-b")
    home = guest_state(run_on, "dom0-a")
    assert home["result"] is False
    assert home["comment"].startswith(
        "XenGuest runs on two dom0s at once: dom0-a and dom0-b; nothing changed")
    # The migration refuses too, naming both; nothing moves.
    ret, steps = migrate(salt_run_cli, guest="XenGuest", to="dom0-b")
    assert ret.returncode != 0
    assert list(steps) == ["xen_nfsroot-migration-refused"]
    assert steps["xen_nfsroot-migration-refused"]["comment"] == (
        "xen_nfsroot: guest: XenGuest runs on dom0-a and dom0-b: nothing moves")
    assert list(xen_doubles["dom0-a"].domains()) == ["XenGuest"]
    assert list(xen_doubles["dom0-b"].domains()) == ["XenGuest"]
    assert xen_doubles["dom0-a"].spawns(command="migrate") == []


def test_leftovers_of_a_failed_migration_are_reported_never_destroyed(fresh, salt_run_cli,
                                                                      run_on, xen_doubles):
    boot_on_a(salt_run_cli, xen_doubles)
    xen_doubles["dom0-a"].configure(migrate_failure={"XenGuest": "migratedaway-left"})
    try:
        ret, steps = migrate(salt_run_cli, guest="XenGuest", to="dom0-b")
    finally:
        xen_doubles["dom0-a"].configure(migrate_failure={})
    assert ret.returncode != 0
    (failed,) = steps["xen_nfsroot-migrate-XenGuest"]["changes"]["ret"]["dom0-a"].values()
    assert failed["result"] is False
    assert "left on this dom0: XenGuest--migratedaway" in failed["comment"], failed
    assert "XenGuest--migratedaway" in xen_doubles["dom0-a"].domains()
    # The next highstate of its home reports the leftover and boots nothing.
    home = guest_state(run_on, "dom0-a")
    assert home["result"] is False
    assert "XenGuest--migratedaway on this dom0" in home["comment"], home
    assert "XenGuest--migratedaway" in xen_doubles["dom0-a"].domains()
    assert len(xen_doubles["dom0-a"].spawns(command="create")) == 1


def test_bad_migrations_are_refused_and_nothing_moves(fresh, salt_run_cli, run_on,
                                                      xen_doubles, set_pillar_override):
    boot_on_a(salt_run_cli, xen_doubles)
    refusals = [
        ({"guest": "XenGuest", "to": "nfs1"},
         "xen_nfsroot: to: 'nfs1' is not one of the dom0s of XenGuest (dom0-a, dom0-b)"),
        ({"guest": "NoSuchGuest", "to": "dom0-b"},
         "xen_nfsroot: guest: 'NoSuchGuest' is not a guest of the pillar"),
        ({"evacuate": "dom0-b"},
         "xen_nfsroot: evacuate: no guest with another dom0 runs on 'dom0-b': nothing to move"),
        ({"guest": "XenGuest", "to": "dom0-a"},
         "xen_nfsroot: to: XenGuest already runs on dom0-a"),
    ]
    for pillar, comment in refusals:
        ret, steps = migrate(salt_run_cli, **pillar)
        assert ret.returncode != 0
        assert list(steps) == ["xen_nfsroot-migration-refused"], steps
        assert steps["xen_nfsroot-migration-refused"]["comment"] == comment
    assert xen_doubles["dom0-a"].spawns(command="migrate") == []

    # A target without the guest's kernel: its side fails, nothing moves.
    set_pillar_override({"guests": {"XenGuest": {"kernel": "/boot/vmlinuz-missing"}}})
    for minion_id in ("dom0-a", "dom0-b"):
        assert run_on(minion_id, "saltutil.refresh_pillar", "wait=True").returncode == 0
    ret, steps = migrate(salt_run_cli, guest="XenGuest", to="dom0-b")
    assert ret.returncode != 0
    ready = steps["xen_nfsroot-ready-XenGuest"]
    assert ready["result"] is False
    assert "kernel: '/boot/vmlinuz-missing' does not exist on this dom0" in json.dumps(ready)
    assert steps["xen_nfsroot-migrate-XenGuest"]["result"] is False
    assert xen_doubles["dom0-a"].spawns(command="migrate") == []
    assert list(xen_doubles["dom0-a"].domains()) == ["XenGuest"]


def test_a_dom0_that_does_not_answer_stops_boots_and_moves(fresh, salt_run_cli, run_on,
                                                          xen_doubles, set_pillar_override):
    # dom0-c is no minion of this master: nobody can say whether it runs XenGuest.
    set_pillar_override({"guests": {"XenGuest": {"dom0s": ["dom0-a", "dom0-b", "dom0-c"]}}})
    for minion_id in ("dom0-a", "dom0-b"):
        assert run_on(minion_id, "saltutil.refresh_pillar", "wait=True").returncode == 0
    ret, steps = orchestrate(salt_run_cli, "orch.xen_nfsroot", {"guest": "XenGuest"})
    assert ret.returncode != 0
    assert steps["xen_nfsroot-where-XenGuest"]["result"] is False
    assert steps["xen_nfsroot-boot"]["result"] is False
    assert "dom0-c" in str(steps["xen_nfsroot-booted-XenGuest"]["changes"])
    home = guest_state(run_on, "dom0-a")
    assert home["result"] is False
    assert home["comment"].startswith("Cannot tell whether XenGuest runs on dom0-c")
    assert xen_doubles["dom0-a"].domains() == {}
    assert xen_doubles["dom0-a"].spawns(command="create") == []


def test_the_master_side_cli_examples_run_as_written(fresh, salt_run_cli, xen_doubles):
    """The examples of the functions that ask other minions (``salt-run
    salt.cmd ...``), run on this master as written, with XenGuest at home."""
    boot_on_a(salt_run_cli, xen_doubles)
    assert MASTER_EXAMPLES
    for name, example in MASTER_EXAMPLES:
        ret = salt_run_cli.run(*shlex.split(example)[1:])
        assert ret.returncode == 0, (name, example, ret)
        assert "Traceback" not in ret.stdout and "ERROR" not in ret.stdout, (example, ret)
