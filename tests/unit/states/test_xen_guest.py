"""The xen_guest states with a mocked loader: the paths the double does not reach easily."""

import shutil
from unittest.mock import MagicMock, patch

import pytest
from salt.exceptions import CommandExecutionError

from tests.support import DATA
from tests.support.commands import Commands
from tests.support.loader import functions
from xen_nfsroot.modules import guest_console, guest_kernel, xen_config
from xen_nfsroot.states import xen_guest

MOUNTED = {"verdict": "mounted", "evidence": "VFS: Mounted root (nfs filesystem) readonly",
           "lines": [], "seconds": 2.5, "log": "/var/log/xen/console/guest-g.log"}


@pytest.fixture
def salt_mods():
    # The operations the states ask of the dom0: the config files, the console
    # log and failure record, the kernel check (its decompressors run for
    # real); the toolstack is mocked.
    salt = functions(xen_config, guest_console, guest_kernel)
    salt.update({
        "cmd.run_all": Commands(real=True),
        "xm.config_format": MagicMock(return_value="xl"),
        "xm.state": MagicMock(return_value="absent"),
        "xm.create": MagicMock(return_value={}),
        "xm.destroy": MagicMock(return_value=True),
        "xm.list_domains": MagicMock(return_value={}),
        "xm.shutdown": MagicMock(return_value={"stopped": True, "timed_out": False}),
        "guest_console.watch": MagicMock(return_value=MOUNTED),
    })
    return salt


@pytest.fixture
def configure_loader_modules(salt_mods, tmp_path):
    opts = {"test": False, "cachedir": str(tmp_path / "cache")}
    return {
        xen_guest: {"__salt__": salt_mods, "__opts__": opts, "__context__": {}},
        guest_console: {"__salt__": salt_mods, "__opts__": opts},
        guest_kernel: {"__salt__": salt_mods, "__context__": {}},
    }


@pytest.fixture
def guest(tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    return {"name": "g", "kernel": str(kernel), "nfs_server": "192.0.2.1", "nfs_root": "/xen",
            "config_dir": str(tmp_path / "xen"), "check_kernel": False}


def test_virtual_needs_the_module():
    assert xen_guest.__virtual__() == "xen_guest"
    xen_guest.__salt__.pop("xm.create")
    assert xen_guest.__virtual__()[0] is False


def test_a_crashed_domain_is_destroyed_and_booted(salt_mods, guest, tmp_path):
    assert xen_guest.configured(**guest)["result"] is True
    salt_mods["xm.state"].return_value = "crashed"
    ret = xen_guest.running(**guest)
    assert ret["result"] is True
    assert ret["comment"] == (
        "Destroyed the crashed domain g and booted it again; its console shows it on its NFS "
        "root after 2.5 s: VFS: Mounted root (nfs filesystem) readonly")
    assert ret["changes"] == {"guest": {"old": "crashed", "new": "running",
                                        "evidence": MOUNTED["evidence"]}}
    salt_mods["xm.destroy"].assert_called_once_with("g", toolstack=None)
    salt_mods["xm.create"].assert_called_once_with(str(tmp_path / "xen" / "g.cfg"),
                                                   toolstack=None)


def test_a_dying_domain_is_an_error(salt_mods, guest):
    salt_mods["xm.state"].return_value = "dying"
    ret = xen_guest.running(**guest)
    assert ret["result"] is False
    assert ret["comment"] == "g is being destroyed by Xen: apply the state again later"
    salt_mods["xm.create"].assert_not_called()


def test_a_failed_boot_reports_the_written_config(salt_mods, guest, tmp_path):
    salt_mods["xm.create"].side_effect = CommandExecutionError("'xl create' failed (exit 3)")
    ret = xen_guest.running(**guest)
    path = tmp_path / "xen" / "g.cfg"
    assert ret["result"] is False
    assert ret["comment"] == f"Created the config {path}, but: 'xl create' failed (exit 3)"
    assert ret["changes"] == {"config": {"path": str(path), "action": "created"}}
    assert path.exists()


def test_test_mode_predicts_a_restart(salt_mods, guest, tmp_path):
    assert xen_guest.configured(**guest)["result"] is True
    salt_mods["xm.state"].return_value = "running"
    guest["memory"] = 512
    xen_guest.__opts__["test"] = True
    ret = xen_guest.running(restart_on_change=True, **guest)
    assert ret["result"] is None
    assert ret["comment"] == f"Would update the config {tmp_path / 'xen' / 'g.cfg'} and restart g"
    assert ret["changes"]["guest"] == {"old": "running", "new": "restarted"}
    salt_mods["xm.shutdown"].assert_not_called()
    assert "memory = 256" in (tmp_path / "xen" / "g.cfg").read_text()


def test_a_paused_domain_is_destroyed_by_stopped(salt_mods):
    salt_mods["xm.state"].return_value = "paused"
    ret = xen_guest.stopped("g")
    assert ret["result"] is True
    assert ret["comment"] == "Destroyed the paused domain g"
    assert ret["changes"] == {"guest": {"old": "paused", "new": "absent", "destroyed": True}}
    salt_mods["xm.shutdown"].assert_not_called()


def test_stopped_checks_the_name_first(salt_mods):
    ret = xen_guest.stopped("../g")
    assert ret["result"] is False
    assert ret["comment"].startswith("name: '../g' is not a valid Xen domain name")
    salt_mods["xm.state"].assert_not_called()


def test_mod_watch_only_acts_for_running(salt_mods, guest):
    ret = xen_guest.mod_watch("g", sfun="stopped")
    assert ret["changes"] == {}
    assert ret["comment"] == "Nothing to do on a watched change for xen_guest.stopped"
    salt_mods["xm.state"].return_value = "blocked"
    assert xen_guest.configured(**guest)["result"] is True
    ret = xen_guest.mod_watch(sfun="running", **guest)
    assert ret["result"] is True
    assert ret["comment"] == (
        "Restarted g; its console shows it on its NFS root after 2.5 s: " + MOUNTED["evidence"])
    salt_mods["xm.shutdown"].assert_called_once_with("g", wait=True, timeout=60, toolstack=None)


# --- proven boots ---------------------------------------------------------------------

DEBIAN_CONFIG = DATA / "kernel" / "debian-6.1.0-50-amd64.config"
PANIC = {"verdict": "failed", "evidence": "Kernel panic - not syncing: VFS: Unable to mount "
         "root fs on unknown-block(0,255)", "lines": ["VFS: Cannot open root device \"nfs\"",
                                                     "Kernel panic - not syncing: VFS: Unable "
                                                     "to mount root fs on unknown-block(0,255)"],
         "seconds": 4.0, "log": "/var/log/xen/console/guest-g.log"}


@pytest.fixture
def debian_kernel(tmp_path, guest):
    """The Debian 12 kernel's name and config beside it (CONFIG_ROOT_NFS not set)."""
    kernel = tmp_path / "boot" / "vmlinuz-6.1.0-50-amd64"
    kernel.parent.mkdir()
    kernel.write_bytes(b"not a bzImage")
    shutil.copy(DEBIAN_CONFIG, kernel.parent / "config-6.1.0-50-amd64")
    return dict(guest, kernel=str(kernel), check_kernel=True)


@pytest.mark.parametrize("test", [False, True])
def test_a_kernel_that_cannot_mount_an_nfs_root_is_refused(salt_mods, debian_kernel, tmp_path,
                                                          test):
    with patch.dict(xen_guest.__opts__, {"test": test}):
        ret = xen_guest.running(**debian_kernel)
    assert ret["result"] is False
    assert ret["changes"] == {}
    config = tmp_path / "boot" / "config-6.1.0-50-amd64"
    assert (f"CONFIG_ROOT_NFS is not set in {config}: this kernel cannot mount its root over "
            "NFS without an initramfs") in ret["comment"]
    assert not (tmp_path / "xen").exists()
    salt_mods["xm.create"].assert_not_called()


def test_a_kernel_whose_config_is_unknown_is_booted_and_said_unchecked(salt_mods, guest):
    ret = xen_guest.running(**dict(guest, check_kernel=True))
    assert ret["result"] is True
    assert "was not checked: its release is unknown" in ret["comment"]
    salt_mods["xm.create"].assert_called_once()


def test_a_failed_boot_is_reported_and_not_tried_again(salt_mods, guest, tmp_path):
    salt_mods["guest_console.watch"].return_value = PANIC
    ret = xen_guest.running(**guest)
    assert ret["result"] is False
    assert ret["changes"]["guest"]["new"] == "failed"
    assert ret["comment"].startswith(
        f"Created the config {tmp_path / 'xen' / 'g.cfg'} and booted g, but it failed to come "
        "up on its NFS root: Kernel panic - not syncing")
    assert 'VFS: Cannot open root device "nfs"' in ret["comment"]
    again = xen_guest.running(**guest)
    assert again["result"] is False
    assert again["changes"] == {}
    assert again["comment"].startswith("g failed to boot with this config and kernel (")
    assert again["comment"].endswith(
        "Not booting it again until its config, kernel or export changes (or retry: True)")
    assert salt_mods["xm.create"].call_count == 1
    salt_mods["guest_console.watch"].return_value = MOUNTED
    retried = xen_guest.running(**dict(guest, retry=True))
    assert retried["result"] is True
    assert salt_mods["xm.create"].call_count == 2
    assert guest_console.last_failure("g") is None


def test_a_changed_config_is_booted_again_after_a_failure(salt_mods, guest):
    salt_mods["guest_console.watch"].return_value = PANIC
    xen_guest.running(**guest)
    salt_mods["guest_console.watch"].return_value = MOUNTED
    ret = xen_guest.running(**dict(guest, memory=512))
    assert ret["result"] is True
    assert salt_mods["xm.create"].call_count == 2


def test_boot_timeout_zero_does_not_watch(salt_mods, guest):
    ret = xen_guest.running(**dict(guest, boot_timeout=0))
    assert ret["result"] is True
    assert ret["comment"].endswith("booted g (not watched: boot_timeout is 0)")
    salt_mods["guest_console.watch"].assert_not_called()


@pytest.mark.parametrize(("verdict", "ending"), [
    ({"verdict": "alive", "evidence": None, "lines": [], "seconds": 120.0, "log": "/l"},
     "it still runs after 120.0 s but its console (/var/log/xen/console/guest-g.log) has not "
     "shown its root mounted"),
    ({"verdict": "unseen", "evidence": None, "lines": [], "seconds": 120.0, "log": "/l"},
     "it still runs after 120.0 s; the root mount was not seen (no console log "
     "/var/log/xen/console/guest-g.log: is xenconsoled logging guests?)"),
])
def test_a_boot_the_console_does_not_prove_says_so(salt_mods, guest, verdict, ending):
    salt_mods["guest_console.watch"].return_value = verdict
    ret = xen_guest.running(**guest)
    assert ret["result"] is True
    assert ret["comment"].endswith(ending)


def test_the_watch_gets_the_console_from_its_size_at_create(salt_mods, guest, tmp_path):
    console = tmp_path / "console"
    console.mkdir()
    (console / "guest-g.log").write_bytes(b"an earlier boot\n")
    xen_guest.running(**dict(guest, console_dir=str(console), boot_timeout=30,
                             boot_marker="GUEST-UP"))
    salt_mods["guest_console.watch"].assert_called_once_with(
        "g", str(console / "guest-g.log"), 16, timeout=30, marker="GUEST-UP", toolstack=None)


@pytest.mark.parametrize(("changes", "message"), [
    ({"boot_marker": "GUEST-UP ("}, "boot_marker: 'GUEST-UP (' is not a valid regular "
                                     "expression"),
    ({"boot_timeout": -1}, "boot_timeout: -1 is not a number of seconds >= 0"),
    ({"on_crash": "explode"}, "on_crash: 'explode' must be one of destroy, restart, preserve"),
    ({"console_dir": "var/log"}, "console_dir: 'var/log' is not a normalised absolute path"),
])
def test_bad_boot_settings_change_nothing(salt_mods, guest, tmp_path, changes, message):
    ret = xen_guest.running(**dict(guest, **changes))
    assert ret["result"] is False
    assert ret["comment"].startswith(message)
    assert ret["changes"] == {}
    assert not (tmp_path / "xen").exists()
    salt_mods["xm.create"].assert_not_called()


# --- a failed boot whose domain stays up ------------------------------------------------

RETRYING = {"verdict": "failed", "evidence": "Begin: Retrying nfs mount ... done.",
            "lines": ["Begin: Retrying nfs mount ... done."], "seconds": 30.0,
            "log": "/var/log/xen/console/guest-g.log"}


@pytest.fixture
def dom0(salt_mods):
    """The toolstack as a table of domains: xl create adds one that stays
    up (an initramfs retrying its NFS mount), xl destroy removes it."""
    domains = {}

    def create(path, toolstack=None):
        domains["g"] = {"id": len(salt_mods["xm.create"].mock_calls) + 4, "state": "blocked"}
        return {}

    salt_mods["xm.create"].side_effect = create
    salt_mods["xm.destroy"].side_effect = lambda name, toolstack=None: domains.pop(name)
    salt_mods["xm.state"].side_effect = lambda name, **_: domains.get(name, {}).get(
        "state", "absent")
    salt_mods["xm.list_domains"].side_effect = lambda **_: {k: dict(v) for k, v in
                                                            domains.items()}
    salt_mods["guest_console.watch"].return_value = RETRYING
    return domains


def test_a_failed_boot_whose_domain_stays_up_is_destroyed_and_stays_failed(salt_mods, guest,
                                                                            dom0):
    ret = xen_guest.running(**guest)
    assert ret["result"] is False
    assert ret["changes"]["guest"]["new"] == "failed"
    assert ret["changes"]["guest"]["destroyed"] is True
    assert ret["comment"].endswith("; destroyed it (on_crash: destroy; on_crash: preserve keeps "
                                   "a failed guest for inspection)")
    assert dom0 == {}
    for _ in range(2):
        again = xen_guest.running(**guest)
        assert again["result"] is False
        assert again["changes"] == {}
        assert again["comment"].startswith("g failed to boot with this config and kernel (")
    assert salt_mods["xm.create"].call_count == 1


def test_a_preserved_failed_domain_is_reported_failed_until_retry(salt_mods, guest, dom0):
    guest = dict(guest, on_crash="preserve")
    ret = xen_guest.running(**guest)
    assert ret["result"] is False
    assert ret["comment"].endswith("; g is kept running for inspection (on_crash: preserve)")
    assert "destroyed" not in ret["changes"]["guest"]
    assert guest_console.last_failure("g")["domain_id"] == dom0["g"]["id"]
    for _ in range(2):
        again = xen_guest.running(**guest)
        assert again["result"] is False
        assert again["changes"] == {}
        assert "Its domain still runs, kept for inspection (on_crash: preserve). Not booting " \
               "it again until its config, kernel or export changes (or retry: True)" \
               in again["comment"]
    salt_mods["xm.destroy"].assert_not_called()
    with patch.dict(xen_guest.__opts__, {"test": True}):
        predicted = xen_guest.running(**dict(guest, retry=True))
    assert predicted["comment"] == "Would destroy the failed domain g and boot it again"
    salt_mods["guest_console.watch"].return_value = MOUNTED
    retried = xen_guest.running(**dict(guest, retry=True))
    assert retried["result"] is True
    assert retried["changes"]["guest"]["old"] == "failed"
    assert retried["comment"].startswith("Destroyed the failed domain g and booted it again")
    assert salt_mods["xm.destroy"].call_count == 1
    assert salt_mods["xm.create"].call_count == 2
    assert xen_guest.running(**guest)["comment"].startswith("g is running")


def test_a_preserved_failed_domain_is_booted_again_when_its_config_changes(salt_mods, guest,
                                                                          dom0):
    guest = dict(guest, on_crash="preserve")
    xen_guest.running(**guest)
    salt_mods["guest_console.watch"].return_value = MOUNTED
    ret = xen_guest.running(**dict(guest, memory=512))
    assert ret["result"] is True
    assert ret["changes"]["guest"] == {"old": "failed", "new": "running",
                                       "evidence": MOUNTED["evidence"]}
    assert salt_mods["xm.create"].call_count == 2


def test_a_domain_booted_by_hand_after_a_failure_is_not_the_failed_one(salt_mods, guest, dom0):
    xen_guest.running(**dict(guest, on_crash="preserve"))
    dom0["g"]["id"] += 10  # destroyed and created again outside the state
    assert xen_guest.running(**dict(guest, on_crash="preserve"))["result"] is True


@pytest.mark.parametrize("record", ["5", '["abc"]', '{"fingerprint": "abc"}', "{not json",
                                    "directory"])
def test_a_failure_record_not_written_here_is_said_and_replaced(salt_mods, guest, tmp_path,
                                                                record):
    path = tmp_path / "cache" / "xen_nfsroot" / "boot-failures" / "g.json"
    path.parent.mkdir(parents=True)
    if record == "directory":
        (path / "x").mkdir(parents=True)
    else:
        path.write_text(record)
    ret = xen_guest.running(**guest)
    assert ret["result"] is True
    assert ret["comment"].endswith("; removed)")
    assert f"(the record of its last failed boot was not readable: {path} " in ret["comment"]
    assert not path.exists()
    salt_mods["xm.create"].assert_called_once()


def test_a_console_log_that_is_a_link_is_refused_before_the_boot(salt_mods, guest, tmp_path):
    console = tmp_path / "console"
    console.mkdir()
    (tmp_path / "shadow").write_text("root:$6$secret-hash:19000\n")
    (console / "guest-g.log").symlink_to(tmp_path / "shadow")
    ret = xen_guest.running(**dict(guest, console_dir=str(console)))
    assert ret["result"] is False
    assert ret["comment"].endswith(f"but: console log {console / 'guest-g.log'} is a symbolic "
                                   "link: refusing to follow it")
    assert "secret-hash" not in ret["comment"]
    salt_mods["xm.create"].assert_not_called()
