"""
A guest's console on its dom0: where xenconsoled logs it, what a guest
prints when it mounts (or fails to mount) its root over NFS, and the watch
that turns a boot into a proven one.

xenconsoled started with ``--log=guest --log-dir=DIR`` (Debian 12:
``XENCONSOLED_ARGS`` in ``/etc/default/xen``, read by ``/etc/init.d/xen``;
upstream's xencommons: ``XENCONSOLED_TRACE=guest``) appends each guest's
console to ``DIR/guest-NAME.log``, under the name it first saw the domain by:
a guest that arrived by live migration logs to ``guest-NAME--incoming.log``.
A boot is judged only by what it wrote: the log is read from its size at
``xl create`` on.

What the console says (Linux ``init/do_mounts.c``, ``fs/nfs/nfsroot.c``;
initramfs-tools ``scripts/nfs``):

* the root mounted: the kernel's ``VFS: Mounted root (nfs filesystem)``
  (a kernel with ``CONFIG_ROOT_NFS``), or initramfs-tools going on to
  ``/scripts/nfs-bottom`` after its NFS mount; or the guest's own
  ``boot_marker`` (a regular expression), which then is the proof wanted;
* a failure: ``Kernel panic``, ``VFS: Unable to mount root fs``, ``No
  filesystem could mount root``, ``VFS: Cannot open root device``,
  ``Root-NFS:`` errors, a failed ``nfsmount`` or ``mount`` (``mount call
  failed - server replied: Permission denied.`` for an export that is
  missing or not for this client, ``mount: Protocol not supported`` for an
  NFS version the server does not serve), initramfs-tools retrying its NFS
  mount, giving up on the root device or dropping to its shell. The lab's
  captures of each are in tests/data/specimens.
"""

import json
import os
import re
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "guest_console"

CONSOLE_DIR = "/var/log/xen/console"
#: Seconds a boot is watched by default.
BOOT_TIMEOUT = 120
#: The most of a log one watch reads (a guest spamming its console cannot
#: make the dom0's minion read without end).
MAX_READ = 4 * 1024 * 1024

MOUNTED = (
    re.compile(r"VFS: Mounted root \(nfs4? filesystem\)"),
    re.compile(r"Begin: Running /scripts/nfs-bottom"),
)
FAILED = (
    re.compile(r"VFS: Unable to mount root fs"),
    re.compile(r"VFS: Cannot open root device"),
    re.compile(r"Root-NFS: "),
    re.compile(r"nfsmount: .*(failed|denied|refused|No such|timed out|not)", re.I),
    re.compile(r"mount(ing)? .* failed", re.I),
    re.compile(r"^(Begin: Retrying nfs mount \.\.\. )?mount: ", re.M),
    re.compile(r"No filesystem could mount root"),
    re.compile(r"Target filesystem doesn't have requested"),
    re.compile(r"Gave up waiting for root"),
    re.compile(r"Dropping to a shell"),
    re.compile(r"^\(initramfs\)", re.M),
)
RETRYING = re.compile(r"Retrying nfs mount")
PANIC = re.compile(r"Kernel panic - not syncing")
#: The kernel's timestamp before a console line.
PRINTK_TIME = re.compile(r"^\[\s*\d+\.\d+\]\s*")
#: A failure's lines kept for the comment.
FAILURE_LINES = 8
#: xenconsoled opens a guest's log as soon as the domain appears; none after
#: this many seconds means it is not logging guests: nothing to wait for.
LOG_GRACE = 10


def __virtual__():
    return __virtualname__


# ---------------------------------------------------------------------------
# Validators (pure)
# ---------------------------------------------------------------------------


def check_boot_marker(value, field="boot_marker"):
    """
    Check a guest's boot marker: a regular expression its console prints once
    it runs from its NFS root (None: none). Returns it.

    CLI Example:

    .. code-block:: bash

        salt-call guest_console.check_boot_marker 'GUEST-UP \\w+'
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SaltInvocationError(f"{field}: {value!r} is not a regular expression")
    try:
        re.compile(value)
    except re.error as err:
        raise SaltInvocationError(f"{field}: {value!r} is not a valid regular expression "
                                  f"({err})") from None
    return value


def check_boot_timeout(value, field="boot_timeout"):
    """
    Check how many seconds a boot is watched: a whole number >= 0 (0: the
    boot is not watched).

    CLI Example:

    .. code-block:: bash

        salt-call guest_console.check_boot_timeout 120
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SaltInvocationError(f"{field}: {value!r} is not a number of seconds >= 0")
    return value


def watch_default():
    """
    How many seconds a boot is watched when the state is not told.

    CLI Example:

    .. code-block:: bash

        salt-call guest_console.watch_default
    """
    return BOOT_TIMEOUT


def check_console_dir(value, field="console_dir"):
    """
    Check the directory xenconsoled logs guest consoles to: an absolute,
    normalised path.

    CLI Example:

    .. code-block:: bash

        salt-call guest_console.check_console_dir /var/log/xen/console
    """
    if not isinstance(value, str) or not value.startswith("/") or (
            os.path.normpath(value) != value) or "\n" in value:
        raise SaltInvocationError(f"{field}: {value!r} is not a normalised absolute path")
    return value


# ---------------------------------------------------------------------------
# The verdict of a console transcript (pure)
# ---------------------------------------------------------------------------


def _evidence(line):
    return PRINTK_TIME.sub("", line.strip())


def _lines_around(lines, index):
    start = max(0, index - FAILURE_LINES + 2)
    return [line.rstrip() for line in lines[start:index + 2] if line.strip()]


def verdict(text, marker=None):
    """
    What a guest's console transcript says of its boot: ``{"verdict":
    "mounted" | "failed" | "unknown", "evidence": line or None, "lines":
    [the lines around a failure]}``.

    A failure anywhere wins. Without a ``marker`` (a regular expression) the
    root mounted over NFS is the proof; with one, the marker is.

    CLI Example:

    .. code-block:: bash

        salt-call guest_console.verdict "$(cat /var/log/xen/console/guest-XenGuest.log)"
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if PANIC.search(line):  # the most telling line, wherever it is
            return {"verdict": "failed", "evidence": _evidence(line),
                    "lines": _lines_around(lines, index)}
    retries = 0
    for index, line in enumerate(lines):
        if any(pattern.search(line) for pattern in FAILED):
            return {"verdict": "failed", "evidence": _evidence(line),
                    "lines": _lines_around(lines, index)}
        if RETRYING.search(line):
            retries += 1
            if retries >= 2:  # the initramfs's retry loop: the mount keeps failing
                return {"verdict": "failed", "evidence": _evidence(line),
                        "lines": _lines_around(lines, index)}
    proofs = [re.compile(marker)] if marker else MOUNTED
    for line in lines:
        if any(pattern.search(line) for pattern in proofs):
            return {"verdict": "mounted", "evidence": _evidence(line), "lines": []}
    return {"verdict": "unknown", "evidence": None, "lines": []}


# ---------------------------------------------------------------------------
# Logs on this dom0
# ---------------------------------------------------------------------------


def log_path(name, console_dir=None, incoming=False):
    """
    The console log xenconsoled writes for the guest ``name``
    (``guest-NAME.log``; ``guest-NAME--incoming.log`` for one that arrived
    by migration).

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.log_path XenGuest
    """
    __salt__["xen_config.check_name"](name)
    console_dir = check_console_dir(console_dir or CONSOLE_DIR)
    suffix = "--incoming" if incoming else ""
    return os.path.join(console_dir, f"guest-{name}{suffix}.log")


def size(path):
    """
    The size of a console log now (0 when there is none): where the next
    boot's output will start.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.size /var/log/xen/console/guest-XenGuest.log
    """
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def read(path, offset=0):
    """
    What a console log holds from ``offset`` on (at most 4 MiB), as text;
    None when there is no log.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.read /var/log/xen/console/guest-XenGuest.log
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(MAX_READ)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CommandExecutionError(f"cannot read {path}: {err.strerror}") from None
    return data.decode("utf-8", "backslashreplace")


def watch(name, console, offset=0, timeout=BOOT_TIMEOUT, marker=None, toolstack=None):  # noqa: PLR0913,PLR0917 (Salt calls it with keywords)
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
    marker = check_boot_marker(marker)
    timeout = check_boot_timeout(timeout)
    started = time.monotonic()
    seen = None
    polls = 0
    while True:
        text = read(console, offset)
        seen = seen or text is not None
        found = verdict(text or "", marker)
        elapsed = round(time.monotonic() - started, 1)
        if found["verdict"] != "unknown":
            return dict(found, seconds=elapsed, log=console)
        unlogged = not seen and elapsed >= min(LOG_GRACE, timeout)
        if elapsed >= timeout or unlogged or polls % 5 == 4:
            state = __salt__["xm.state"](name, toolstack=toolstack, fresh=True)
            if state not in ("running", "blocked", "paused"):
                lines = (text or "").splitlines()[-FAILURE_LINES:]
                return {"verdict": "failed", "evidence": f"the domain is {state}",
                        "lines": [line.rstrip() for line in lines if line.strip()],
                        "seconds": elapsed, "log": console}
            if elapsed >= timeout or unlogged:
                return {"verdict": "alive" if seen else "unseen", "evidence": None,
                        "lines": [], "seconds": elapsed, "log": console}
        polls += 1
        time.sleep(min(1.0, max(0.0, timeout - elapsed)) or 0.1)


# ---------------------------------------------------------------------------
# A boot that failed is not booted again and again
# ---------------------------------------------------------------------------


def _record_path(name):
    __salt__["xen_config.check_name"](name)
    return os.path.join(__opts__["cachedir"], "xen_nfsroot", "boot-failures", f"{name}.json")


def last_failure(name):
    """
    The last failed boot of ``name`` on this dom0: ``{"fingerprint",
    "time", "comment"}``, or None.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.last_failure XenGuest
    """
    data = __salt__["nfsroot_files.read"](_record_path(name))
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def record_failure(name, fingerprint, comment):
    """
    Remember that ``name`` failed to boot with the config and kernel whose
    ``fingerprint`` is given, and why.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.record_failure XenGuest 0123abcd 'kernel panic'
    """
    record = {"fingerprint": fingerprint, "comment": comment,
              "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    __salt__["nfsroot_files.write"](_record_path(name), json.dumps(record) + "\n",
                                    makedirs=True)
    return record


def clear_failure(name):
    """
    Forget the last failed boot of ``name``; True if there was one.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.clear_failure XenGuest
    """
    return __salt__["nfsroot_files.remove"](_record_path(name))


# ---------------------------------------------------------------------------
# xenconsoled's guest logging
# ---------------------------------------------------------------------------

SETTINGS_FILE = "/etc/default/xen"
_ARGS_LINE = re.compile(r'^XENCONSOLED_ARGS=(["\']?)(.*)\1\s*$')


def _logging_arguments(current, console_dir):
    """xenconsoled's arguments with guest logging to console_dir, the others kept."""
    kept = [arg for arg in current.split()
            if not arg.startswith(("--log=", "--log-dir="))]
    return " ".join([*kept, "--log=guest", f"--log-dir={console_dir}"])


def plan_logging(text, console_dir=CONSOLE_DIR):
    """
    The settings file's text with xenconsoled logging guest consoles to
    ``console_dir`` (pure): Debian's ``/etc/default/xen`` is sourced by
    ``/etc/init.d/xen``, which starts xenconsoled with ``$XENCONSOLED_ARGS``.
    An ``XENCONSOLED_ARGS`` line is rewritten with its other arguments kept;
    without one, a line is appended; every other line stays as it was.
    Returns ``[new text, old line or None, new line]``.

    CLI Example:

    .. code-block:: bash

        salt-call guest_console.plan_logging "$(cat /etc/default/xen)"
    """
    console_dir = check_console_dir(console_dir)
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        match = _ARGS_LINE.match(line.rstrip("\n"))
        if match:
            new = f'XENCONSOLED_ARGS="{_logging_arguments(match.group(2), console_dir)}"'
            ending = "\n" if line.endswith("\n") else ""
            lines[index] = new + ending
            return ["".join(lines), line.rstrip("\n"), new]
    new = f'XENCONSOLED_ARGS="{_logging_arguments("", console_dir)}"'
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append("# Guest consoles logged for xen-nfsroot's boot checks.\n" + new + "\n")
    return ["".join(lines), None, new]


def configure_logging(console_dir=CONSOLE_DIR, settings_file=SETTINGS_FILE, test=False):
    """
    Make xenconsoled log every guest's console to ``console_dir`` from its
    next start (see :func:`plan_logging`); the file keeps its other lines,
    mode and owner. Returns ``{"changed": bool, "old", "new", "file"}``.

    CLI Example:

    .. code-block:: bash

        salt dom0-a guest_console.configure_logging
    """
    data = __salt__["nfsroot_files.read"](settings_file)
    text = "" if data is None else data.decode("utf-8", "surrogateescape")
    new_text, old, new = plan_logging(text, console_dir)
    changed = new_text != text
    if changed and not test:
        __salt__["nfsroot_files.write"](settings_file,
                                        new_text.encode("utf-8", "surrogateescape"),
                                        previous=data or b"")
    return {"changed": changed, "old": old, "new": new, "file": settings_file}


def _run(argv):
    return __salt__["cmd.run_all"](argv, python_shell=False, ignore_retcode=True)


def restart_daemon(console_dir=CONSOLE_DIR):
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
    console_dir = check_console_dir(console_dir)
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
        options = dict(arg.split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
        if options.get("--log") in ("guest", "all"):
            return options.get("--log-dir", CONSOLE_DIR)
        return ""
    return None
