"""guest_console: the watch of a boot, the failure record, and xenconsoled's
guest logging (the verdict and the settings plan: tests/unit/utils/test_console.py)."""

import json
import os
import threading
import time
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.commands import Commands
from tests.support.loader import functions
from xen_nfsroot.modules import guest_console, xen_config

KERNEL_UP = """\
[    0.000000] Linux version 6.6.0-nfsroot (builder@host) #1 SMP
[    1.912001] IP-Config: Complete:
[    2.200134] VFS: Mounted root (nfs filesystem) readonly on device 0:19.
[    2.300001] Run /sbin/init as init process
"""
NO_INITRAMFS = """\
[    1.841711] VFS: Cannot open root device "nfs" or unknown-block(0,255): error -6
[    1.841742] Please append a correct "root=" boot option; here are the available partitions:
[    1.841781] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,255)
"""


@pytest.fixture
def configure_loader_modules(tmp_path):
    salt = functions(xen_config)
    salt["xm.state"] = MagicMock(return_value="blocked")
    salt["cmd.run_all"] = Commands()
    return {guest_console: {"__salt__": salt,
                            "__opts__": {"cachedir": str(tmp_path / "c"), "id": "dom0-a"}}}


def test_the_watch_reads_only_what_the_boot_wrote(tmp_path):
    log = tmp_path / "guest-g.log"
    log.write_text(KERNEL_UP)  # an earlier boot, which mounted its root
    offset = guest_console.size(str(log))

    def boot():
        time.sleep(0.3)
        with open(log, "a") as handle:
            handle.write(NO_INITRAMFS)

    writer = threading.Thread(target=boot)
    writer.start()
    seen = guest_console.watch("g", str(log), offset, timeout=30)
    writer.join()
    assert seen["verdict"] == "failed"
    assert seen["evidence"].startswith("Kernel panic - not syncing")
    assert 0.2 < seen["seconds"] < 30


def test_a_domain_that_vanishes_is_a_failure(tmp_path):
    guest_console.__salt__["xm.state"].return_value = "absent"
    seen = guest_console.watch("g", str(tmp_path / "guest-g.log"), timeout=2)
    assert (seen["verdict"], seen["evidence"]) == ("failed", "the domain is absent")


@pytest.mark.parametrize(("exists", "verdict"), [(True, "alive"), (False, "unseen")])
def test_a_running_domain_the_console_does_not_prove(tmp_path, exists, verdict):
    log = tmp_path / "guest-g.log"
    if exists:
        log.write_text("[    0.000000] Linux version 6.1\n")
    seen = guest_console.watch("g", str(log), timeout=1)
    assert seen["verdict"] == verdict
    guest_console.__salt__["xm.state"].assert_called_with("g", toolstack=None, fresh=True)


def test_no_console_log_at_all_ends_the_watch_early(tmp_path, monkeypatch):
    monkeypatch.setattr(guest_console, "LOG_GRACE", 0.5)
    started = time.monotonic()
    seen = guest_console.watch("g", str(tmp_path / "guest-g.log"), timeout=60)
    assert seen["verdict"] == "unseen"
    assert 0.5 <= seen["seconds"] and time.monotonic() - started < 5


def test_bad_watch_arguments():
    with pytest.raises(SaltInvocationError, match=r"boot_marker: '\(' is not a valid regular"):
        guest_console.watch("g", "/nonexistent", marker="(")
    with pytest.raises(SaltInvocationError, match="boot_timeout: -5 is not a number"):
        guest_console.watch("g", "/nonexistent", timeout=-5)


def test_the_failure_record():
    assert guest_console.last_failure("g") is None
    record = guest_console.record_failure("g", "abc", "kernel panic")
    assert guest_console.last_failure("g") == record
    assert guest_console.clear_failure("g") is True
    assert guest_console.last_failure("g") is None
    assert guest_console.clear_failure("g") is False


# --- a console log is read only as a regular file -------------------------------------

SECRET = "root:$6$secret-hash:19000:0:99999:7:::"


def finishes(call, *args, **kwargs):
    """call(*args) in a thread: its outcome, or a failure when it blocks."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call(*args, **kwargs)
        except Exception as err:  # the outcome is the test's to judge
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"{call.__name__} blocked on {args[0]}"
    return outcome


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
@pytest.mark.parametrize("call", ["size", "read", "watch"])
def test_a_console_log_that_is_not_a_regular_file_is_refused(tmp_path, kind, call):
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\nKernel panic - not syncing: in a file not a console\n")
    log = tmp_path / "guest-g.log"
    if kind == "symlink":
        log.symlink_to(secret)
    elif kind == "fifo":
        os.mkfifo(log)
    else:
        log.mkdir()
    arguments = {"size": (str(log),), "read": (str(log),), "watch": ("g", str(log))}[call]
    extra = {"timeout": 1} if call == "watch" else {}
    outcome = finishes(getattr(guest_console, call), *arguments, **extra)
    assert isinstance(outcome.get("error"), CommandExecutionError), outcome
    what = {"symlink": "a symbolic link", "fifo": "a FIFO", "directory": "a directory"}[kind]
    assert f"console log {log} is {what}" in str(outcome["error"])
    assert "secret-hash" not in str(outcome["error"])


def test_a_regular_log_is_read_from_its_offset(tmp_path):
    log = tmp_path / "guest-g.log"
    log.write_text("old\nnew\n")
    assert guest_console.size(str(log)) == 8
    assert guest_console.read(str(log), 4) == "new\n"
    assert guest_console.size(str(tmp_path / "none.log")) == 0
    assert guest_console.read(str(tmp_path / "none.log")) is None


# --- a failure record this module did not write ----------------------------------------


@pytest.mark.parametrize(("content", "problem"), [
    (b"5", "holds int 5, not a failure record"),
    (b"[1, 2]", "holds list [1, 2], not a failure record"),
    (b'{"fingerprint": "abc", "time": "t"}', "has no 'comment'"),
    (b"{not json", "is not JSON"),
    ("directory", "is a directory"),
    ("symlink", "is a symbolic link"),
])
def test_a_failure_record_not_written_here_is_said_and_replaced(tmp_path, content, problem):
    path = tmp_path / "c" / "xen_nfsroot" / "boot-failures" / "g.json"
    path.parent.mkdir(parents=True)
    if content == "directory":
        (path / "inside").mkdir(parents=True)
    elif content == "symlink":
        (tmp_path / "elsewhere.json").write_text('{"fingerprint": "x", "comment": "' + SECRET
                                                 + '", "time": "t"}')
        path.symlink_to(tmp_path / "elsewhere.json")
    else:
        path.write_bytes(content)
    found = guest_console.last_failure("g")
    assert list(found) == ["invalid"]
    assert found["invalid"].startswith(str(path)) and problem in found["invalid"]
    assert "secret-hash" not in found["invalid"]
    record = guest_console.record_failure("g", "abc", "kernel panic")
    assert guest_console.last_failure("g") == record
    assert json.loads(path.read_text()) == record
    assert (tmp_path / "elsewhere.json").exists() == (content == "symlink")


@pytest.mark.parametrize("content", ["directory", "number", "symlink"])
def test_clearing_removes_whatever_stands_in_the_records_place(tmp_path, content):
    path = tmp_path / "c" / "xen_nfsroot" / "boot-failures" / "g.json"
    path.parent.mkdir(parents=True)
    target = tmp_path / "precious"
    target.write_text("kept")
    if content == "directory":
        (path / "inside").mkdir(parents=True)
    elif content == "symlink":
        path.symlink_to(target)
    else:
        path.write_text("5")
    assert guest_console.clear_failure("g") is True
    assert not os.path.lexists(path)
    assert target.read_text() == "kept"
    assert guest_console.last_failure("g") is None


def test_a_kept_domain_is_in_the_record():
    record = guest_console.record_failure("g", "abc", "initramfs shell", domain_id=12)
    assert record["domain_id"] == 12
    assert guest_console.last_failure("g") == record


def test_the_verdict_of_a_guest_up_here():
    assert guest_console.verdict("g") == {"guest": "g", "runs_on": "dom0-a", "state": "blocked"}
    guest_console.__salt__["xm.state"].assert_called_with("g", toolstack=None, fresh=True)
    # A failure on record from before, the guest booted since (by hand): up.
    guest_console.record_failure("g", "abc", "kernel panic")
    assert guest_console.verdict("g")["runs_on"] == "dom0-a"


def test_the_verdict_of_a_failed_boot_quotes_its_record():
    guest_console.record_failure("g", "abc", "initramfs shell", domain_id=12)
    # The failed domain kept running is no guest up.
    with pytest.raises(CommandExecutionError,
                       match=r"^g failed to boot on dom0-a \(.* UTC\): initramfs shell$"):
        guest_console.verdict("g")
    guest_console.record_failure("g", "abc", "Kernel panic - not syncing")
    guest_console.__salt__["xm.state"].return_value = "absent"
    with pytest.raises(CommandExecutionError, match="Kernel panic - not syncing"):
        guest_console.verdict("g", dom0s=["dom0-a", "dom0-b"])


def test_the_verdict_of_a_guest_up_on_another_of_its_dom0s():
    mined = {"dom0-b": {"g": {"id": 3, "state": "running"}}, "dom0-c": {}}
    guest_console.__salt__["xm.state"].return_value = "absent"
    guest_console.__salt__["xm.mined_domains"] = MagicMock(return_value=mined)
    assert guest_console.verdict("g", dom0s=["dom0-a", "dom0-b", "dom0-c"]) == {
        "guest": "g", "runs_on": "dom0-b", "state": "mined"}
    guest_console.__salt__["xm.mined_domains"].assert_called_once_with(["dom0-b", "dom0-c"])
    mined["dom0-b"]["g"]["state"] = "shutdown"
    with pytest.raises(CommandExecutionError, match=(
            r"^g does not run on dom0-a \(its domain is absent\) nor, as the mine shows them, "
            r"on dom0-b, dom0-c$")):
        guest_console.verdict("g", dom0s=["dom0-a", "dom0-b", "dom0-c"])


def test_the_verdict_of_a_guest_nowhere():
    guest_console.__salt__["xm.state"].return_value = "crashed"
    with pytest.raises(CommandExecutionError,
                       match=r"^g does not run on dom0-a \(its domain is crashed\)$"):
        guest_console.verdict("g")


def test_the_verdict_of_a_broken_record_says_so(tmp_path):
    path = tmp_path / "c/xen_nfsroot/boot-failures/g.json"
    path.parent.mkdir(parents=True)
    path.write_text("[1]")
    with pytest.raises(CommandExecutionError,
                       match="g: its failed-boot record .* not a failure record"):
        guest_console.verdict("g")


@pytest.mark.parametrize(("state", "stopped"), [
    ("absent", True), ("shutdown", True), ("running", False), ("dying", False)])
def test_the_verdict_of_a_guest_stopped(state, stopped):
    guest_console.__salt__["xm.state"].return_value = state
    if stopped:
        assert guest_console.verdict("g", absent=True) == {
            "guest": "g", "runs_on": None, "state": state}
    else:
        with pytest.raises(CommandExecutionError,
                           match=f"^g is still on dom0-a \\(its domain is {state}\\)$"):
            guest_console.verdict("g", absent=True)


DEBIAN_DEFAULTS = """\
## Type: string
## Default: "none"
#
# Log xenconsoled messages (cf xl dmesg)
#XENCONSOLED_TRACE=[none|guest|hv|all]
XENSTORED_ARGS=
"""


def test_configure_logging_writes_once(tmp_path):
    settings = tmp_path / "xen"
    settings.write_text(DEBIAN_DEFAULTS)
    settings.chmod(0o640)
    predicted = guest_console.configure_logging(settings_file=str(settings), test=True)
    assert predicted["changed"] is True
    assert settings.read_text() == DEBIAN_DEFAULTS
    assert guest_console.configure_logging(settings_file=str(settings))["changed"] is True
    assert settings.stat().st_mode & 0o777 == 0o640
    assert guest_console.configure_logging(settings_file=str(settings))["changed"] is False


@pytest.mark.parametrize(("console_dir", "existing"), [
    ("/var/log/$(touch MARK)", "XENSTORED_ARGS=\n"),
    ("/var/log/xen console", "XENSTORED_ARGS=\n"),
    ("/var/log/xen/console", 'XENCONSOLED_ARGS="--log=hv $(touch MARK)"\n'),
])
def test_configure_logging_writes_nothing_sh_would_misread(tmp_path, console_dir, existing):
    settings = tmp_path / "xen"
    settings.write_text(existing)
    with pytest.raises(SaltInvocationError, match=r"^(console_dir|settings): "):
        guest_console.configure_logging(console_dir, settings_file=str(settings))
    assert settings.read_text() == existing


def test_restart_daemon_without_systemd_restarts_xenconsoled_alone(tmp_path):
    commands = guest_console.__salt__["cmd.run_all"]
    commands.answer(["systemctl"], retcode=1, stderr="systemctl: not found")
    commands.answer(["/usr/lib/xen-common/bin/xen-dir"], stdout="/usr/lib/xen-4.17\n")
    assert guest_console.restart_daemon(str(tmp_path / "console")) is True
    argv = commands.argv()
    assert argv[-2][:2] == ["start-stop-daemon", "--stop"]
    assert argv[-1] == ["start-stop-daemon", "--start", "--quiet", "--pidfile",
                        "/run/xenconsoled.pid", "--exec", "/usr/lib/xen-4.17/bin/xenconsoled",
                        "--", "--log=guest", f"--log-dir={tmp_path / 'console'}",
                        "--pid-file", "/run/xenconsoled.pid"]
    assert commands.programs()[-3] == "xen-dir"
