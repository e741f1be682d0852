"""The xen_guest states with a mocked loader: the paths the double does not reach easily."""

from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.loader import functions
from xen_nfsroot.modules import nfsroot_files, xen_config
from xen_nfsroot.states import xen_guest


@pytest.fixture
def salt_mods():
    salt = functions(xen_config, nfsroot_files)
    salt.update({
        "xm.config_format": MagicMock(return_value="xl"),
        "xm.state": MagicMock(return_value="absent"),
        "xm.create": MagicMock(return_value={}),
        "xm.destroy": MagicMock(return_value=True),
        "xm.shutdown": MagicMock(return_value={"stopped": True, "timed_out": False}),
    })
    return salt


@pytest.fixture
def configure_loader_modules(salt_mods):
    return {
        xen_guest: {"__salt__": salt_mods, "__opts__": {"test": False}},
        xen_config: {"__salt__": salt_mods},
    }


@pytest.fixture
def guest(tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    return {"name": "g", "kernel": str(kernel), "nfs_server": "192.0.2.1", "nfs_root": "/xen",
            "config_dir": str(tmp_path / "xen")}


def test_virtual_needs_the_module():
    assert xen_guest.__virtual__() == "xen_guest"
    xen_guest.__salt__.pop("xm.create")
    assert xen_guest.__virtual__()[0] is False


def test_a_crashed_domain_is_destroyed_and_booted(salt_mods, guest, tmp_path):
    assert xen_guest.configured(**guest)["result"] is True
    salt_mods["xm.state"].return_value = "crashed"
    ret = xen_guest.running(**guest)
    assert ret["result"] is True
    assert ret["comment"] == "Destroyed the crashed domain g and booted it again"
    assert ret["changes"] == {"guest": {"old": "crashed", "new": "running"}}
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
    assert ret["comment"] == "Restarted g"
    salt_mods["xm.shutdown"].assert_called_once_with("g", wait=True, timeout=60, toolstack=None)
