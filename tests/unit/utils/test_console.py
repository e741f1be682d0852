"""The console library: the verdict of a console transcript, the log's name,
the failure record, and xenconsoled's settings line."""

import json

import pytest
from salt.exceptions import SaltInvocationError

from tests.support import SPECIMENS
from xen_nfsroot_lib import console

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
    found = console.verdict(text, marker)
    assert (found["verdict"], found["evidence"]) == (verdict, evidence)


def test_a_failure_keeps_the_lines_around_it():
    found = console.verdict(KERNEL_UP.split("[    2.2", maxsplit=1)[0] + NO_INITRAMFS)
    assert found["lines"][0].startswith("[    0.000000] Linux version")
    assert found["lines"][-3].endswith("error -6")
    assert found["lines"][-1].startswith("[    1.841781] Kernel panic")


def test_a_failure_after_the_mount_still_wins():
    assert console.verdict(KERNEL_UP + "Kernel panic - not syncing: Attempted to kill "
                           "init!\n")["verdict"] == "failed"


def test_the_tail_kept_for_a_comment():
    text = "".join(f"line {n}\n\n" for n in range(10))
    assert console.tail(text) == [f"line {n}" for n in range(6, 10)]
    assert console.tail(None) == []


def test_log_paths():
    assert console.log_path("g") == "/var/log/xen/console/guest-g.log"
    assert console.log_path("g", "/srv/c", incoming=True) == "/srv/c/guest-g--incoming.log"
    with pytest.raises(SaltInvocationError):
        console.log_path("../g")


# --- the validators ---------------------------------------------------------------------


def test_boot_marker_and_timeout():
    assert console.check_boot_marker(None) is None
    assert console.check_boot_marker(r"GUEST-UP \w+") == r"GUEST-UP \w+"
    with pytest.raises(SaltInvocationError, match=r"^boot_marker: '\(' is not a valid regular"):
        console.check_boot_marker("(")
    with pytest.raises(SaltInvocationError, match=r"^boot_marker: '' is not a regular expression$"):
        console.check_boot_marker("")
    assert console.check_boot_timeout(0) == 0
    for bad in (-5, True, "120", 1.5):
        with pytest.raises(SaltInvocationError, match=r"^boot_timeout: .* is not a number of "):
            console.check_boot_timeout(bad)


@pytest.mark.parametrize("path", ["var/log", "/var/log/", "/var/../log", "/var/log\n", None])
def test_console_dir_must_be_a_normalised_absolute_path(path):
    with pytest.raises(SaltInvocationError,
                       match=r"^console_dir: .* is not a normalised absolute path$"):
        console.check_console_dir(path)
    assert console.check_console_dir("/var/log/xen/console") == "/var/log/xen/console"


# --- the failure record -----------------------------------------------------------------


def test_the_failure_record_and_its_file():
    record = console.failure_record("abc", "kernel panic", now=0)
    assert record == {"fingerprint": "abc", "comment": "kernel panic",
                      "time": "1970-01-01 00:00:00 UTC"}
    text = console.render_failure(record)
    assert text.endswith("\n") and json.loads(text) == record
    assert console.parse_failure(text.encode()) == record
    assert console.parse_failure(None) is None
    assert console.parse_failure(b"{not json") is None
    assert console.failure_path("/var/cache/salt/minion", "g") == (
        "/var/cache/salt/minion/xen_nfsroot/boot-failures/g.json")
    with pytest.raises(SaltInvocationError):
        console.failure_path("/var/cache/salt/minion", "../g")


# --- xenconsoled's settings -------------------------------------------------------------

DEBIAN_DEFAULTS = """\
## Type: string
## Default: "none"
#
# Log xenconsoled messages (cf xl dmesg)
#XENCONSOLED_TRACE=[none|guest|hv|all]
XENSTORED_ARGS=
"""


def test_plan_logging_appends_or_rewrites_the_arguments():
    text, old, new = console.plan_logging(DEBIAN_DEFAULTS)
    assert old is None
    assert new == 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"'
    assert text.startswith(DEBIAN_DEFAULTS)
    assert text.endswith(new + "\n")
    again, old, _ = console.plan_logging(text)
    assert (again, old) == (text, new)
    text, old, new = console.plan_logging(
        'XENCONSOLED_ARGS="--timestamp=all --log=hv"\nX=1', "/srv/c")
    assert old == 'XENCONSOLED_ARGS="--timestamp=all --log=hv"'
    assert text == 'XENCONSOLED_ARGS="--timestamp=all --log=guest --log-dir=/srv/c"\nX=1'


@pytest.mark.parametrize(("argv", "where"), [
    (["xenconsoled", "--log=guest", "--log-dir=/srv/c", "--pid-file", "/run/x.pid"], "/srv/c"),
    (["/usr/lib/xen-4.17/bin/xenconsoled", "--log=all"], "/var/log/xen/console"),
    (["xenconsoled", "--timestamp=all", "--log=hv"], ""),
    (["xenconsoled"], ""),
])
def test_where_a_running_daemon_logs(argv, where):
    assert console.daemon_log_dir(argv) == where


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
    found = console.verdict(text)
    assert (found["verdict"], found["evidence"]) == CAPTURED[name]


def test_the_lab_guests_marker_is_its_proof():
    text = (SPECIMENS / "console-nfs-root-up.log").read_text()
    found = console.verdict(text, r"XEN-NFSROOT-GUEST-UP \S+")
    assert found["evidence"] == "XEN-NFSROOT-GUEST-UP nfsguest uptime=40.51s"
