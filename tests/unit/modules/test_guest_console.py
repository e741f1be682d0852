"""guest_console: the verdict of a console transcript, the watch of a boot,
the failure record, and xenconsoled's guest logging."""

import threading
import time
from unittest.mock import MagicMock

import pytest
from salt.exceptions import SaltInvocationError

from tests.support import SPECIMENS
from tests.support.loader import functions
from xen_nfsroot.modules import guest_console, nfsroot_files, xen_config

KERNEL_UP = """\
[    0.000000] Linux version 6.6.0-nfsroot (builder@host) #1 SMP
[    1.912001] IP-Config: Complete:
[    2.200134] VFS: Mounted root (nfs filesystem) readonly on device 0:19.
[    2.300001] Run /sbin/init as init process
"""
INITRAMFS_UP = """\
Begin: Loading essential drivers ... done.
Begin: Running /scripts/init-premount ... done.
Begin: Mounting root file system ... Begin: Running /scripts/nfs-top ... done.
Begin: Running /scripts/nfs-premount ... done.
Begin: Running /scripts/nfs-bottom ... done.
done.
Begin: Running /scripts/init-bottom ... done.
GUEST-UP nfsguest uptime=16.65s
"""
NO_INITRAMFS = """\
[    1.841711] VFS: Cannot open root device "nfs" or unknown-block(0,255): error -6
[    1.841742] Please append a correct "root=" boot option; here are the available partitions:
[    1.841781] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,255)
"""
RETRYING = """\
Begin: Running /scripts/nfs-premount ... done.
Begin: Retrying nfs mount ... done.
Begin: Retrying nfs mount ... done.
"""


@pytest.fixture
def configure_loader_modules(tmp_path):
    salt = functions(xen_config, nfsroot_files)
    salt["xm.state"] = MagicMock(return_value="blocked")
    salt["cmd.run_all"] = MagicMock(return_value={"retcode": 0, "stdout": "", "stderr": ""})
    return {guest_console: {"__salt__": salt, "__opts__": {"cachedir": str(tmp_path / "c")}}}


@pytest.mark.parametrize(("text", "marker", "verdict", "evidence"), [
    (KERNEL_UP, None, "mounted", "VFS: Mounted root (nfs filesystem) readonly on device 0:19."),
    (INITRAMFS_UP, None, "mounted", "Begin: Running /scripts/nfs-bottom ... done."),
    (INITRAMFS_UP, r"GUEST-UP \w+", "mounted", "GUEST-UP nfsguest uptime=16.65s"),
    (KERNEL_UP, r"GUEST-UP \w+", "unknown", None),
    (NO_INITRAMFS, None, "failed",
     "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,255)"),
    ('VFS: Cannot open root device "nfs" or unknown-block(0,255): error -6\n', None, "failed",
     'VFS: Cannot open root device "nfs" or unknown-block(0,255): error -6'),
    (RETRYING, None, "failed", "Begin: Retrying nfs mount ... done."),
    ("Root-NFS: no NFS server address\n", None, "failed", "Root-NFS: no NFS server address"),
    ("", None, "unknown", None),
])
def test_verdict(text, marker, verdict, evidence):
    found = guest_console.verdict(text, marker)
    assert (found["verdict"], found["evidence"]) == (verdict, evidence)


def test_a_failure_keeps_the_lines_around_it():
    found = guest_console.verdict(KERNEL_UP.split("[    2.2", maxsplit=1)[0] + NO_INITRAMFS)
    assert found["lines"][0].startswith("[    0.000000] Linux version")
    assert found["lines"][-3].endswith("error -6")
    assert found["lines"][-1].startswith("[    1.841781] Kernel panic")


def test_a_failure_after_the_mount_still_wins():
    assert guest_console.verdict(KERNEL_UP + "Kernel panic - not syncing: Attempted to kill "
                                 "init!\n")["verdict"] == "failed"


def test_log_paths():
    assert guest_console.log_path("g") == "/var/log/xen/console/guest-g.log"
    assert guest_console.log_path("g", "/srv/c", incoming=True) == "/srv/c/guest-g--incoming.log"
    with pytest.raises(SaltInvocationError):
        guest_console.log_path("../g")


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


DEBIAN_DEFAULTS = """\
## Type: string
## Default: "none"
#
# Log xenconsoled messages (cf xl dmesg)
#XENCONSOLED_TRACE=[none|guest|hv|all]
XENSTORED_ARGS=
"""


def test_plan_logging_appends_or_rewrites_the_arguments():
    text, old, new = guest_console.plan_logging(DEBIAN_DEFAULTS)
    assert old is None
    assert new == 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"'
    assert text.startswith(DEBIAN_DEFAULTS)
    assert text.endswith(new + "\n")
    again, old, _ = guest_console.plan_logging(text)
    assert (again, old) == (text, new)
    text, old, new = guest_console.plan_logging(
        'XENCONSOLED_ARGS="--timestamp=all --log=hv"\nX=1', "/srv/c")
    assert old == 'XENCONSOLED_ARGS="--timestamp=all --log=hv"'
    assert text == 'XENCONSOLED_ARGS="--timestamp=all --log=guest --log-dir=/srv/c"\nX=1'


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


def test_restart_daemon_without_systemd_restarts_xenconsoled_alone(tmp_path):
    run_all = guest_console.__salt__["cmd.run_all"]
    run_all.side_effect = [
        {"retcode": 1, "stdout": "", "stderr": "systemctl: not found"},
        {"retcode": 0, "stdout": "/usr/lib/xen-4.17\n", "stderr": ""},
        {"retcode": 0, "stdout": "", "stderr": ""},
        {"retcode": 0, "stdout": "", "stderr": ""},
    ]
    assert guest_console.restart_daemon(str(tmp_path / "console")) is True
    argv = [call.args[0] for call in run_all.call_args_list]
    assert argv[2][:2] == ["start-stop-daemon", "--stop"]
    assert argv[3] == ["start-stop-daemon", "--start", "--quiet", "--pidfile",
                       "/run/xenconsoled.pid", "--exec", "/usr/lib/xen-4.17/bin/xenconsoled",
                       "--", "--log=guest", f"--log-dir={tmp_path / 'console'}",
                       "--pid-file", "/run/xenconsoled.pid"]
    assert all(call.kwargs["python_shell"] is False for call in run_all.call_args_list)


# --- the consoles the QEMU Xen lab captured (tests/data/specimens) -------------------

CAPTURED = {
    "console-nfs-root-up.log": ("mounted", "Begin: Running /scripts/nfs-bottom ... done."),
    "console-no-initramfs-panic.log": (
        "failed", "Kernel panic - not syncing: VFS: Unable to mount root fs on "
        "unknown-block(0,255)"),
    "console-export-missing.log": (
        "failed", "mount call failed - server replied: Permission denied."),
    "console-export-denied.log": (
        "failed", "mount call failed - server replied: Permission denied."),
    "console-nfs-version-unserved.log": ("failed", "mount: Protocol not supported"),
}


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_the_verdict_on_real_consoles(name):
    text = (SPECIMENS / name).read_bytes().decode("utf-8", "backslashreplace")
    found = guest_console.verdict(text)
    assert (found["verdict"], found["evidence"]) == CAPTURED[name]


def test_the_lab_guests_marker_is_its_proof():
    text = (SPECIMENS / "console-nfs-root-up.log").read_text()
    found = guest_console.verdict(text, r"XEN-NFSROOT-GUEST-UP \S+")
    assert found["evidence"] == "XEN-NFSROOT-GUEST-UP nfsguest uptime=40.51s"
