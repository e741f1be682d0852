"""xen_boots.prepared: the reads the boots of a run share, made once before
they fork; the execution modules keep each answer for the run."""

from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from xen_nfsroot.modules import guest_kernel, xm
from xen_nfsroot.states import xen_boots


@pytest.fixture
def salt_mods():
    return {"xm.list_domains": MagicMock(return_value={}),
            "xm.mined_domains": MagicMock(return_value={"dom0-b": {}}),
            "guest_kernel.check": MagicMock(return_value={"ok": True})}


@pytest.fixture
def configure_loader_modules(salt_mods):
    return {xen_boots: {"__salt__": salt_mods, "__opts__": {"test": False}},
            xm: {"__salt__": {"mine.get": MagicMock(return_value={"dom0-b": {"g": {}},
                                                                   "dom0-x": {"h": {}}})},
                 "__context__": {}},
            guest_kernel: {"__context__": {}}}


def test_each_shared_read_is_made_and_said(salt_mods):
    ret = xen_boots.prepared("boots", kernels=[["/boot/k", None, True, "pv"]],
                             dom0s=[["dom0-b"]], toolstacks=[None])
    assert ret == {"name": "boots", "result": True, "changes": {}, "comment": (
        "Read the domain list, the mine of dom0-b, the kernel /boot/k once for the boots of "
        "this run")}
    salt_mods["xm.list_domains"].assert_called_once_with(toolstack=None)
    salt_mods["xm.mined_domains"].assert_called_once_with(["dom0-b"])
    salt_mods["guest_kernel.check"].assert_called_once_with(
        "/boot/k", ramdisk=None, dhcp=True, guest_type="pv")


def test_a_failed_read_is_left_to_the_guests_states(salt_mods):
    salt_mods["guest_kernel.check"].side_effect = CommandExecutionError("no such kernel")
    ret = xen_boots.prepared("boots", kernels=[["/boot/k", None, True, "pv"]])
    assert ret["result"] is True
    assert ret["comment"] == ("Read the domain list once for the boots of this run; left to the "
                              "guests' own states: the kernel /boot/k (no such kernel)")


def test_bad_arguments_fail_before_any_read(salt_mods):
    ret = xen_boots.prepared("boots", dom0s="dom0-b")
    assert ret["result"] is False
    assert ret["comment"].startswith("dom0s: 'dom0-b' ")
    salt_mods["xm.list_domains"].assert_not_called()


def test_the_mine_is_read_once_per_run_for_one_set_of_dom0s():
    assert xm.mined_domains(["dom0-b"]) == {"dom0-b": {"g": {}}}  # dom0-x was not asked for
    assert xm.mined_domains(["dom0-b"]) == {"dom0-b": {"g": {}}}
    xm.__salt__["mine.get"].assert_called_once_with(tgt=["dom0-b"], fun="xm.list_domains",
                                                    tgt_type="list")
    assert xm.mined_domains([]) == {}
    with pytest.raises(Exception, match="^dom0s: "):
        xm.mined_domains("dom0-b")


def test_a_kernel_is_checked_once_per_run(monkeypatch):
    checked = MagicMock(return_value={"ok": True, "problems": []})
    monkeypatch.setattr(guest_kernel.kernels, "check", checked)
    monkeypatch.setattr(guest_kernel, "_runner", lambda: None)
    first = guest_kernel.check("/boot/k", dhcp=True)
    first["problems"].append("changed by a caller")
    assert guest_kernel.check("/boot/k", dhcp=True) == {"ok": True, "problems": []}
    guest_kernel.check("/boot/k", dhcp=False)
    assert checked.call_count == 2
