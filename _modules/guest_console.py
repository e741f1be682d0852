"""
A guest's console on its dom0: its log's size and text, the watch that
turns a boot into a proven one, the memory of failed boots, and
xenconsoled's guest logging (its settings file and the running daemon).

Where xenconsoled logs a guest, what its console says of a boot (the
verdict), the failure record's format and the settings line are the
library's (:mod:`xen_nfsroot_lib.console`). A boot is judged only by what it
wrote: the log is read from its size at ``xl create`` on.
"""

import errno
import os
import shutil
import stat
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError

# ``console`` is watch's argument (the log's path): the library goes by another name.
from xen_nfsroot_lib import console as consoles
from xen_nfsroot_lib import files, placement

__virtualname__ = "guest_console"

#: The most of a log one watch reads (a guest spamming its console cannot
#: make the dom0's minion read without end).
MAX_READ = 4 * 1024 * 1024
#: xenconsoled opens a guest's log as soon as the domain appears; none after
#: this many seconds means it is not logging guests: nothing to wait for.
LOG_GRACE = 10


def __virtual__():
    return __virtualname__


# ---------------------------------------------------------------------------
# Logs on this dom0
# ---------------------------------------------------------------------------


#: How a console log is opened: never through a symbolic link, never waiting
#: on a FIFO's writer, never taking a terminal.
_LOG_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _open_log(path):
    """A console log opened for reading, or None when there is none; a
    symbolic link, FIFO, device, socket or directory is refused (checked on
    the descriptor itself)."""
    try:
        fd = os.open(path, _LOG_OPEN)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise CommandExecutionError(
                f"console log {path} is a symbolic link: refusing to follow it") from None
        raise CommandExecutionError(f"cannot read {path}: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CommandExecutionError(
            f"console log {path} is {files.describe(mode)}, not a regular file: "
            "refusing to read it")
    return os.fdopen(fd, "rb")


def size(path):
    """
    The size of a console log now (0 when there is none): where the next
    boot's output will start. A log that is not a regular file is refused.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.size /var/log/xen/console/guest-XenGuest.log
    """
    handle = _open_log(path)
    if handle is None:
        return 0
    with handle:
        return os.fstat(handle.fileno()).st_size


def read(path, offset=0):
    """
    What a console log holds from ``offset`` on (at most 4 MiB), as text;
    None when there is no log. A log that is not a regular file is refused.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.read /var/log/xen/console/guest-XenGuest.log
    """
    handle = _open_log(path)
    if handle is None:
        return None
    try:
        with handle:
            handle.seek(offset)
            data = handle.read(MAX_READ)
    except OSError as err:
        raise CommandExecutionError(f"cannot read {path}: {err.strerror}") from None
    return data.decode("utf-8", "backslashreplace")


def watch(name, console, offset=0, timeout=consoles.BOOT_TIMEOUT, marker=None, toolstack=None):  # noqa: PLR0913,PLR0917 (Salt calls it with keywords)
    """
    Watch a guest just booted until its console proves the boot or shows its
    failure, for at most ``timeout`` seconds.

    The console log ``console`` is read from ``offset`` (its size at
    ``xl create``) every second; the domain's state is asked every few
    seconds (a domain that crashed, shut down or vanished is a failure).

    Returns ``{"verdict": "mounted" | "failed" | "alive" | "unseen",
    "evidence", "lines", "seconds", "log"}``: ``alive`` when the console
    showed neither within the timeout and the domain still runs, ``unseen``
    when there is no console log and the domain still runs.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.watch XenGuest /var/log/xen/console/guest-XenGuest.log
    """
    marker = consoles.check_boot_marker(marker)
    timeout = consoles.check_boot_timeout(timeout)
    started = time.monotonic()
    seen = None
    polls = 0
    while True:
        text = read(console, offset)
        seen = seen or text is not None
        found = consoles.verdict(text or "", marker)
        elapsed = round(time.monotonic() - started, 1)
        if found["verdict"] != "unknown":
            return dict(found, seconds=elapsed, log=console)
        unlogged = not seen and elapsed >= min(LOG_GRACE, timeout)
        if elapsed >= timeout or unlogged or polls % 5 == 4:
            state = __salt__["xm.state"](name, toolstack=toolstack, fresh=True)
            if state not in placement.RUNNING:
                return {"verdict": "failed", "evidence": f"the domain is {state}",
                        "lines": consoles.tail(text), "seconds": elapsed, "log": console}
            if elapsed >= timeout or unlogged:
                return {"verdict": "alive" if seen else "unseen", "evidence": None,
                        "lines": [], "seconds": elapsed, "log": console}
        polls += 1
        time.sleep(min(1.0, max(0.0, timeout - elapsed)) or 0.1)


# ---------------------------------------------------------------------------
# A boot that failed is not booted again and again
# ---------------------------------------------------------------------------


def _record_path(name):
    return consoles.failure_path(__opts__["cachedir"], name)


def last_failure(name):
    """
    The last failed boot of ``name`` on this dom0: ``{"fingerprint",
    "time", "comment"[, "domain_id"]}`` (``domain_id``: the failed domain
    kept running), or None. A record this formula did not write (not JSON,
    a number, a list, a key missing, a directory or a link in its place) is
    ``{"invalid": what is wrong}``; recording or clearing replaces it.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.last_failure XenGuest
    """
    path = _record_path(name)
    try:
        if os.path.islink(path):  # the cache's own files: never through a link
            return {"invalid": f"{path} is a symbolic link"}
        data = files.read(path)
    except CommandExecutionError as err:
        return {"invalid": str(err)}
    record, problem = consoles.check_failure(data)
    return {"invalid": f"{path} {problem}"} if problem else record


def _clear_the_way(path):
    """Remove what stands where a record goes and is no record file (a
    directory, a link, a FIFO, a file with other names); True if it did."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    elif not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.unlink(path)
    else:
        return False
    return True


def record_failure(name, fingerprint, comment, domain_id=None):
    """
    Remember that ``name`` failed to boot with the config and kernel whose
    ``fingerprint`` is given, and why (``domain_id``: the failed domain, when
    it is kept running).

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.record_failure XenGuest 0123abcd 'kernel panic'
    """
    record = consoles.failure_record(fingerprint, comment, domain_id=domain_id)
    path = _record_path(name)
    _clear_the_way(path)
    files.write(path, consoles.render_failure(record), makedirs=True)
    return record


def clear_failure(name):
    """
    Forget the last failed boot of ``name`` (whatever stands in its
    record's place); True if there was one.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.clear_failure XenGuest
    """
    path = _record_path(name)
    return _clear_the_way(path) or files.remove(path)


def verdict(name, dom0s=None, toolstack=None, absent=False):
    """
    Where ``name`` stands on this dom0 after its boot (with ``absent``:
    after it was stopped: raises while its domain is still here, returns
    ``{"guest", "runs_on": None, "state"}`` once it is gone): up here (and not the
    failed domain a failed boot kept running), or, with no failed boot on
    record here, up on another of its dom0s (``dom0s``) as their mine
    entries show it. Anything else raises, with the recorded failure's
    comment when there is one: the orchestration's
    per-guest verdict after its one boot step for all its guests (one
    guest's failure never fails another's verdict).

    Returns ``{"guest", "runs_on", "state"}`` (``state``: the domain's, or
    ``mined`` for another dom0's).

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.verdict XenGuest '[dom0-a, dom0-b]'
    """
    here = __opts__["id"]
    if absent is True:
        state = __salt__["xm.state"](name, toolstack=toolstack, fresh=True)
        if state in placement.OCCUPIED:
            raise CommandExecutionError(f"{name} is still on {here} (its domain is {state})")
        return {"guest": name, "runs_on": None, "state": state}
    failure = last_failure(name)
    if failure and "invalid" in failure:
        raise CommandExecutionError(f"{name}: its failed-boot record {failure['invalid']}")
    failed = failure and (
        f"{name} failed to boot on {here} ({failure['time']}): {failure['comment']}")
    if failure and failure.get("domain_id") is not None:
        raise CommandExecutionError(failed)  # the failed domain, kept running
    state = __salt__["xm.state"](name, toolstack=toolstack, fresh=True)
    if state in placement.RUNNING:
        return {"guest": name, "runs_on": here, "state": state}
    if failure:
        raise CommandExecutionError(failed)
    others = [dom0 for dom0 in dom0s or [] if dom0 != here]
    mined = __salt__["xm.mined_domains"](others) if others else {}
    elsewhere = sorted(placement.locate(name, {}, others, mined)["there"])
    if elsewhere:
        return {"guest": name, "runs_on": elsewhere[0], "state": "mined"}
    where = f"on {here} (its domain is {state})"
    if others:
        where += f" nor, as the mine shows them, on {', '.join(others)}"
    raise CommandExecutionError(f"{name} does not run {where}")


# ---------------------------------------------------------------------------
# xenconsoled's guest logging
# ---------------------------------------------------------------------------


def configure_logging(console_dir=consoles.CONSOLE_DIR, settings_file=consoles.SETTINGS_FILE,
                      test=False):
    """
    Make xenconsoled log every guest's console to ``console_dir`` from its
    next start (the plan: :func:`xen_nfsroot_lib.console.plan_logging`); the
    file keeps its other lines, mode and owner. Returns ``{"changed": bool, "old", "new", "file"}``.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.configure_logging
    """
    data = files.read(settings_file)
    text = "" if data is None else data.decode("utf-8", "surrogateescape")
    new_text, old, new = consoles.plan_logging(text, console_dir)
    changed = new_text != text
    if changed and not test:
        files.write(settings_file, new_text.encode("utf-8", "surrogateescape"),
                    previous=data or b"")
    return {"changed": changed, "old": old, "new": new, "file": settings_file}


def _run(argv):
    return __salt__["cmd.run_all"](argv, python_shell=False, ignore_retcode=True)


def restart_daemon(console_dir=consoles.CONSOLE_DIR):
    """
    Restart xenconsoled alone (not xenstored, not the guests) so that it
    logs guest consoles to ``console_dir``: with systemd's ``xenconsoled``
    unit where there is one, else the way Debian's ``/etc/init.d/xen``
    starts it (``start-stop-daemon``, ``/run/xenconsoled.pid``). Guests keep
    running; xenconsoled reattaches to their consoles.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.restart_daemon
    """
    console_dir = consoles.check_console_dir(console_dir)
    os.makedirs(console_dir, mode=0o755, exist_ok=True)
    # A dom0 without systemd (sysvinit, a container) has no systemctl at all.
    units = (_run(["systemctl", "list-unit-files", "xenconsoled.service"])
             if salt.utils.path.which("systemctl") else {"retcode": 1})
    if units["retcode"] == 0 and "xenconsoled.service" in units.get("stdout", ""):
        steps = [["systemctl", "restart", "xenconsoled.service"]]
    else:
        xen_dir = _run(["/usr/lib/xen-common/bin/xen-dir"])
        binary = (os.path.join(xen_dir["stdout"].strip(), "bin", "xenconsoled")
                  if xen_dir["retcode"] == 0 else "xenconsoled")
        pidfile = "/run/xenconsoled.pid"
        steps = [
            ["start-stop-daemon", "--stop", "--quiet", "--oknodo", "--retry=TERM/30/KILL/5",
             "--pidfile", pidfile, "--name", "xenconsoled"],
            ["start-stop-daemon", "--start", "--quiet", "--pidfile", pidfile, "--exec", binary,
             "--", "--log=guest", f"--log-dir={console_dir}", "--pid-file", pidfile],
        ]
    for argv in steps:
        result = _run(argv)
        if result["retcode"] != 0:
            message = (result.get("stderr") or result.get("stdout") or "").strip()
            raise CommandExecutionError(
                f"{' '.join(argv)} failed (exit {result['retcode']}): {message}")
    return True


def daemon_logging():
    """
    Where the running xenconsoled logs guest consoles: its ``--log-dir``
    when it runs with ``--log=guest`` (or ``all``), ``""`` when it runs
    without guest logging, None when no xenconsoled runs. Read from
    ``/proc/PID/cmdline``.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.daemon_logging
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != "xenconsoled":
            continue
        return consoles.daemon_log_dir(argv)
    return None
