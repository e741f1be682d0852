"""
A guest's console as xenconsoled logs it: where the log is, what a guest
prints when it mounts (or fails to mount) its root over NFS, the record of a
failed boot, and xenconsoled's settings line.

xenconsoled started with ``--log=guest --log-dir=DIR`` (Debian 12:
``XENCONSOLED_ARGS`` in ``/etc/default/xen``, read by ``/etc/init.d/xen``;
upstream's xencommons: ``XENCONSOLED_TRACE=guest``) appends each guest's
console to ``DIR/guest-NAME.log``, under the name it first saw the domain by:
a guest that arrived by live migration logs to ``guest-NAME--incoming.log``.

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

from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import values

#: Where xenconsoled logs guest consoles (Debian's ``/var/log/xen/console``).
CONSOLE_DIR = "/var/log/xen/console"
#: The file Debian's Xen init script sources: xenconsoled's arguments.
SETTINGS_FILE = "/etc/default/xen"
#: Seconds a boot is watched by default.
BOOT_TIMEOUT = 120

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


# ---------------------------------------------------------------------------
# Validators
# ---------------------------------------------------------------------------


def check_boot_marker(value, field="boot_marker"):
    """A guest's boot marker: a regular expression its console prints once
    it runs from its NFS root (None: none). Returns it."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise values.invalid(field, value, "is not a regular expression")
    try:
        re.compile(value)
    except re.error as err:
        raise values.invalid(field, value, f"is not a valid regular expression ({err})") from None
    return value


def check_boot_timeout(value, field="boot_timeout"):
    """How many seconds a boot is watched: a whole number >= 0 (0: the boot
    is not watched)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise values.invalid(field, value, "is not a number of seconds >= 0")
    return value


def check_console_dir(value, field="console_dir"):
    """The directory xenconsoled logs guest consoles to (or its settings
    file): an absolute, normalised path."""
    try:
        return values.check_absolute_path(value, field, normalised=True)
    except SaltInvocationError:
        raise values.invalid(field, value, "is not a normalised absolute path") from None


# ---------------------------------------------------------------------------
# The verdict of a console transcript
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


def tail(text):
    """The last lines of a transcript kept for a failure's comment."""
    lines = (text or "").splitlines()[-FAILURE_LINES:]
    return [line.rstrip() for line in lines if line.strip()]


# ---------------------------------------------------------------------------
# Where a guest's console is logged
# ---------------------------------------------------------------------------


def log_path(name, console_dir=None, incoming=False):
    """The console log xenconsoled writes for the guest ``name``
    (``guest-NAME.log``; ``guest-NAME--incoming.log`` for one that arrived
    by migration), in ``console_dir`` (default :data:`CONSOLE_DIR`)."""
    values.check_domain_name(name)
    console_dir = check_console_dir(console_dir or CONSOLE_DIR)
    suffix = "--incoming" if incoming else ""
    return os.path.join(console_dir, f"guest-{name}{suffix}.log")


# ---------------------------------------------------------------------------
# The record of a failed boot
# ---------------------------------------------------------------------------


def failure_path(cachedir, name):
    """Where the last failed boot of ``name`` is remembered, under the
    minion's cache directory."""
    values.check_domain_name(name)
    return os.path.join(cachedir, "xen_nfsroot", "boot-failures", f"{name}.json")


def failure_record(fingerprint, comment, now=None):
    """The record of a failed boot: ``{"fingerprint", "comment", "time"}``
    (``now``, seconds since the epoch, defaults to the present)."""
    return {"fingerprint": fingerprint, "comment": comment,
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))}


def render_failure(record):
    """The failure record as its file holds it: one line of JSON."""
    return json.dumps(record) + "\n"


def parse_failure(data):
    """The failure record a file holds (text or bytes), or None when there is
    none or it cannot be read."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# xenconsoled's settings
# ---------------------------------------------------------------------------

_ARGS_LINE = re.compile(r'^XENCONSOLED_ARGS=(["\']?)(.*)\1\s*$')


def logging_arguments(current, console_dir):
    """xenconsoled's arguments with guest logging to console_dir, the others kept."""
    kept = [arg for arg in current.split()
            if not arg.startswith(("--log=", "--log-dir="))]
    return " ".join([*kept, "--log=guest", f"--log-dir={console_dir}"])


def plan_logging(text, console_dir=CONSOLE_DIR):
    """
    The settings file's text with xenconsoled logging guest consoles to
    ``console_dir``: Debian's ``/etc/default/xen`` is sourced by
    ``/etc/init.d/xen``, which starts xenconsoled with ``$XENCONSOLED_ARGS``.
    An ``XENCONSOLED_ARGS`` line is rewritten with its other arguments kept;
    without one, a line is appended; every other line stays as it was.
    Returns ``[new text, old line or None, new line]``.
    """
    console_dir = check_console_dir(console_dir)
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        match = _ARGS_LINE.match(line.rstrip("\n"))
        if match:
            new = f'XENCONSOLED_ARGS="{logging_arguments(match.group(2), console_dir)}"'
            ending = "\n" if line.endswith("\n") else ""
            lines[index] = new + ending
            return ["".join(lines), line.rstrip("\n"), new]
    new = f'XENCONSOLED_ARGS="{logging_arguments("", console_dir)}"'
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append("# Guest consoles logged for xen-nfsroot's boot checks.\n" + new + "\n")
    return ["".join(lines), None, new]


def daemon_log_dir(argv):
    """Where a xenconsoled started with ``argv`` logs guest consoles: its
    ``--log-dir`` (default :data:`CONSOLE_DIR`) with ``--log=guest`` or
    ``all``, ``""`` without guest logging."""
    options = dict(arg.split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    if options.get("--log") in ("guest", "all"):
        return options.get("--log-dir", CONSOLE_DIR)
    return ""
