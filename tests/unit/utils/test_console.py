"""The console library: the verdict of a console transcript, the log's name,
the failure record, and xenconsoled's settings line."""

import json
import os
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    kept = console.failure_record("abc", "initramfs shell", now=0, domain_id=7)
    assert console.check_failure(console.render_failure(kept)) == (kept, None)
    assert console.failure_path("/var/cache/salt/minion", "g") == (
        "/var/cache/salt/minion/xen_nfsroot/boot-failures/g.json")
    with pytest.raises(SaltInvocationError):
        console.failure_path("/var/cache/salt/minion", "../g")


@pytest.mark.parametrize(("data", "problem"), [
    (b"5", "holds int 5, not a failure record"),
    (b'["abc"]', 'holds list ["abc"], not a failure record'),
    (b'{"fingerprint": "abc", "time": "t"}', "has no 'comment'"),
    (b'{"fingerprint": 1, "comment": "c", "time": "t"}', "has a non-text 'fingerprint'"),
    (b'{"fingerprint": "a", "comment": "c", "time": "t", "domain_id": "7"}',
     'has a domain_id that is not a number ("7")'),
    (b"{not json", "is not JSON"),
    (b"\xff\xfe", "is not JSON"),
    (b"[" * 100000, "is not JSON"),
])
def test_a_failure_record_not_written_here_is_said(data, problem):
    assert console.check_failure(data) == (None, problem)
    assert console.parse_failure(data) is None


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


def sh_words(text):
    """The words ``/bin/sh`` gives ``$XENCONSOLED_ARGS`` after sourcing
    ``text`` as /etc/init.d/xen does, and whether any command ran (a file
    MARK appeared in the directory sh ran in)."""
    with tempfile.TemporaryDirectory() as where:
        settings_file = os.path.join(where, "xen")
        with open(settings_file, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
        done = subprocess.run(
            ["/bin/sh", "-c", '. ./xen; printf "%s\\n" $XENCONSOLED_ARGS'], cwd=where,
            capture_output=True, check=False, timeout=10)
        ran = sorted(set(os.listdir(where)) - {"xen"})
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8", "surrogateescape").splitlines(), ran


@pytest.mark.parametrize(("text", "console_dir", "words"), [
    (DEBIAN_DEFAULTS, "/var/log/xen/console", ["--log=guest", "--log-dir=/var/log/xen/console"]),
    ('XENCONSOLED_ARGS="--timestamp=all --log=hv"\n', "/srv/c",
     ["--timestamp=all", "--log=guest", "--log-dir=/srv/c"]),
    ("XENCONSOLED_ARGS='--timestamp=all'\n", "/srv/c",
     ["--timestamp=all", "--log=guest", "--log-dir=/srv/c"]),
    ("XENCONSOLED_ARGS=--timestamp=all\nX=1", "/a:b,c@d%e+f=g",
     ["--timestamp=all", "--log=guest", "--log-dir=/a:b,c@d%e+f=g"]),
    ("# XENCONSOLED_ARGS=\"$(touch MARK)\"\nX='a\nXENCONSOLED_ARGS=$(touch MARK)\n'\n", "/c",
     ["--log=guest", "--log-dir=/c"]),
])
def test_sh_reads_the_planned_line_as_written(text, console_dir, words):
    planned, _, _ = console.plan_logging(text, console_dir)
    assert sh_words(planned) == (words, [])


HOSTILE = ['$(touch MARK)', '`touch MARK`', '"; touch MARK; "', "' ; touch MARK ; '", " ", "\t",
           "\\", '"', "'", "*", "?", "[a]", "~", "$HOME", "${IFS}", ";", "&", "|", "<", ">",
           "(", ")", "#", "!", "\n", "\r", "\x00", "\x7f", "é", "\u2028"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(HOSTILE) | st.text("abc/.-_=:", max_size=4), max_size=6))
def test_a_hostile_console_dir_is_refused_or_one_word(parts):
    console_dir = "/var/log/" + "".join(parts)
    try:
        planned, _, _ = console.plan_logging(DEBIAN_DEFAULTS, console_dir)
    except SaltInvocationError as err:
        assert str(err).startswith(f"console_dir: {console_dir!r} ")
        return
    assert sh_words(planned) == (["--log=guest", f"--log-dir={console_dir}"], [])


@pytest.mark.parametrize("console_dir", [
    "/var/log/$(touch MARK)", "/var/log/`touch MARK`", '/var/log/"; touch MARK; "',
    "/var/log/xen console", "/var/log/*", "/var/log/a\\b", "/var/log/caf\u00e9", "/" + "a" * 1024,
])
def test_console_dirs_sh_would_not_read_as_one_word(console_dir):
    with pytest.raises(SaltInvocationError, match=r"^console_dir: .* (cannot travel as one word "
                                                  r"of XENCONSOLED_ARGS|is longer than 1024)"):
        console.plan_logging(DEBIAN_DEFAULTS, console_dir)


@pytest.mark.parametrize("text", [
    'XENCONSOLED_ARGS="$(touch MARK)"\n',
    'XENCONSOLED_ARGS="`touch MARK`"\n',
    'XENCONSOLED_ARGS="--log=hv"; touch MARK; X="1"\n',
    "XENCONSOLED_ARGS='--log=hv' ;touch MARK\n",
    'XENCONSOLED_ARGS="--log-dir=/a\\"b"\n',
    'XENCONSOLED_ARGS="--timestamp=all *"\n',
    'XENCONSOLED_ARGS="--log=hv"\nXENCONSOLED_ARGS="--log=none"\n',
    'export XENCONSOLED_ARGS="--log=none"\n',
    'X="unterminated\n',
    "X=continued \\\n",
    "cat <<EOF\nXENCONSOLED_ARGS=x\nEOF\n",
])
def test_settings_sh_would_read_otherwise_are_refused(text):
    with pytest.raises(SaltInvocationError, match=r"^settings: "):
        console.plan_logging(text, "/var/log/xen/console")


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
