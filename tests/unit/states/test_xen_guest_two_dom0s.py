"""xen_guest with two dom0s, a mocked loader: never two instances, live migration.

This dom0 is ``dom0-a``; its own domains are a dictionary (``xm.list_domains``
and ``xm.state`` read it), the other dom0s' are what ``mine.get`` answers.
"""

from unittest.mock import MagicMock, call, patch

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.commands import Commands
from tests.support.loader import functions
from xen_nfsroot.modules import guest_console, guest_kernel, xen_config, xm
from xen_nfsroot.states import xen_guest

MOUNTED = {"verdict": "mounted", "evidence": "VFS: Mounted root (nfs filesystem) readonly",
           "lines": [], "seconds": 2.5, "log": "/var/log/xen/console/guest-g.log"}
ME = "dom0-a"
DOM0S = ["dom0-a", "dom0-b"]
SSH = ("ssh -i /etc/xen-nfsroot/migrate_key -o BatchMode=yes -o IdentitiesOnly=yes "
       "-o UserKnownHostsFile=/etc/xen-nfsroot/known_hosts -o StrictHostKeyChecking=yes")
MINE = call(tgt=["dom0-b"], fun="xm.list_domains", tgt_type="list")
SENT = call("xm.list_domains", fresh=True)
TWICE = "stop one of them (two kernels writing one NFS root destroy it)"
MIGRATING = "not booted, nothing destroyed; finish or clean up the migration first"


def domain(state="blocked"):
    return {"id": 3, "memory_mb": 256, "vcpus": 1, "state": state, "flags": "-b----",
            "time_s": 1.5}


class Dom0s:
    """This dom0's domains (``here``) and the mine's copy of the others' (``mined``)."""

    def __init__(self):
        self.here = {}
        self.mined = {"dom0-b": {}}

    def list_domains(self, details=False, toolstack=None, fresh=False):
        return {name: dict(record) for name, record in self.here.items()}

    def state(self, name, toolstack=None):
        return self.here[name]["state"] if name in self.here else "absent"

    def mine_get(self, tgt, fun, tgt_type="glob"):
        return {minion: data for minion, data in self.mined.items() if minion in tgt}


@pytest.fixture
def dom0s():
    return Dom0s()


@pytest.fixture
def salt_mods(dom0s):
    # The operations the states ask of the dom0: the config files, the console
    # log and failure record, the kernel check (its decompressors run for
    # real); the toolstack is mocked.
    salt = functions(xen_config, guest_console, guest_kernel)
    salt.update({
        "cmd.run_all": Commands(real=True),
        "xm.config_format": MagicMock(return_value="xl"),
        "xm.state": MagicMock(side_effect=dom0s.state),
        "xm.list_domains": MagicMock(side_effect=dom0s.list_domains),
        "xm.create": MagicMock(return_value={}),
        "xm.destroy": MagicMock(return_value=True),
        "xm.shutdown": MagicMock(return_value={"stopped": True, "timed_out": False}),
        "xm.migrate": MagicMock(return_value={}),
        "guest_console.watch": MagicMock(return_value=MOUNTED),
        "mine.get": MagicMock(side_effect=dom0s.mine_get),
        "mine.send": MagicMock(return_value=True),
        "xm.mined_domains": xm.mined_domains,  # the real reader of the mine
    })
    return salt


@pytest.fixture
def configure_loader_modules(salt_mods, tmp_path):
    opts = {"test": False, "id": ME, "cachedir": str(tmp_path / "cache")}
    return {
        xen_guest: {"__salt__": salt_mods, "__opts__": opts, "__context__": {}},
        guest_console: {"__salt__": salt_mods, "__opts__": opts},
        guest_kernel: {"__salt__": salt_mods, "__context__": {}},
        xm: {"__salt__": salt_mods, "__context__": {}},
    }


@pytest.fixture
def guest(tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    return {"name": "g", "kernel": str(kernel), "nfs_server": "192.0.2.1", "nfs_root": "/xen",
            "config_dir": str(tmp_path / "xen"), "check_kernel": False,
            "other_dom0s": ["dom0-b"]}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "xen" / "g.cfg"


def _nothing_booted(salt_mods):
    salt_mods["xm.create"].assert_not_called()
    salt_mods["xm.destroy"].assert_not_called()
    salt_mods["xm.shutdown"].assert_not_called()
    salt_mods["mine.send"].assert_not_called()


def _configured(guest):
    """The config written as running would write it (no other dom0s asked)."""
    args = {k: v for k, v in guest.items() if k != "other_dom0s"}
    assert xen_guest.configured(**args)["result"] is True


# --- never two instances: running ----------------------------------------------------


def test_a_guest_running_on_another_dom0_is_not_booted_but_configured(salt_mods, dom0s, guest,
                                                                        path):
    dom0s.mined["dom0-b"] = {"Domain-0": domain("running"), "g": domain()}
    ret = xen_guest.running(**guest)
    assert ret == {"name": "g", "result": True,
                   "changes": {"config": {"path": str(path), "action": "created"}},
                   "comment": f"g runs on dom0-b: not booted here; created the config {path}"}
    assert path.exists()
    _nothing_booted(salt_mods)
    salt_mods["mine.get"].assert_called_once_with(tgt=["dom0-b"], fun="xm.list_domains",
                                                  tgt_type="list")


def test_test_mode_predicts_the_config_of_a_guest_running_elsewhere(salt_mods, dom0s, guest,
                                                                    path):
    dom0s.mined["dom0-b"] = {"g": domain()}
    with patch.dict(xen_guest.__opts__, {"test": True}):
        ret = xen_guest.running(**guest)
    assert ret["result"] is None
    assert ret["changes"] == {"config": {"path": str(path), "action": "created"}}
    assert ret["comment"] == f"g runs on dom0-b: not booted here; would create the config {path}"
    assert not path.exists()
    _nothing_booted(salt_mods)


def test_a_guest_running_elsewhere_with_its_config_changes_nothing(salt_mods, dom0s, guest,
                                                                   path):
    _configured(guest)
    dom0s.mined["dom0-b"] = {"g": domain("paused")}
    ret = xen_guest.running(**guest)
    assert ret == {"name": "g", "result": True, "changes": {},
                   "comment": "g runs on dom0-b: not booted here"}
    _nothing_booted(salt_mods)


def test_a_changed_config_of_a_guest_running_elsewhere_is_updated(salt_mods, dom0s, guest,
                                                                  path):
    _configured(guest)
    dom0s.mined["dom0-b"] = {"g": domain()}
    ret = xen_guest.running(**dict(guest, memory=512, restart_on_change=True))
    assert ret["result"] is True
    assert ret["changes"]["config"]["action"] == "updated"
    assert list(ret["changes"]) == ["config"]
    assert ret["comment"] == f"g runs on dom0-b: not booted here; updated the config {path}"
    assert "memory = 512" in path.read_text()
    _nothing_booted(salt_mods)


def test_a_dying_domain_elsewhere_counts_as_running_there(salt_mods, dom0s, guest):
    _configured(guest)
    dom0s.mined["dom0-b"] = {"g": domain("dying")}
    ret = xen_guest.running(**guest)
    assert ret["result"] is True
    assert ret["comment"] == "g runs on dom0-b: not booted here"
    _nothing_booted(salt_mods)


@pytest.mark.parametrize("state", ["crashed", "shutdown"])
def test_a_dead_domain_elsewhere_does_not_prevent_the_boot(salt_mods, dom0s, guest, path,
                                                           state):
    dom0s.mined["dom0-b"] = {"g": domain(state)}
    ret = xen_guest.running(**guest)
    assert ret["result"] is True
    assert ret["comment"].startswith(f"Created the config {path} and booted g")
    salt_mods["xm.create"].assert_called_once_with(str(path), toolstack=None)


def test_running_here_and_on_another_dom0_is_an_error_that_changes_nothing(salt_mods, dom0s,
                                                                           guest, path):
    _configured(guest)
    before = path.read_text()
    dom0s.here["g"] = domain()
    dom0s.mined["dom0-b"] = {"g": domain()}
    ret = xen_guest.running(**dict(guest, memory=512, restart_on_change=True))
    assert ret == {"name": "g", "result": False, "changes": {},
                   "comment": f"g runs on two dom0s at once: dom0-a and dom0-b; nothing "
                              f"changed: {TWICE}"}
    assert path.read_text() == before
    _nothing_booted(salt_mods)


def test_running_on_two_other_dom0s_is_an_error(salt_mods, dom0s, guest, path):
    dom0s.mined = {"dom0-b": {"g": domain()}, "dom0-c": {"g": domain("running")}}
    ret = xen_guest.running(**dict(guest, other_dom0s=["dom0-b", "dom0-c"]))
    assert ret == {"name": "g", "result": False, "changes": {},
                   "comment": f"g runs on two dom0s at once: dom0-b and dom0-c; nothing "
                              f"changed: {TWICE}"}
    assert not path.exists()
    _nothing_booted(salt_mods)
    salt_mods["mine.get"].assert_called_once_with(tgt=["dom0-b", "dom0-c"],
                                                  fun="xm.list_domains", tgt_type="list")


@pytest.mark.parametrize("case", [
    ({"g--incoming": domain("paused")}, {}, "g--incoming on this dom0"),
    ({"g--migratedaway": domain("paused")}, {}, "g--migratedaway on this dom0"),
    ({}, {"g--incoming": domain("paused")}, "g--incoming on dom0-b"),
    ({}, {"g--migratedaway": domain("paused")}, "g--migratedaway on dom0-b"),
    ({"g": domain("crashed"), "g--migratedaway": domain("paused")},
     {"g--incoming": domain("paused")}, "g--incoming on dom0-b; g--migratedaway on this dom0"),
    ({"g": domain()}, {"g--incoming": domain("paused")}, "g--incoming on dom0-b"),
])
def test_a_migrations_names_anywhere_refuse_the_boot(salt_mods, dom0s, guest, path, case):
    here, there, shown = case
    dom0s.here.update(here)
    dom0s.mined["dom0-b"] = there
    ret = xen_guest.running(**dict(guest, restart_on_change=True))
    assert ret == {"name": "g", "result": False, "changes": {},
                   "comment": f"g is being migrated or a migration of it failed ({shown}): "
                              f"{MIGRATING}"}
    assert not path.exists()
    _nothing_booted(salt_mods)


@pytest.mark.parametrize("mined", [{}, {"dom0-b": "'xm.list_domains' is not available."},
                                   {"dom0-b": None}, {"dom0-c": {}}])
def test_a_dom0_missing_from_the_mine_fails_a_boot(salt_mods, dom0s, guest, path, mined):
    dom0s.mined = mined
    ret = xen_guest.running(**guest)
    assert ret == {"name": "g", "result": False, "changes": {},
                   "comment": "Cannot tell whether g runs on dom0-b (no domain list in the "
                              "mine: is that dom0 up and publishing xm.list_domains?): not "
                              "booted"}
    assert not path.exists()
    _nothing_booted(salt_mods)


def test_a_dom0_missing_from_the_mine_fails_a_boot_after_a_crash(salt_mods, dom0s, guest):
    dom0s.here["g"] = domain("crashed")
    dom0s.mined = {}
    ret = xen_guest.running(**guest)
    assert ret["result"] is False
    assert ret["comment"].startswith("Cannot tell whether g runs on dom0-b")
    _nothing_booted(salt_mods)


def test_a_dom0_missing_from_the_mine_is_no_matter_while_the_guest_runs_here(salt_mods, dom0s,
                                                                             guest, path):
    _configured(guest)
    dom0s.here["g"] = domain()
    dom0s.mined = {}
    ret = xen_guest.running(**guest)
    assert ret == {"name": "g", "result": True, "changes": {},
                   "comment": f"g is running with the config {path}"}
    _nothing_booted(salt_mods)


def test_a_guest_running_here_alone_is_left_running(salt_mods, dom0s, guest, path):
    _configured(guest)
    dom0s.here["g"] = domain("running")
    ret = xen_guest.running(**guest)
    assert ret == {"name": "g", "result": True, "changes": {},
                   "comment": f"g is running with the config {path}"}
    _nothing_booted(salt_mods)


def test_a_guest_running_nowhere_is_booted_and_the_mine_sent_again(salt_mods, guest, path):
    ret = xen_guest.running(**guest)
    assert ret["result"] is True
    assert ret["comment"] == (f"Created the config {path} and booted g; its console shows it on "
                              f"its NFS root after 2.5 s: {MOUNTED['evidence']}")
    assert ret["changes"]["guest"] == {"old": "absent", "new": "running",
                                       "evidence": MOUNTED["evidence"]}
    salt_mods["xm.create"].assert_called_once_with(str(path), toolstack=None)
    assert salt_mods["mine.send"].call_args_list == [SENT]
    assert salt_mods["mine.get"].call_args_list == [MINE]


def test_a_mine_that_cannot_be_sent_is_said(salt_mods, guest, path):
    salt_mods["mine.send"].side_effect = CommandExecutionError("no master")
    ret = xen_guest.running(**dict(guest, boot_timeout=0))
    assert ret["result"] is True
    assert ret["comment"] == (f"Created the config {path} and booted g (not watched: "
                              "boot_timeout is 0) (the mine could not be updated: no master)")
    salt_mods["xm.create"].assert_called_once()


def test_a_restart_sends_the_mine_again(salt_mods, dom0s, guest):
    _configured(guest)
    dom0s.here["g"] = domain()
    ret = xen_guest.running(**dict(guest, memory=512, restart_on_change=True))
    assert ret["result"] is True
    assert ret["changes"]["guest"]["new"] == "restarted"
    salt_mods["xm.create"].assert_called_once()
    assert salt_mods["mine.send"].call_args_list == [SENT]


def test_a_config_change_only_does_not_send_the_mine(salt_mods, dom0s, guest):
    _configured(guest)
    dom0s.here["g"] = domain()
    ret = xen_guest.running(**dict(guest, memory=512))
    assert ret["result"] is True
    assert list(ret["changes"]) == ["config"]
    salt_mods["mine.send"].assert_not_called()
    salt_mods["xm.create"].assert_not_called()


def test_without_other_dom0s_the_mine_is_neither_asked_nor_sent(salt_mods, guest):
    ret = xen_guest.running(**dict(guest, other_dom0s=None))
    assert ret["result"] is True
    salt_mods["xm.create"].assert_called_once()
    salt_mods["mine.get"].assert_not_called()
    salt_mods["mine.send"].assert_not_called()


def test_the_mine_is_asked_once_per_run(salt_mods, dom0s, guest, tmp_path):
    dom0s.mined["dom0-b"] = {"g": domain(), "h": domain()}
    assert xen_guest.running(**guest)["result"] is True
    assert xen_guest.running(**dict(guest, name="h"))["result"] is True
    assert xen_guest.running(**guest)["comment"] == "g runs on dom0-b: not booted here"
    assert salt_mods["mine.get"].call_args_list == [MINE]
    dom0s.mined["dom0-c"] = {}
    xen_guest.running(**dict(guest, name="h", other_dom0s=["dom0-c", "dom0-b"]))
    xen_guest.running(**dict(guest, name="h", other_dom0s=["dom0-b", "dom0-c"]))
    assert salt_mods["mine.get"].call_args_list == [
        MINE, call(tgt=["dom0-c", "dom0-b"], fun="xm.list_domains", tgt_type="list")]
    _nothing_booted(salt_mods)


@pytest.mark.parametrize("bad", [
    ("dom0-b", "other_dom0s: 'dom0-b' is not a list of minion ids"),
    ({"dom0-b": 1}, "other_dom0s: {'dom0-b': 1} is not a list of minion ids"),
    (["dom0-b", ""], "other_dom0s: ['dom0-b', ''] is not a list of minion ids"),
    (["dom0-b", 7], "other_dom0s: ['dom0-b', 7] is not a list of minion ids"),
    (["dom0-b", "dom0-a"], "other_dom0s: ['dom0-b', 'dom0-a'] holds this dom0 (dom0-a) itself"),
])
@pytest.mark.parametrize("function", ["running", "mod_watch"])
def test_bad_other_dom0s_are_a_clear_error(salt_mods, guest, path, bad, function):
    other_dom0s, message = bad
    arguments = dict(guest, other_dom0s=other_dom0s)
    if function == "running":
        ret = xen_guest.running(**arguments)
    else:
        ret = xen_guest.mod_watch(sfun="running", **arguments)
    assert ret == {"name": "g", "result": False, "changes": {}, "comment": message}
    assert not path.exists()
    salt_mods["mine.get"].assert_not_called()
    _nothing_booted(salt_mods)


# --- never two instances: mod_watch ---------------------------------------------------


def test_mod_watch_does_not_boot_a_guest_running_elsewhere(salt_mods, dom0s, guest, path):
    _configured(guest)
    dom0s.mined["dom0-b"] = {"g": domain()}
    ret = xen_guest.mod_watch(sfun="running", **guest)
    assert ret == {"name": "g", "result": True, "changes": {},
                   "comment": "g runs on dom0-b: not booted here"}
    _nothing_booted(salt_mods)


def test_mod_watch_does_not_restart_a_guest_running_twice(salt_mods, dom0s, guest):
    _configured(guest)
    dom0s.here["g"] = domain()
    dom0s.mined["dom0-b"] = {"g": domain()}
    ret = xen_guest.mod_watch(sfun="running", **guest)
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith("g runs on two dom0s at once: dom0-a and dom0-b")
    _nothing_booted(salt_mods)


def test_mod_watch_refuses_a_boot_over_a_migrations_names(salt_mods, dom0s, guest):
    dom0s.here["g--incoming"] = domain("paused")
    ret = xen_guest.mod_watch(sfun="running", **guest)
    assert ret["result"] is False
    assert ret["comment"] == (f"g is being migrated or a migration of it failed (g--incoming on "
                              f"this dom0): {MIGRATING}")
    _nothing_booted(salt_mods)


def test_mod_watch_restarts_a_guest_running_here_alone(salt_mods, dom0s, guest):
    _configured(guest)
    dom0s.here["g"] = domain()
    ret = xen_guest.mod_watch(sfun="running", **guest)
    assert ret["result"] is True
    assert ret["comment"].startswith("Restarted g")
    salt_mods["xm.shutdown"].assert_called_once_with("g", wait=True, timeout=60, toolstack=None)
    salt_mods["xm.create"].assert_called_once()
    assert salt_mods["mine.send"].call_args_list == [SENT]


# --- migrated --------------------------------------------------------------------------


@pytest.fixture
def clock():
    fake = MagicMock()
    fake.monotonic.side_effect = [100.0, 103.4]
    with patch.object(xen_guest, "time", fake):
        yield fake


@pytest.fixture
def moving(salt_mods, dom0s):
    """g runs here; xm.migrate moves it to dom0-b."""
    dom0s.here["g"] = domain()

    def migrate(name, host, ssh_command=None, timeout=None, toolstack=None):
        dom0s.mined["dom0-b"][name] = dom0s.here.pop(name)
        return {"name": name, "host": host, "toolstack": "xl", "output": ""}

    salt_mods["xm.migrate"].side_effect = migrate
    return dom0s


def _migrate(**extra):
    arguments = {"to": "dom0-b", "dom0s": DOM0S, "other_dom0s": ["dom0-b"],
                 "ssh_command": "ssh -o BatchMode=yes"}
    return xen_guest.migrated("g", **dict(arguments, **extra))


def test_a_migration_moves_the_guest_and_says_how_long_it_took(salt_mods, moving, clock):
    ret = _migrate(address="192.0.2.22", timeout=300)
    assert ret == {"name": "g", "result": True,
                   "changes": {"guest": {"old": "dom0-a", "new": "dom0-b"}, "seconds": 3.4},
                   "comment": "Migrated g live to dom0-b (192.0.2.22) in 3.4 s"}
    salt_mods["xm.migrate"].assert_called_once_with(
        "g", "192.0.2.22", ssh_command="ssh -o BatchMode=yes", timeout=300, toolstack=None)
    assert salt_mods["mine.send"].call_args_list == [SENT]
    assert salt_mods["mine.get"].call_args_list == [MINE]
    assert call(toolstack=None, fresh=True) in salt_mods["xm.list_domains"].call_args_list
    assert "g" not in moving.here
    salt_mods["xm.destroy"].assert_not_called()


def test_a_migration_uses_the_formulas_ssh_command_by_default(salt_mods, moving, clock):
    ret = _migrate(ssh_command=None, toolstack="xl")
    assert ret["result"] is True
    assert ret["comment"] == "Migrated g live to dom0-b (dom0-b) in 3.4 s"
    salt_mods["xm.migrate"].assert_called_once_with("g", "dom0-b", ssh_command=SSH, timeout=None,
                                                    toolstack="xl")


def test_a_migration_whose_mine_cannot_be_sent_says_so(salt_mods, moving, clock):
    salt_mods["mine.send"].side_effect = CommandExecutionError("no master")
    ret = _migrate()
    assert ret["result"] is True
    assert ret["comment"] == ("Migrated g live to dom0-b (dom0-b) in 3.4 s (the mine could not "
                              "be updated: no master)")


def test_test_mode_predicts_a_migration(salt_mods, moving):
    with patch.dict(xen_guest.__opts__, {"test": True}):
        ret = _migrate()
    assert ret == {"name": "g", "result": None,
                   "changes": {"guest": {"old": "dom0-a", "new": "dom0-b"}},
                   "comment": "Would migrate g live to dom0-b (dom0-b)"}
    salt_mods["xm.migrate"].assert_not_called()
    salt_mods["mine.send"].assert_not_called()


@pytest.mark.parametrize(("extra", "comment"), [
    ({"to": "dom0-c"}, "to: 'dom0-c' is not one of the dom0s of g (dom0-a, dom0-b): nothing moved"),
    ({"to": "dom0-a"}, "to: 'dom0-a' is this dom0: g would migrate onto itself: nothing moved"),
    ({"to": ""}, "to: '' is not a minion id ([A-Za-z0-9_.-]+): nothing moved"),
    ({"to": None}, "to: None is not a minion id ([A-Za-z0-9_.-]+): nothing moved"),
])
def test_a_bad_target_moves_nothing(salt_mods, moving, extra, comment):
    ret = _migrate(**extra)
    assert ret == {"name": "g", "result": False, "changes": {}, "comment": comment}
    salt_mods["xm.migrate"].assert_not_called()
    salt_mods["mine.send"].assert_not_called()
    assert "g" in moving.here


def test_a_bad_name_moves_nothing(salt_mods, moving):
    ret = xen_guest.migrated("../g", to="dom0-b", dom0s=DOM0S, other_dom0s=["dom0-b"])
    assert ret["result"] is False
    assert ret["comment"].startswith("name: '../g' is not a valid Xen domain name")
    salt_mods["xm.migrate"].assert_not_called()


@pytest.mark.parametrize(("here", "mined", "comment"), [
    ({}, {"dom0-b": {}, "dom0-c": {}}, "g does not run on this dom0 (dom0-a): nothing moved"),
    ({"g": domain("crashed")}, {"dom0-b": {}, "dom0-c": {}},
     "g does not run on this dom0 (dom0-a): nothing moved"),
    ({}, {"dom0-b": {}, "dom0-c": {"g": domain()}},
     "g does not run on this dom0 (dom0-a) (it runs on dom0-c): nothing moved"),
    ({"g": domain()}, {"dom0-b": {"g": domain()}, "dom0-c": {}},
     "g runs on two dom0s at once: dom0-a and dom0-b; not migrating it: nothing moved"),
    ({"g": domain()}, {"dom0-b": {}, "dom0-c": {"g": domain()}},
     "g runs on two dom0s at once: dom0-a and dom0-c; not migrating it: nothing moved"),
    ({"g": domain()}, {"dom0-b": {"g--incoming": domain("paused")}, "dom0-c": {}},
     "g is being migrated or a migration of it failed (g--incoming on dom0-b): nothing moved"),
    ({"g--migratedaway": domain("paused")}, {"dom0-b": {"g--incoming": domain("paused")},
                                             "dom0-c": {}},
     "g is being migrated or a migration of it failed (g--incoming on dom0-b; g--migratedaway "
     "on this dom0): nothing moved"),
    ({"g--migratedaway": domain("paused")}, {"dom0-b": {"g": domain()}, "dom0-c": {}},
     "g is being migrated or a migration of it failed (g--migratedaway on this dom0): nothing "
     "moved"),
])
def test_a_migration_needs_the_guest_here_once(salt_mods, dom0s, here, mined, comment):
    dom0s.here, dom0s.mined = here, mined
    ret = _migrate(dom0s=["dom0-a", "dom0-b", "dom0-c"], other_dom0s=["dom0-b", "dom0-c"])
    assert ret == {"name": "g", "result": False, "changes": {}, "comment": comment}
    salt_mods["xm.migrate"].assert_not_called()
    salt_mods["xm.destroy"].assert_not_called()
    salt_mods["mine.send"].assert_not_called()


def test_a_guest_already_on_the_target_is_the_state_reached(salt_mods, dom0s):
    dom0s.mined["dom0-b"] = {"g": domain()}
    ret = _migrate()
    assert ret == {"name": "g", "result": True, "changes": {},
                   "comment": "g already runs on dom0-b"}
    salt_mods["xm.migrate"].assert_not_called()
    salt_mods["mine.send"].assert_not_called()


def test_without_other_dom0s_the_target_is_asked(salt_mods, moving, clock):
    ret = _migrate(other_dom0s=None)
    assert ret["result"] is True
    assert salt_mods["mine.get"].call_args_list == [MINE]


@pytest.mark.parametrize(("left", "shown"), [
    ({"g--migratedaway": domain("paused")},
     "; left on this dom0: g--migratedaway (not destroyed: see which instance runs)"),
    ({"g": domain("paused"), "g--migratedaway": domain("paused")},
     "; left on this dom0: g, g--migratedaway (not destroyed: see which instance runs)"),
    ({"g": domain()}, "; left on this dom0: g (not destroyed: see which instance runs)"),
    ({}, ""),
])
def test_a_failed_migration_names_its_leftovers_and_destroys_nothing(salt_mods, dom0s, left,
                                                                     shown):
    dom0s.here["g"] = domain()
    error = "'xl migrate g dom0-b' failed (exit 1): migration sender: Target reported failure"

    def migrate(name, host, **kwargs):
        dom0s.here = dict(left)
        raise CommandExecutionError(error)

    salt_mods["xm.migrate"].side_effect = migrate
    ret = _migrate()
    assert ret == {"name": "g", "result": False, "changes": {},
                   "comment": f"The migration of g to dom0-b failed: {error}{shown}"}
    salt_mods["xm.destroy"].assert_not_called()
    salt_mods["xm.create"].assert_not_called()
    assert salt_mods["mine.send"].call_args_list == [SENT]
    assert dom0s.here == left


@pytest.mark.parametrize(("left", "shown"), [
    ({"g": domain()}, "g"),
    ({"g--migratedaway": domain("paused")}, "g--migratedaway"),
])
def test_leftovers_after_a_successful_migration_fail_it(salt_mods, dom0s, clock, left, shown):
    dom0s.here["g"] = domain()

    def migrate(name, host, **kwargs):
        dom0s.here = dict(left)
        return {}

    salt_mods["xm.migrate"].side_effect = migrate
    ret = _migrate()
    assert ret == {"name": "g", "result": False,
                   "changes": {"guest": {"old": "dom0-a", "new": "dom0-b"}, "seconds": 3.4},
                   "comment": f"xl migrate of g to dom0-b returned after 3.4 s, but this dom0 "
                              f"still has {shown}: not destroyed"}
    salt_mods["xm.destroy"].assert_not_called()
    assert salt_mods["mine.send"].call_args_list == [SENT]


# --- received --------------------------------------------------------------------------


def test_a_received_guest_runs_here(salt_mods, dom0s):
    dom0s.here["g"] = domain()
    ret = xen_guest.received("g", source="dom0-b", other_dom0s=["dom0-a", "dom0-b"])
    assert ret == {"name": "g", "result": True, "changes": {},
                   "comment": "g runs on this dom0 (dom0-a), arrived from dom0-b"}
    assert call(toolstack=None, fresh=True) in salt_mods["xm.list_domains"].call_args_list
    assert salt_mods["mine.get"].call_args_list == [MINE]
    assert salt_mods["mine.send"].call_args_list == [SENT]


def test_received_in_test_mode_sends_nothing(salt_mods, dom0s):
    dom0s.here["g"] = domain()
    with patch.dict(xen_guest.__opts__, {"test": True}):
        ret = xen_guest.received("g", other_dom0s=["dom0-b"])
    assert ret == {"name": "g", "result": True, "changes": {},
                   "comment": "g runs on this dom0 (dom0-a)"}
    salt_mods["mine.send"].assert_not_called()


@pytest.mark.parametrize(("here", "there", "comment"), [
    ({}, {}, "g does not run on this dom0 (absent)"),
    ({"g": domain("crashed")}, {}, "g does not run on this dom0 (crashed)"),
    ({}, {"g": domain()}, "g does not run on this dom0 (absent)"),
    ({"g--incoming": domain("paused")}, {}, "g is not settled here: g--incoming on this dom0"),
    ({"g": domain(), "g--incoming": domain("paused")}, {},
     "g is not settled here: g--incoming on this dom0"),
    ({"g": domain()}, {"g--migratedaway": domain("paused")},
     "g is not settled here: g--migratedaway on dom0-b"),
    ({"g": domain()}, {"g": domain()}, "g runs here and on dom0-b"),
])
def test_a_guest_not_received_is_an_error(salt_mods, dom0s, here, there, comment):
    dom0s.here, dom0s.mined = here, {"dom0-b": there}
    ret = xen_guest.received("g", source="dom0-b", other_dom0s=["dom0-b"])
    assert ret == {"name": "g", "result": False, "changes": {}, "comment": comment}
    salt_mods["mine.send"].assert_not_called()
    salt_mods["xm.destroy"].assert_not_called()


# --- the arguments of a migration, checked before anything is asked or run ---------------


@pytest.mark.parametrize(("extra", "comment"), [
    # sh -c runs "exec SSH HOST xl migrate-receive": a zone id would be run here.
    ({"address": "fe80::1%$(reboot)"},
     "address: 'fe80::1%$(reboot)' is an IPv6 address with a zone id"),
    ({"address": "fe80::1%eth0"}, "address: 'fe80::1%eth0' is an IPv6 address with a zone id"),
    ({"address": "dom0-b\n"}, "address: 'dom0-b\\n' is not a host name or address"),
    ({"address": "dom0-b;id"}, "address: 'dom0-b;id' is not a host name or address"),
    ({"address": "root\n@dom0-b"}, "address: 'root\\n@dom0-b' is not a host name or address"),
    ({"to": "dom0_b"}, "to: 'dom0_b' is not a host name or address"),
    ({"to": "dom0-b\n"}, "to: 'dom0-b\\n' is not a minion id"),
    ({"ssh_command": "ssh -o BatchMode=yes\n"}, "ssh_command: 'ssh -o BatchMode=yes\\n' is not"),
    ({"other_dom0s": "dom0-b"}, "other_dom0s: 'dom0-b' is not a list of minion ids"),
    ({"dom0s": "dom0-a dom0-b"}, "dom0s: 'dom0-a dom0-b' is not a list of minion ids"),
    ({"dom0s": []}, "dom0s: [] is not a non-empty list of minion ids"),
    ({"dom0s": ["dom0-a", "dom0 b"]}, "dom0s[1]: 'dom0 b' is not a minion id"),
    ({"timeout": "abc"}, "timeout: 'abc' is not a whole number of seconds from 1 to 86400"),
    ({"timeout": -1}, "timeout: -1 is not a whole number of seconds from 1 to 86400"),
    ({"timeout": 0}, "timeout: 0 is not a whole number of seconds from 1 to 86400"),
    ({"timeout": 86401}, "timeout: 86401 is not a whole number of seconds from 1 to 86400"),
    ({"timeout": True}, "timeout: True is not a whole number of seconds"),
    ({"timeout": 1.5}, "timeout: 1.5 is not a whole number of seconds"),
])
def test_bad_migration_arguments_ask_and_run_nothing(salt_mods, moving, extra, comment):
    ret = _migrate(**extra)
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith(comment), ret["comment"]
    assert ret["comment"].endswith(": nothing moved")
    for function in ("xm.migrate", "xm.list_domains", "mine.get", "mine.send"):
        salt_mods[function].assert_not_called()
    assert "g" in moving.here


def test_a_timeout_in_digits_is_taken(salt_mods, moving, clock):
    ret = _migrate(timeout="600")
    assert ret["result"] is True
    assert salt_mods["xm.migrate"].call_args.kwargs["timeout"] == 600


@pytest.mark.parametrize(("extra", "comment"), [
    # A string was read character by character: "the guest runs here".
    ({"other_dom0s": "dom0-b"}, "other_dom0s: 'dom0-b' is not a list of minion ids"),
    ({"other_dom0s": ["dom0-b\n"]}, "other_dom0s[0]: 'dom0-b\\n' is not a minion id"),
    ({"source": "dom0-b;id"}, "source: 'dom0-b;id' is not a minion id"),
])
def test_bad_received_arguments_ask_nothing(salt_mods, dom0s, extra, comment):
    dom0s.here["g"] = domain()
    dom0s.mined["dom0-b"]["g"] = domain()  # it runs there too
    ret = xen_guest.received("g", **dict({"other_dom0s": ["dom0-b"]}, **extra))
    assert ret["result"] is False
    assert ret["comment"].startswith(comment), ret["comment"]
    for function in ("xm.list_domains", "mine.get", "mine.send"):
        salt_mods[function].assert_not_called()
