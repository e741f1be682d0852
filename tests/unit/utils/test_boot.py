"""A guest's boot, planned: the steps in both tenses, the fingerprint of what
a boot depends on, the refusals and the console's verdict in words."""

import os

import pytest
from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import boot

CREATED = {"path": "/etc/xen/g.cfg", "action": "created"}


def test_the_config_change_with_its_diff():
    assert boot.config_change("/etc/xen/g.cfg", None, "a\n") == CREATED
    assert boot.config_change("/etc/xen/g.cfg", "a\n", "a\n") is None
    change = boot.config_change("/etc/xen/g.cfg", "memory = 256\n", "memory = 512\n")
    assert change["action"] == "updated"
    assert "-memory = 256\n+memory = 512\n" in change["diff"]


@pytest.mark.parametrize(("domain_state", "config", "restart", "force", "expected"), [
    ("absent", CREATED, False, False,
     ({"config": CREATED, "guest": {"old": "absent", "new": "running"}},
      ["create the config /etc/xen/g.cfg", "boot g"],
      ["created the config /etc/xen/g.cfg", "booted g"], "")),
    ("crashed", None, False, False,
     ({"guest": {"old": "crashed", "new": "running"}},
      ["destroy the crashed domain g and boot it again"],
      ["destroyed the crashed domain g and booted it again"], "")),
    ("blocked", None, False, True,
     ({"guest": {"old": "blocked", "new": "restarted"}}, ["restart g"], ["restarted g"], "")),
    ("running", CREATED, True, False,
     ({"config": CREATED, "guest": {"old": "running", "new": "restarted"}},
      ["create the config /etc/xen/g.cfg", "restart g"],
      ["created the config /etc/xen/g.cfg", "restarted g"], "")),
    ("running", CREATED, False, False,
     ({"config": CREATED}, ["create the config /etc/xen/g.cfg"],
      ["created the config /etc/xen/g.cfg"],
      "; g keeps running with its previous configuration until it is restarted "
      "(restart_on_change is False)")),
    ("running", None, True, False, ({}, [], [], "")),
])
def test_the_plan_of_a_running_state(domain_state, config, restart, force, expected):
    assert boot.plan("g", domain_state, config, restart, force) == expected


def test_the_fingerprint_follows_the_config_the_kernel_and_the_ramdisk(tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    first = boot.fingerprint("memory = 256\n", str(kernel), None)
    assert first == boot.fingerprint("memory = 256\n", str(kernel), None)
    assert first != boot.fingerprint("memory = 512\n", str(kernel), None)
    kernel.write_bytes(b"another kernel")
    assert first != boot.fingerprint("memory = 256\n", str(kernel), None)
    with pytest.raises(FileNotFoundError):
        boot.fingerprint("memory = 256\n", str(kernel), os.fspath(tmp_path / "missing"))


@pytest.mark.parametrize(("settings", "question"), [
    ({}, ("/k", None, True, "pv")),
    ({"dhcp": "off"}, ("/k", None, False, "pv")),
    ({"network": "off", "ramdisk": "/i", "guest_type": "pvh"}, ("/k", "/i", False, "pvh")),
    ({"network": {"address": "192.0.2.5", "dhcp": False}}, ("/k", None, False, "pv")),
    ({"network": {"dhcp": True}}, ("/k", None, True, "pv")),
])
def test_what_the_kernel_check_asks(settings, question):
    assert boot.kernel_question("/k", settings) == question


def test_a_failed_boot_is_not_tried_again_with_the_same_fingerprint():
    failure = {"fingerprint": "abc", "time": "2024-01-01T00:00:00", "comment": "panic"}
    assert boot.failed_before("g", failure, "abc", retry=False) == (
        "g failed to boot with this config and kernel (2024-01-01T00:00:00): panic. Not "
        "booting it again until its config, kernel or export changes (or retry: True)")
    assert boot.failed_before("g", failure, "abc", retry=True) is None
    assert boot.failed_before("g", failure, "def", retry=False) is None
    assert boot.failed_before("g", None, "abc", retry=False) is None


def test_the_kernel_verdict_in_words():
    refused = {"checked": True, "ok": False, "problems": ["no NFS root", "no IP autoconfig"]}
    assert boot.kernel_refusal("g", "/k", refused) == (
        "The kernel /k of g cannot mount an NFS root: no NFS root; no IP autoconfig")
    assert boot.kernel_refusal("g", "/k", {"checked": True, "ok": True}) is None
    unchecked = {"checked": False, "ok": None, "reason": "no config found in /k"}
    assert boot.kernel_refusal("g", "/k", unchecked) is None
    assert boot.kernel_note(unchecked) == " (no config found in /k)"
    assert boot.kernel_note({"checked": True, "ok": True}) == ""


@pytest.mark.parametrize(("seen", "expected"), [
    ({"verdict": "failed", "evidence": "Kernel panic", "seconds": 3, "lines": ["a", "b"]},
     ("Kernel panic after 3 s (console /log: a | b)",
      ", but it failed to come up on its NFS root: Kernel panic after 3 s (console /log: "
      "a | b)")),
    ({"verdict": "mounted", "evidence": "VFS: Mounted root", "seconds": 2.5, "lines": []},
     (None, "; its console shows it on its NFS root after 2.5 s: VFS: Mounted root")),
    ({"verdict": "alive", "evidence": None, "seconds": 120, "lines": []},
     (None, "; it still runs after 120 s but its console (/log) has not shown its root "
            "mounted")),
    ({"verdict": "unwatched", "evidence": None, "seconds": 120, "lines": []},
     (None, "; it still runs after 120 s; the root mount was not seen (no console log /log: "
            "is xenconsoled logging guests?)")),
])
def test_the_console_verdict_in_words(seen, expected):
    assert boot.proof(seen, "/log") == expected


@pytest.mark.parametrize(("domain_state", "destroyed", "prediction", "comment"), [
    ("blocked", False, "Would shut down g (destroying it if still up after 60 s)", "Shut down g"),
    ("running", True, "Would shut down g (destroying it if still up after 60 s)",
     "g did not shut down within 60 s: destroyed it"),
    ("paused", True, "Would destroy the paused domain g", "Destroyed the paused domain g"),
    ("crashed", True, "Would destroy the crashed domain g", "Destroyed the crashed domain g"),
])
def test_stopping_in_both_tenses(domain_state, destroyed, prediction, comment):
    assert boot.stop_prediction("g", domain_state, 60) == prediction
    assert boot.stop_comment("g", domain_state, 60, destroyed) == comment


def test_sentence():
    assert boot.sentence("booted g") == "Booted g"
    assert boot.sentence("") == ""


def test_the_boot_options_are_checked_and_defaulted():
    options = {"boot_timeout": None, "boot_marker": None, "console_dir": None,
               "other_dom0s": None, "retry": False}
    checked = boot.check_options(options, "dom0-a")
    assert checked == dict(options, boot_timeout=120, other_dom0s=[])
    assert options["other_dom0s"] is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"boot_timeout": -1}, "boot_timeout: -1 is not a number of seconds >= 0"),
    ({"boot_marker": "GUEST ("}, "boot_marker: 'GUEST (' is not a valid regular expression"),
    ({"console_dir": "var/log"}, "console_dir: 'var/log' is not a normalised absolute path"),
    ({"other_dom0s": "dom0-b"}, "other_dom0s: 'dom0-b' is not a list of minion ids"),
    ({"other_dom0s": ["dom0-b", ""]}, "other_dom0s: ['dom0-b', ''] is not a list of minion ids"),
    ({"other_dom0s": ["dom0-a"]}, "other_dom0s: ['dom0-a'] holds this dom0 (dom0-a) itself"),
])
def test_bad_boot_options_are_named(changes, message):
    options = {"boot_timeout": None, "boot_marker": None, "console_dir": None,
               "other_dom0s": None, **changes}
    with pytest.raises(SaltInvocationError) as err:
        boot.check_options(options, "dom0-a")
    assert str(err.value).startswith(message)


def test_a_failed_domain_still_up_in_words():
    failure = {"fingerprint": "abc", "time": "T", "comment": "why", "domain_id": 7}
    assert boot.failed_before("g", failure, "abc", False, still_running=True) == (
        "g failed to boot with this config and kernel (T): why. Its domain still runs, kept for "
        "inspection (on_crash: preserve). Not booting it again until its config, kernel or "
        "export changes (or retry: True)")
    assert boot.plan("g", boot.FAILED, None, False, False)[1:3] == (
        ["destroy the failed domain g and boot it again"],
        ["destroyed the failed domain g and booted it again"])
    assert boot.failed_domain("g", "preserve") == (
        "; g is kept running for inspection (on_crash: preserve)")
    assert boot.failed_domain("g", "restart").startswith("; destroyed it (on_crash: restart;")
    assert boot.failed_domain("g", "destroy", "xl destroy failed") == (
        "; it still runs: destroying it failed: xl destroy failed")


def test_a_failure_record_not_written_here_in_words():
    assert boot.record_note(None, False) == ""
    assert boot.record_note({"fingerprint": "a"}, False) == ""
    assert boot.record_note({"invalid": "/c/g.json is not JSON"}, False) == (
        " (the record of its last failed boot was not readable: /c/g.json is not JSON; removed)")
    assert boot.record_note({"invalid": "x"}, True).endswith("; would be replaced)")


def test_what_the_boots_of_a_run_read_alike():
    boots = [
        {"name": "a", "kernel": "/boot/k", "nfs_root": "/xen/a", "network": "dhcp",
         "other_dom0s": ["dom0-c", "dom0-b"]},
        {"name": "b", "kernel": "/boot/k", "nfs_root": "/xen/b", "network": "dhcp",
         "other_dom0s": ["dom0-b", "dom0-c"], "toolstack": "xl"},
        {"name": "c", "kernel": "/boot/k2", "nfs_root": "/xen/c", "check_kernel": False},
        {"name": "d", "kernel": "/boot/k3"},  # no NFS root: no kernel check
    ]
    assert boot.shared_questions(boots) == {
        "kernels": [["/boot/k", None, True, "pv"]],
        "dom0s": [["dom0-b", "dom0-c"]],
        "toolstacks": [None, "xl"]}


def test_the_reads_of_the_prepared_state():
    reads = boot.shared_reads([["/boot/k", "/boot/i", True, "pvh"]], [["dom0-b"]], [None, "xl"])
    assert reads == [
        ("the domain list", "xm.list_domains", [], {"toolstack": None}),
        ("the domain list", "xm.list_domains", [], {"toolstack": "xl"}),
        ("the mine of dom0-b", "xm.mined_domains", [["dom0-b"]], {}),
        ("the kernel /boot/k", "guest_kernel.check", ["/boot/k"],
         {"ramdisk": "/boot/i", "dhcp": True, "guest_type": "pvh"})]
    assert boot.shared_reads(None, None, None) == [
        ("the domain list", "xm.list_domains", [], {"toolstack": None})]
    with pytest.raises(SaltInvocationError, match=r"^kernels: \['/boot/k'\] must be "):
        boot.shared_reads([["/boot/k"]], [], [])
    with pytest.raises(SaltInvocationError, match="^kernels: "):
        boot.shared_reads("/boot/k", [], [])
