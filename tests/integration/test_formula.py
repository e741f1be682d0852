"""The formula driven as a Salt user drives it: highstate, state.apply with
test=True, the orchestration, reactor-triggered boots and absent guests, with
real salt-master and salt-minion daemons, the real exportfs and the xl double.
"""

import contextlib
import json
import pathlib
import subprocess
import time

from tests.support import DATA
from tests.support.exportfs import exportfs_v
from tests.support.formula import CONFIG_DIR, EXPORTS_FILE, GUEST_ROOTS, SERVER_FSTAB, mounts_at
from tests.support.seed import SEED_FSTAB
from xen_nfsroot_lib.export_table import parse_listing

PANICS = DATA / "consoles" / "double-panics.log"
SEED_EXPORT = "/xen 192.0.2.10(rw,no_root_squash,async,no_subtree_check)"
STATIC_EXPORT = "/srv/xen/static 192.0.2.11(rw,no_root_squash,async,no_subtree_check)"


def snapshot():
    """What the formula may change on disk, to compare before and after: its
    files, and the mounts at the guest roots."""
    files = {EXPORTS_FILE: None, SERVER_FSTAB: None,
             **{root / "etc/fstab": None for root in GUEST_ROOTS.values()}}
    for path in files:
        files[path] = path.read_bytes() if path.exists() else None
    configs = {p.name: p.read_bytes() for p in sorted(CONFIG_DIR.glob("*.cfg"))}
    mounts = {root: [sorted(m.options) for m in mounts_at(root)] for root in GUEST_ROOTS.values()}
    return files, configs, mounts


def state_results(data):
    """The state returns of a salt-call state run, by state id."""
    assert isinstance(data, dict), data
    return {key.split("_|-")[1]: value for key, value in data.items()}


def changed(data):
    return sorted(sid for sid, ret in state_results(data).items() if ret["changes"])


def highstate(run_on, minion_id, **kwargs):
    ret = run_on(minion_id, "state.apply", **kwargs)
    assert ret.returncode == 0, ret
    assert all(r["result"] is not False for r in ret.data.values()), ret.data
    return ret.data


def test_highstate_of_all_three(fresh, run_on, xen_doubles):
    fstab_before = SERVER_FSTAB.read_text()
    server = highstate(run_on, "nfs1")
    assert changed(server) == [
        "xen_nfsroot-confined-StaticGuest",
        "xen_nfsroot-confined-XenGuest",
        "xen_nfsroot-export-StaticGuest",
        "xen_nfsroot-export-XenGuest",
        "xen_nfsroot-exports-applied",
        "xen_nfsroot-fstab-StaticGuest",
        "xen_nfsroot-fstab-XenGuest",
    ]
    # The guests in name order, as xen_nfsroot.state_data lists them.
    assert EXPORTS_FILE.read_text().splitlines() == [STATIC_EXPORT, SEED_EXPORT]
    # /srv/xen/static, a plain directory, is mounted onto itself nosuid,nodev
    # before its export; /xen is a file system of its own mounted so already.
    confined = state_results(server)["xen_nfsroot-confined-StaticGuest"]
    assert confined["changes"]["mounted"] == "nosuid,nodev"
    assert state_results(server)["xen_nfsroot-confined-XenGuest"]["comment"] == (
        "/xen is mounted nosuid,nodev; added its line in /etc/fstab")
    fstab_after = SERVER_FSTAB.read_text()
    assert fstab_after.startswith(fstab_before)
    assert [line.split() for line in fstab_after[len(fstab_before):].splitlines()] == [
        ["/srv/xen/static", "/srv/xen/static", "none", "bind,nosuid,nodev", "0", "0"],
        ["/xen", "/xen", "none", "bind,nosuid,nodev", "0", "0"]]
    options = subprocess.run(["findmnt", "-n", "-o", "VFS-OPTIONS", "--mountpoint",
                              "/srv/xen/static"], capture_output=True, text=True, check=True)
    assert {"nosuid", "nodev"} <= set(options.stdout.strip().split(","))
    assert sorted(parse_listing(exportfs_v())) == ["/srv/xen/static", "/xen"]

    guest_a = highstate(run_on, "dom0-a")
    # The first highstate of a dom0 also turns xenconsoled's guest logging on,
    # and, XenGuest having two dom0s, makes the migration key and trust.
    assert changed(guest_a) == ["xen_nfsroot-console-logging", "xen_nfsroot-guest-XenGuest",
                                "xen_nfsroot-migrate-key", "xen_nfsroot-migrate-trust"]
    booted = state_results(guest_a)["xen_nfsroot-guest-XenGuest"]
    assert "its console shows it on its NFS root after" in booted["comment"], booted
    # dom0-b has published no key yet: dom0-a's trust says so and succeeds.
    assert "dom0-b" in state_results(guest_a)["xen_nfsroot-migrate-trust"]["comment"]
    guest_b = highstate(run_on, "dom0-b")
    # StaticGuest has autostart: false: configured, not booted; XenGuest is
    # configured on its other dom0, ready to receive it (its config is the one
    # dom0-a wrote: the two dom0s share this machine's /etc/xen).
    assert changed(guest_b) == ["xen_nfsroot-console-logging", "xen_nfsroot-guest-StaticGuest",
                                "xen_nfsroot-migrate-key", "xen_nfsroot-migrate-trust"]
    assert state_results(guest_b)["xen_nfsroot-guest-XenGuest"]["comment"] == (
        f"The config {CONFIG_DIR / 'XenGuest.cfg'} of XenGuest is up to date")
    trust_b = (xen_doubles["dom0-b"].dir / "trust" / "authorized_keys").read_text()
    key_a = (xen_doubles["dom0-a"].dir / "trust" / "migrate_key.pub").read_text().split()
    wrapper_b = xen_doubles["dom0-b"].dir / "trust" / "migrate-receive"
    assert trust_b.splitlines() == [
        f'restrict,from="dom0-a",command="{wrapper_b}" {key_a[0]} {key_a[1]} '
        "xen-nfsroot-migrate@dom0-a"]
    # dom0-a's trust completes on its next run, with dom0-b's key from the mine.
    assert changed(highstate(run_on, "dom0-a")) == ["xen_nfsroot-migrate-trust"]

    assert list(xen_doubles["dom0-a"].domains()) == ["XenGuest"]
    assert xen_doubles["dom0-b"].domains() == {}
    assert xen_doubles["dom0-b"].spawns(command="create") == []
    cmdline = xen_doubles["dom0-a"].domains()["XenGuest"]["cmdline"]
    assert "root=/dev/nfs" in cmdline
    assert "ip=:192.0.2.1::::eth0:dhcp" in cmdline
    assert "nfsroot=192.0.2.1:/xen,vers=3" in cmdline
    assert "memory = 512" in (CONFIG_DIR / "StaticGuest.cfg").read_text()
    assert (
        "ip=192.0.2.11:192.0.2.1:192.0.2.254:255.255.255.0:static:eth0:off"
        in (CONFIG_DIR / "StaticGuest.cfg").read_text()
    )

    # A second highstate changes nothing and boots nothing.
    before = snapshot()
    for minion_id in ("nfs1", "dom0-a", "dom0-b"):
        assert changed(highstate(run_on, minion_id)) == []
    assert snapshot() == before
    assert len(xen_doubles["dom0-a"].spawns(command="create")) == 1


def test_the_pillar_module_answers_the_cli_with_real_values(minions, run_on):
    """`salt nfs1 xen_nfsroot.guests server` and friends, as documented: on
    Salt 3008 pillar.get outside a template masks every value, which the
    module must not read."""
    ret = run_on("nfs1", "xen_nfsroot.guests", "server")
    assert ret.returncode == 0, ret
    assert sorted(ret.data) == ["StaticGuest", "XenGuest"]
    seed = ret.data["XenGuest"]
    assert (seed["nfs_server"], seed["dom0"], seed["nfs_root"]) == ("nfs1", "dom0-a", "/xen")
    assert seed["export_clients"] == ["192.0.2.10"]
    ret = run_on("dom0-b", "xen_nfsroot.roles")
    assert (ret.returncode, ret.data) == (0, ["dom0"])
    ret = run_on("dom0-a", "xen_nfsroot.guest", "XenGuest")
    assert ret.data["states"]["xen_guest"]["nfs_server"] == "192.0.2.1"


def test_test_mode_changes_nothing(fresh, run_on, xen_doubles):
    before = snapshot()
    for minion_id in ("nfs1", "dom0-a", "dom0-b"):
        ret = run_on(minion_id, "state.apply", test=True)
        assert ret.returncode == 0, ret
        predicted = [sid for sid, r in state_results(ret.data).items() if r["result"] is None]
        assert predicted, ret.data
    assert snapshot() == before
    assert exportfs_v() == ""
    assert xen_doubles["dom0-a"].domains() == {}
    assert xen_doubles["dom0-a"].spawns(command="create") == []


def orchestrate_steps(ret):
    """The orchestration's steps, in the order they ran."""
    data = ret.data
    steps = data["data"] if "data" in data else data
    (results,) = steps.values()
    return sorted(results, key=lambda sid: results[sid]["__run_num__"]), results


def test_orchestrate_exports_before_boots(fresh, salt_run_cli, xen_doubles):
    ret = salt_run_cli.run("state.orchestrate", "orch.xen_nfsroot")
    assert ret.returncode == 0, ret
    order, results = orchestrate_steps(ret)
    names = [sid.split("_|-")[1] for sid in order]
    print(json.dumps(results, indent=1))
    assert set(names) == {
        "xen_nfsroot-export-XenGuest",
        "xen_nfsroot-keys-XenGuest",
        "xen_nfsroot-where-XenGuest",
        "xen_nfsroot-export-StaticGuest",
        "xen_nfsroot-boot",
        "xen_nfsroot-boot-ended",
        "xen_nfsroot-booted-XenGuest",
        "xen_nfsroot-mounted-XenGuest",
    }
    # One boot step, on both dom0s at once, after every export.
    for guest in ("XenGuest", "StaticGuest"):
        assert names.index(f"xen_nfsroot-export-{guest}") < names.index("xen_nfsroot-boot")
    boot = results[order[names.index("xen_nfsroot-boot")]]
    assert sorted(boot["changes"]["ret"]) == ["dom0-a", "dom0-b"]
    # XenGuest has two dom0s: both have their migration keys in the mine before
    # either sets up its trust of the other (one run converges), and both are
    # asked before its boot.
    assert (names.index("xen_nfsroot-keys-XenGuest") < names.index("xen_nfsroot-where-XenGuest")
            < names.index("xen_nfsroot-boot"))
    # Only a guest the orchestration boots gets a verdict and is looked for
    # among the server's mounts.
    assert (names.index("xen_nfsroot-boot") < names.index("xen_nfsroot-booted-XenGuest")
            < names.index("xen_nfsroot-mounted-XenGuest"))
    verdict = results[order[names.index("xen_nfsroot-booted-XenGuest")]]
    assert verdict["changes"]["ret"] == {
        "dom0-a": {"guest": "XenGuest", "runs_on": "dom0-a", "state": "blocked"}}, verdict
    assert all(r["result"] is True for r in results.values()), results
    assert sorted(parse_listing(exportfs_v())) == ["/srv/xen/static", "/xen"]
    assert list(xen_doubles["dom0-a"].domains()) == ["XenGuest"]
    # StaticGuest has autostart: false: configured, booted only when asked by name.
    assert (CONFIG_DIR / "StaticGuest.cfg").exists()
    assert xen_doubles["dom0-b"].domains() == {}


def test_orchestrate_in_test_mode_predicts_and_changes_nothing(fresh, salt_run_cli, xen_doubles):
    before = snapshot()
    ret = salt_run_cli.run("state.orchestrate", "orch.xen_nfsroot", "test=True")
    assert ret.returncode == 0, ret
    _, results = orchestrate_steps(ret)
    steps = {sid.split("_|-")[1]: r for sid, r in results.items()}
    assert all(r["result"] is not False for r in steps.values()), steps
    assert steps["xen_nfsroot-boot"]["result"] is None
    # The NFS server is asked without waiting for a guest test mode did not
    # boot (this server cannot tell who mounts what: it says so).
    mounted = steps["xen_nfsroot-mounted-XenGuest"]
    assert mounted["duration"] < 30000, mounted
    assert snapshot() == before
    assert exportfs_v() == ""
    assert xen_doubles["dom0-a"].domains() == {}
    assert xen_doubles["dom0-a"].spawns(command="create") == []


def test_orchestrate_one_guest(fresh, salt_run_cli, xen_doubles):
    ret = salt_run_cli.run(
        "state.orchestrate", "orch.xen_nfsroot", pillar=json.dumps({"guest": "XenGuest"})
    )
    assert ret.returncode == 0, ret
    order, _ = orchestrate_steps(ret)
    assert [sid.split("_|-")[1] for sid in order] == [
        "xen_nfsroot-export-XenGuest",
        "xen_nfsroot-keys-XenGuest",
        "xen_nfsroot-where-XenGuest",
        "xen_nfsroot-boot",
        "xen_nfsroot-boot-ended",
        "xen_nfsroot-booted-XenGuest",
        "xen_nfsroot-mounted-XenGuest",
    ]
    assert EXPORTS_FILE.read_text() == SEED_EXPORT + "\n"
    # One run sets up the migration trust both ways: each dom0's key was in
    # the mine before the other's trust state ran, whichever ran first.
    for here, peer in (("dom0-a", "dom0-b"), ("dom0-b", "dom0-a")):
        trusted = (xen_doubles[here].dir / "trust" / "authorized_keys").read_text()
        assert f"xen-nfsroot-migrate@{peer}" in trusted, (here, trusted)
    # StaticGuest's fstab was not touched: only XenGuest was selected.
    assert (GUEST_ROOTS["StaticGuest"] / "etc/fstab").read_text() == SEED_FSTAB
    assert list(xen_doubles["dom0-a"].domains()) == ["XenGuest"]


def test_failed_export_stops_the_boot(fresh, salt_run_cli, xen_doubles):
    # Not a root filesystem: the fstab state fails, so the export and the boot never run.
    (GUEST_ROOTS["XenGuest"] / "etc/fstab").unlink()
    (GUEST_ROOTS["XenGuest"] / "etc").rmdir()
    ret = salt_run_cli.run(
        "state.orchestrate", "orch.xen_nfsroot", pillar=json.dumps({"guest": "XenGuest"})
    )
    assert ret.returncode != 0
    _, results = orchestrate_steps(ret)
    by_name = {sid.split("_|-")[1]: r for sid, r in results.items()}
    assert by_name["xen_nfsroot-export-XenGuest"]["result"] is False
    assert by_name["xen_nfsroot-boot"]["result"] is False
    assert "requisite" in by_name["xen_nfsroot-boot"]["comment"].lower()
    assert "xen_nfsroot-export-XenGuest" in by_name["xen_nfsroot-boot"]["comment"]
    # The guest's own verdict says it does not run; its mounted step is not run.
    assert by_name["xen_nfsroot-booted-XenGuest"]["result"] is False
    assert "XenGuest does not run on dom0-a (its domain is absent)" in str(
        by_name["xen_nfsroot-booted-XenGuest"]), by_name["xen_nfsroot-booted-XenGuest"]
    assert by_name["xen_nfsroot-mounted-XenGuest"]["result"] is False
    assert xen_doubles["dom0-a"].domains() == {}
    assert not EXPORTS_FILE.exists()


def wait_for(predicate, timeout=90, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def fire(salt_run_cli, data):
    ret = salt_run_cli.run("event.send", "xen_nfsroot/guest/boot", json.dumps(data))
    assert ret.returncode == 0, ret


def orchestrations_returned(event_listener, salt_master, after):
    """The state.orchestrate runs whose return the master published since `after`."""
    events = event_listener.get_events([(salt_master.id, "salt/run/*/ret")], after_time=after)
    return [e for e in events if e.data.get("fun") == "runner.state.orchestrate"]


def test_reactor_boots_a_guest(fresh, salt_run_cli, xen_doubles, salt_master, event_listener):
    start = time.time()
    fire(salt_run_cli, {"guest": "StaticGuest"})
    # The orchestration returns after the boot: wait for it too, so that it
    # cannot finish during the next test.
    assert wait_for(lambda: orchestrations_returned(event_listener, salt_master, start)), (
        "the reactor's orchestration did not return"
    )
    assert len(orchestrations_returned(event_listener, salt_master, start)) == 1
    assert "StaticGuest" in xen_doubles["dom0-b"].domains(), "the reactor did not boot StaticGuest"
    assert STATIC_EXPORT in EXPORTS_FILE.read_text()
    assert list(parse_listing(exportfs_v())) == ["/srv/xen/static"]
    assert xen_doubles["dom0-a"].domains() == {}


FORGED = [
    {"guest": "NoSuchGuest"},
    {"guest": "../../etc/passwd"},
    {"guest": "XenGuest; reboot"},
    {"guest": ["XenGuest"]},
    {"guest": "NoSuchGuest", "tgt": "dom0-a", "nfs_root": "/etc", "dom0": "dom0-a"},
    {"tgt": "*", "fun": "cmd.run", "arg": ["reboot"]},
]


def test_forged_events_boot_nothing_and_change_nothing(
    fresh, salt_run_cli, xen_doubles, salt_master, event_listener
):
    before = snapshot()
    start = time.time()
    for data in FORGED:
        fire(salt_run_cli, data)
    # Well-formed names reach the orchestration (which selects nothing for a
    # guest pillar does not define); the others never start one. Wait until
    # every orchestration started has returned.
    started = sum(isinstance(d.get("guest"), str) and d["guest"].isalnum() for d in FORGED)
    assert started == 2

    def returned():
        return orchestrations_returned(event_listener, salt_master, start)

    assert wait_for(lambda: len(returned()) >= started), returned()
    time.sleep(2)
    assert len(returned()) == started
    for event in returned():
        assert event.data["return"]["data"]["master"], event.data
        assert all(
            step.startswith("test_|-xen_nfsroot-nothing-selected")
            for step in event.data["return"]["data"]["master"]
        ), event.data
    assert snapshot() == before
    assert exportfs_v() == ""
    for double in xen_doubles.values():
        assert double.domains() == {}
        assert double.spawns(command="create") == []


def test_unknown_guests_are_left_alone_and_absent_removes(
    fresh, run_on, salt_run_cli, xen_doubles, set_pillar_override
):
    # Something the pillar does not describe: an admin's own export and guest.
    EXPORTS_FILE.parent.mkdir(exist_ok=True)
    pathlib.Path("/etc/exports").write_text("# admin's\n/srv 192.0.2.99(ro)\n")
    CONFIG_DIR.mkdir(exist_ok=True)
    stranger = CONFIG_DIR / "Stranger.cfg"
    stranger.write_text('name = "Stranger"\nkernel = "/boot/vmlinuz-guest"\nmemory = 64\n')
    ret = run_on("dom0-a", "cmd.run_all", f"xl create {stranger}")
    assert ret.returncode == 0, ret

    assert salt_run_cli.run("state.orchestrate", "orch.xen_nfsroot").returncode == 0
    assert "Stranger" in xen_doubles["dom0-a"].domains()
    assert stranger.exists()
    assert pathlib.Path("/etc/exports").read_text() == "# admin's\n/srv 192.0.2.99(ro)\n"

    set_pillar_override({"guests": {"XenGuest": {"absent": True}}})
    ret = salt_run_cli.run("state.orchestrate", "orch.xen_nfsroot")
    order, steps = orchestrate_steps(ret)
    assert ret.returncode == 0, {sid: r["comment"] for sid, r in steps.items() if not r["result"]}
    names = [sid.split("_|-")[1] for sid in order]
    # Absent goes the other way round: the guest is stopped before its export goes.
    assert (names.index("xen_nfsroot-boot") < names.index("xen_nfsroot-stopped-XenGuest")
            < names.index("xen_nfsroot-export-XenGuest"))
    assert "XenGuest" not in xen_doubles["dom0-a"].domains()
    assert not (CONFIG_DIR / "XenGuest.cfg").exists()
    assert SEED_EXPORT not in EXPORTS_FILE.read_text()
    assert STATIC_EXPORT in EXPORTS_FILE.read_text()
    assert sorted(parse_listing(exportfs_v())) == ["/srv", "/srv/xen/static"]
    # The guest's files on the server are left alone.
    assert (GUEST_ROOTS["XenGuest"] / "etc/fstab").exists()
    # Still untouched: what pillar does not describe.
    assert "Stranger" in xen_doubles["dom0-a"].domains()
    assert stranger.exists()
    assert pathlib.Path("/etc/exports").read_text() == "# admin's\n/srv 192.0.2.99(ro)\n"


BAD_FILTERS = [
    {"guest": ""},
    {"guest": 0},
    {"guest": False},
    {"guest": None},
    {"guest": ["XenGuest"]},
    {"guest": {"XenGuest": True}},
    {"guest": "NoSuchGuest"},
    {"dom0": ""},
    {"dom0": None},
    {"dom0": ["dom0-a"]},
]


def test_a_bad_filter_selects_nothing_and_says_which(fresh, salt_run_cli, xen_doubles):
    before = snapshot()
    for pillar in BAD_FILTERS:
        ret = salt_run_cli.run("state.orchestrate", "orch.xen_nfsroot",
                               f"pillar={json.dumps(pillar)}")
        assert ret.returncode == 0, ret
        order, steps = orchestrate_steps(ret)
        assert [sid.split("_|-")[1] for sid in order] == ["xen_nfsroot-nothing-selected"], ret
        ((key, value),) = pillar.items()
        note = next(iter(steps.values()))["comment"]
        assert note == f"xen_nfsroot: no guest selected ({key}={value!r})", note
    assert snapshot() == before
    for double in xen_doubles.values():
        assert double.spawns(command="create") == []


def test_a_guest_fstab_that_is_not_utf8_through_the_master(fresh, run_on):
    fstab = GUEST_ROOTS["XenGuest"] / "etc" / "fstab"
    fstab.write_bytes(SEED_FSTAB.replace("ext3    defaults ", "ext3    d\xe9faults").encode(
        "latin-1") + b"# \xff\xfe a comment in no encoding\n")
    ret = run_on("nfs1", "state.apply", "xen_nfsroot.server")
    assert ret.returncode == 0, ret
    results = state_results(ret.data)
    fstab_ret = results["xen_nfsroot-fstab-XenGuest"]
    assert fstab_ret["result"] is True, fstab_ret
    assert fstab_ret["changes"]["root"]["old"] == "/dev/sda1 / ext3 d\\xe9faults 1 1"
    assert "d\\xe9faults" in fstab_ret["comment"]
    assert fstab.read_bytes().endswith(b"# \xff\xfe a comment in no encoding\n")
    assert b"#xen-nfsroot# /dev/sda1               /                       ext3    d\xe9faults" \
        in fstab.read_bytes()


def test_a_bad_pillar_is_reported_as_what_it_is(fresh, run_on, set_pillar_override):
    """Not as invalid arguments followed by the function's usage."""
    set_pillar_override({"guests": {"XenGuest": {"memory": 0}}})
    run_on("nfs1", "saltutil.refresh_pillar", "wait=True")
    ret = run_on("nfs1", "xen_nfsroot.guests", "server")
    set_pillar_override({})
    run_on("nfs1", "saltutil.refresh_pillar", "wait=True")
    output = json.dumps(ret.data) + ret.stdout
    assert output.count("ERROR") >= 1, output
    assert "xen_nfsroot pillar: guest 'XenGuest': memory: 0 is not a positive integer" in output
    assert "Passed invalid arguments" not in output
    assert "Usage" not in output


def _interval(ret):
    """(start, end) in seconds of the day of a state's run, from its return."""
    hours, minutes, seconds = ret["start_time"].split(":")
    start = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return start, start + ret["duration"] / 1000


@contextlib.contextmanager
def two_boots_on_dom0_a(set_pillar_override, double):
    """StaticGuest moved to dom0-a with autostart: both guests boot there,
    each 3 s after xl create; XenGuest comes up, StaticGuest panics."""
    set_pillar_override({"guests": {"StaticGuest": {"dom0": "dom0-a", "autostart": True}}})
    boots = double.settings()["boot"]
    double.configure(boot={
        "XenGuest": dict(boots["XenGuest"], delay=3),
        "StaticGuest": dict(boots["StaticGuest"], console=str(PANICS), then="crash", delay=3)})
    try:
        yield
    finally:
        double.configure(boot=boots)


def test_two_boots_on_one_dom0_run_in_parallel_each_with_its_verdict(
        fresh, run_on, xen_doubles, set_pillar_override):
    """Issue 20: a dom0 with two guests to boot boots them in parallel (Salt's
    parallel: True, one process each), after the reads they share; each
    state keeps its own verdict: one guest's failure hides nothing of the
    other's success. A run with nothing to boot forks nothing."""
    double = xen_doubles["dom0-a"]
    with two_boots_on_dom0_a(set_pillar_override, double):
        run_on("dom0-a", "saltutil.refresh_pillar", "wait=True")
        highstate(run_on, "nfs1")
        ret = run_on("dom0-a", "state.apply")
    assert ret.returncode != 0  # StaticGuest fails, alone
    results = state_results(ret.data)
    prepared = results["xen_nfsroot-boots-prepared"]
    assert prepared["result"] is True and prepared["changes"] == {}, prepared
    assert prepared["comment"] == (
        "Read the domain list, the mine of dom0-b, the kernel /boot/vmlinuz-guest, the kernel "
        "/boot/vmlinuz-2.6.18-53.1.14.el5.myxen once for the boots of this run")
    booted, failed = results["xen_nfsroot-guest-XenGuest"], results["xen_nfsroot-guest-StaticGuest"]
    assert booted["__parallel__"] is True and failed["__parallel__"] is True
    assert booted["result"] is True, booted
    assert "its console shows it on its NFS root" in booted["comment"]
    assert booted["changes"]["guest"]["evidence"]
    assert failed["result"] is False, failed
    assert failed["changes"]["guest"]["new"] == "failed"
    assert "Kernel panic" in failed["comment"]
    # Both were watched at the same time: their runs overlap.
    (start_a, end_a), (start_b, end_b) = _interval(booted), _interval(failed)
    assert start_a < end_b and start_b < end_a, (booted, failed)
    assert len(double.spawns(command="create")) == 2

    double.clear_spawns()
    again = run_on("dom0-a", "state.apply")
    results = state_results(again.data)
    assert "xen_nfsroot-boots-prepared" not in results
    assert not any(r.get("__parallel__") for r in results.values())
    assert "failed to boot with this config and kernel" in (
        results["xen_nfsroot-guest-StaticGuest"]["comment"])
    assert double.spawns(command="create") == []


def test_the_orchestration_boots_a_dom0s_guests_at_once_each_with_its_verdict(
        fresh, run_on, salt_run_cli, xen_doubles, set_pillar_override):
    """Issue 20: the orchestration's one boot step boots both guests of
    dom0-a at once (one job, the boots overlap); then each guest has its own
    verdict step: StaticGuest's failed boot fails its verdict and stops its
    mounted step, and nothing of XenGuest's."""
    double = xen_doubles["dom0-a"]
    with two_boots_on_dom0_a(set_pillar_override, double):
        ret = salt_run_cli.run("state.orchestrate", "orch.xen_nfsroot")
    assert ret.returncode != 0
    order, results = orchestrate_steps(ret)
    steps = {sid.split("_|-")[1]: results[sid] for sid in order}
    assert [name for name in steps if "boot" in name] == [
        "xen_nfsroot-boot", "xen_nfsroot-boot-ended", "xen_nfsroot-booted-StaticGuest",
        "xen_nfsroot-booted-XenGuest"]
    # The boot step failed (StaticGuest): the verdicts ran all the same.
    ended = steps["xen_nfsroot-boot-ended"]
    assert ended["result"] is True and "verdict says" in ended["comment"], ended
    inside = state_results(steps["xen_nfsroot-boot"]["changes"]["ret"]["dom0-a"])
    booted, failed = inside["xen_nfsroot-guest-XenGuest"], inside["xen_nfsroot-guest-StaticGuest"]
    assert booted["result"] is True and failed["result"] is False, (booted, failed)
    (start_a, end_a), (start_b, end_b) = _interval(booted), _interval(failed)
    assert start_a < end_b and start_b < end_a, (booted, failed)
    assert steps["xen_nfsroot-booted-XenGuest"]["result"] is True
    assert steps["xen_nfsroot-mounted-XenGuest"]["result"] is True
    verdict = steps["xen_nfsroot-booted-StaticGuest"]
    assert verdict["result"] is False
    assert "StaticGuest failed to boot on dom0-a" in str(verdict["changes"]), verdict
    assert "Kernel panic" in str(verdict["changes"]), verdict
    mounted = steps["xen_nfsroot-mounted-StaticGuest"]
    assert mounted["result"] is False and "requisite" in mounted["comment"].lower(), mounted
    assert sorted(double.domains()) == ["XenGuest"]
