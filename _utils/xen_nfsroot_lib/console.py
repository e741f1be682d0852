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
#: One word as sh reads it in ``XENCONSOLED_ARGS="..."`` and then unquoted:
#: nothing sh expands inside double quotes, splits on, or globs.
SH_WORD_RE = re.compile(r"^[A-Za-z0-9_./,:@%+=-]+\Z")
#: The longest console directory (its logs' paths stay far below PATH_MAX).
MAX_CONSOLE_DIR = 1024


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
    """The directory xenconsoled logs guest consoles to: an absolute,
    normalised path that travels as one word of ``XENCONSOLED_ARGS``.

    Its reader: ``/etc/default/xen`` is sourced by ``sh`` as root, the value
    inside double quotes (where ``$``, a backquote, ``\\`` and ``"`` are
    special), then ``$XENCONSOLED_ARGS`` is split on blanks and globbed
    (``*``, ``?``, ``[``) into xenconsoled's argv. No escape survives both,
    so only :data:`SH_WORD_RE`'s characters may stand in it, at most
    :data:`MAX_CONSOLE_DIR` of them.
    """
    try:
        values.check_absolute_path(value, field, normalised=True)
    except SaltInvocationError:
        raise values.invalid(field, value, "is not a normalised absolute path") from None
    if not SH_WORD_RE.match(value):
        raise values.invalid(
            field, value,
            "cannot travel as one word of XENCONSOLED_ARGS (sh sources it, splits it on "
            "blanks and expands $, quotes, backquotes, backslashes and globs): only letters, "
            "digits and _ . / , : @ % + = - may stand in it")
    if len(value) > MAX_CONSOLE_DIR:
        raise values.invalid(field, value, f"is longer than {MAX_CONSOLE_DIR} characters")
    return value


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


def failure_record(fingerprint, comment, now=None, domain_id=None):
    """The record of a failed boot: ``{"fingerprint", "comment", "time"}``
    (``now``, seconds since the epoch, defaults to the present), with
    ``domain_id`` when the failed domain is kept running."""
    record = {"fingerprint": fingerprint, "comment": comment,
              "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))}
    if domain_id is not None:
        record["domain_id"] = domain_id
    return record


def render_failure(record):
    """The failure record as its file holds it: one line of JSON."""
    return json.dumps(record) + "\n"


def check_failure(data):
    """The failure record a file holds (text or bytes), checked: ``(record,
    None)``, ``(None, None)`` when there is none, or ``(None, what is wrong)``
    when it is not a record this formula wrote (not JSON, not an object, a
    key missing or not text, a ``domain_id`` that is not a number)."""
    if data is None:
        return None, None
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        return None, "is not JSON"
    if not isinstance(record, dict):
        return None, f"holds {type(record).__name__} {_short(record)}, not a failure record"
    for key in ("fingerprint", "comment", "time"):
        if not isinstance(record.get(key), str):
            problem = "has no" if key not in record else "has a non-text"
            return None, f"{problem} {key!r}"
    domain_id = record.get("domain_id")
    if domain_id is not None and (isinstance(domain_id, bool) or not isinstance(domain_id, int)):
        return None, f"has a domain_id that is not a number ({_short(domain_id)})"
    kept = {key: record[key] for key in ("fingerprint", "comment", "time")}
    return dict(kept, domain_id=domain_id) if domain_id is not None else kept, None


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_failure(data):
    """The failure record a file holds (text or bytes), or None when there is
    none or it is not a record this formula wrote (:func:`check_failure`)."""
    return check_failure(data)[0]


# ---------------------------------------------------------------------------
# xenconsoled's settings
# ---------------------------------------------------------------------------

#: The one form of the settings line this formula rewrites: the variable
#: set alone on its line, double-quoted, single-quoted or bare.
_ARGS_LINE = re.compile(r"""^XENCONSOLED_ARGS=(?:"([^"]*)"|'([^']*)'|([^\s"']*))[ \t]*$""")
_ARGS_NAME = re.compile(r"\bXENCONSOLED_ARGS\b")


def _refuse(settings, problem):
    return values.invalid("settings", settings, problem)


def _advance(mode, line):
    """sh's lexer over one line: ``mode`` (quote, escaped, comment, heredoc,
    previous character) updated in place."""
    mode["continued"] = False
    for char in line:
        if mode["escaped"]:
            mode["escaped"] = False
            mode["continued"] = char == "\n"
        elif mode["comment"]:
            mode["comment"] = char != "\n"
        elif mode["quote"] == "'":
            mode["quote"] = None if char == "'" else "'"
        elif char == "\\":
            mode["escaped"] = True
        elif mode["quote"] == '"':
            mode["quote"] = None if char == '"' else '"'
        elif char in "'\"":
            mode["quote"] = char
        elif char == "#" and mode["previous"] in " \t\n;&|()":
            mode["comment"] = True
        elif char == "<" and mode["previous"] == "<":
            mode["heredoc"] = True
        mode["previous"] = char


def _shell_states(lines):
    """Where ``sh`` stands before each of ``lines`` (a sourced file's, with
    their endings) and after the last: None at the start of a new command,
    else what is left open (a quote, a line continued by a backslash, a
    here-document). Quotes, backslashes, comments and here-documents are
    followed; anything stranger is the admin's to fix."""
    mode = {"quote": None, "escaped": False, "continued": False, "comment": False,
            "heredoc": False, "previous": "\n"}
    for line in [*lines, None]:
        if mode["heredoc"]:
            yield "a here-document"
        elif mode["quote"]:
            yield f"an unterminated {mode['quote']} quote"
        elif mode["escaped"] or mode["continued"]:
            yield "a line continued by a backslash"
        else:
            yield None
        _advance(mode, line or "")


def _kept_arguments(value, where):
    """The words of an existing ``XENCONSOLED_ARGS`` value, each one sh would
    read as itself; anything else is refused."""
    words = value.split(" ")
    for word in words:
        if word and not SH_WORD_RE.match(word):
            raise _refuse(where, f"holds {word!r}, which sh would not pass to xenconsoled as "
                                 "one word as written: fix the line by hand")
    return [word for word in words if word]


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

    What sh would read differently is refused (SaltInvocationError), never
    written: a directory that is not one word (:func:`check_console_dir`),
    an existing line that sets the variable some other way (``export``,
    ``$(...)``, a second assignment) or holds a word that is not plain, and a
    file that leaves a quote or a continued line open before the line.
    """
    console_dir = check_console_dir(console_dir)
    lines = text.splitlines(keepends=True)
    states = list(_shell_states(lines))
    found = None
    for index, line in enumerate(lines):
        body = line.rstrip("\n")
        if (states[index] is not None or body.lstrip().startswith("#")
                or not _ARGS_NAME.search(body)):
            continue
        match = _ARGS_LINE.match(body)
        if not match or found is not None:
            raise _refuse(body, f"(line {index + 1}) sets XENCONSOLED_ARGS in a way this "
                                "formula does not rewrite: fix the line by hand")
        found = index, match
    if found is not None:
        index, match = found
        old = lines[index].rstrip("\n")
        value = next(group for group in match.groups() if group is not None)
        kept = _kept_arguments(value, old)
        new = f'XENCONSOLED_ARGS="{logging_arguments(" ".join(kept), console_dir)}"'
        lines[index] = new + ("\n" if lines[index].endswith("\n") else "")
        return ["".join(lines), old, new]
    if states[-1] is not None:
        raise _refuse(text[-80:], f"ends inside {states[-1]}: a line appended would not be "
                                  "read as written; fix the file by hand")
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
