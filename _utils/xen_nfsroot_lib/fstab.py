"""The guest's ``/etc/fstab`` (fstab(5)): the lossless line model, the
validation of entries, and the edits of the NFS root policy, on text.

One lossless line model: :func:`parse` turns the file's text into one record per
line, each keeping its exact text (``raw``, line ending included), and
:func:`render` joins them back, so every line the formula does not own comes out
byte for byte (tabs, comments, ``\\r\\n`` endings, a missing final newline).
New or rewritten entry lines take the column layout of a neighbouring line.

Edits never delete a line. A line the formula switches off is commented out by
prefixing :data:`MARKER` to its exact text, so it is recognisable, is never
commented twice, and can be restored byte for byte by removing the prefix
(:func:`plan_entry` does so when the same entry is wanted again)::

    #xen-nfsroot# /dev/sdb2               swap                    swap    defaults        0 0

Root line policy of :func:`plan_nfs_root`: a root line that is not ``/dev/nfs``
(the disk root) is commented out and the new ``/dev/nfs`` line is placed right
below it; an existing ``/dev/nfs`` root line with other settings is updated in
place.

Everything here works on text: the plans return the new text and what
changed, and the ``domu_fstab`` execution module reads and writes the file in
the guest's tree. Errors are ``FIELD: VALUE PROBLEM``
(:func:`xen_nfsroot_lib.values.invalid`).
"""

import posixpath
import re

from xen_nfsroot_lib import values

#: Prefix of a line commented out by this formula (followed by the original line).
MARKER = "#xen-nfsroot# "
#: The kernel's pseudo device for an NFS root (Documentation/admin-guide/nfs/nfsroot.rst).
NFS_ROOT_DEVICE = "/dev/nfs"
#: Start column of each field when no neighbouring line gives a layout.
DEFAULT_COLUMNS = (0, 24, 48, 56, 72, 74)
#: Device tags resolved by blkid/libmount to a local block device.
DEVICE_TAGS = ("UUID=", "LABEL=", "PARTUUID=", "PARTLABEL=", "ID=")
#: Filesystems that never live on a local disk.
PSEUDO_FSTYPES = frozenset(
    "proc sysfs devpts tmpfs devtmpfs ramfs securityfs debugfs tracefs cgroup cgroup2 "
    "mqueue hugetlbfs fusectl configfs pstore bpf binfmt_misc efivarfs autofs xenfs usbfs "
    "usbdevfs rpc_pipefs nfsd selinuxfs overlay none".split()
)
NETWORK_FSTYPES = frozenset(
    "nfs nfs4 cifs smbfs smb3 ceph glusterfs 9p virtiofs lustre afs ncpfs davfs "
    "fuse.sshfs sshfs".split()
)

_NOT_ON_DISK = PSEUDO_FSTYPES | NETWORK_FSTYPES
_FIELD = re.compile(r"[^ \t]+")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_OCTAL = re.compile(r"\\([0-7]{3})")
_MANGLED = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}


# --------------------------------------------------------------------------- model


def _split_ending(raw):
    """Split one line into (content, ending); ending is "\\r\\n", "\\n" or ""."""
    for ending in ("\r\n", "\n"):
        if raw.endswith(ending):
            return raw[: -len(ending)], ending
    return raw, ""


def unmangle(field):
    """A field of fstab(5) or of ``/proc/self/mountinfo`` with its ``\\ooo``
    octal escapes (space, tab, newline, backslash) read back."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


def _mangle(value):
    return "".join(_MANGLED.get(char, char) for char in value)


def _entry_fields(content):
    """The fields of an fstab entry, or None when the text is not one."""
    fields = _FIELD.findall(content)
    if not 2 <= len(fields) <= 6:
        return None
    if any(not field.isdigit() for field in fields[4:]):
        return None
    entry = {
        "device": unmangle(fields[0]),
        "name": unmangle(fields[1]),
        "fstype": unmangle(fields[2]) if len(fields) > 2 else None,
        "opts": unmangle(fields[3]) if len(fields) > 3 else None,
        "dump": int(fields[4]) if len(fields) > 4 else None,
        "pass_num": int(fields[5]) if len(fields) > 5 else None,
    }
    return entry


def _parse_line(raw):
    content, _ = _split_ending(raw)
    stripped = content.strip(" \t")
    if not stripped:
        return {"kind": "blank", "raw": raw}
    if content.startswith(MARKER):
        entry = _entry_fields(content[len(MARKER) :])
        if entry is not None:
            return {"kind": "disabled", "raw": raw, **entry}
    if stripped.startswith("#"):
        return {"kind": "comment", "raw": raw}
    entry = _entry_fields(content)
    if entry is None:
        return {"kind": "other", "raw": raw}
    return {"kind": "entry", "raw": raw, **entry}


def parse(text):
    """
    Parse the text of an fstab into one record per line, losing nothing.

    Every record has ``kind`` (``entry``, ``disabled`` (commented out by this
    formula), ``comment``, ``blank`` or ``other`` (not an fstab entry, kept as
    is)) and ``raw`` (the line's exact text, line ending included). Entries and
    disabled entries also have ``device``, ``name`` (mount point),
    ``fstype``, ``opts`` (these four with ``\\040``-style escapes decoded, as
    libmount does), ``dump`` and
    ``pass_num`` (``None`` where the line leaves the field out). Lines end at
    ``\\n`` only, as libc reads them.
    """
    if not isinstance(text, str):
        raise values.invalid("text", text, "must be a string")
    return [_parse_line(raw) for raw in _LINE.findall(text)]


def render(lines):
    """
    Render line records (as returned by :func:`parse`) back to fstab text.

    A record with ``raw`` is written exactly as it was; a record without
    ``raw`` (a new entry) is formatted in the default column layout, so
    ``render(parse(text)) == text`` for every text.
    """
    return "".join(
        line["raw"] if "raw" in line else format_entry(line) + "\n" for line in lines
    )


def _field_texts(entry):
    """The six field texts of an entry (missing fields take fstab's defaults)."""
    return [
        _mangle(entry["device"]),
        _mangle(entry["name"]),
        _mangle(entry.get("fstype") or "auto"),
        _mangle(entry.get("opts") or "defaults"),
        str(entry.get("dump") or 0),
        str(entry.get("pass_num") or 0),
    ]


def _layout(template):
    """(indent, separators, start columns, aligned) of a template line's fields."""
    spans = [match.span() for match in _FIELD.finditer(template or "")]
    if not spans:
        return "", [], list(DEFAULT_COLUMNS), True
    separators = [template[spans[i][1] : spans[i + 1][0]] for i in range(len(spans) - 1)]
    columns = [len(template[:start].expandtabs()) for start, _ in spans]
    aligned = any(len(separator) > 1 and not separator.strip(" ") for separator in separators)
    return template[: spans[0][0]], separators, columns, aligned


def format_entry(entry, template=None):
    """
    Format one fstab entry (a dict with ``device``, ``name``, ``fstype``,
    ``opts``, ``dump``, ``pass_num``) as a line without its line ending.

    With ``template`` (the text of another entry line), fields follow its
    layout: a separator holding a tab is copied; in a column-aligned template
    (one where some separator is a run of spaces) spaces pad each field to the
    template's column, at least one space; otherwise fields are separated by
    single spaces. Without a template, fields start at columns 0, 24, 48, 56, 72
    and 74. Spaces, tabs, newlines and backslashes in the first four fields
    are written as octal escapes (``\\040``), which libmount decodes in each
    of them.
    """
    indent, separators, columns, aligned = _layout(template)
    out = indent
    for index, field in enumerate(_field_texts(entry)):
        if index:
            separator = separators[index - 1] if index - 1 < len(separators) else ""
            if "\t" in separator:
                out += separator
            elif aligned and index < len(columns):
                out += " " * max(1, columns[index] - len(out.expandtabs()))
            else:
                out += " "
        out += field
    return out


def shown(text):
    """Text for messages and ``changes``: bytes that are not UTF-8 (kept in
    the file as they are, decoded as surrogates) shown as ``\\xNN`` escapes,
    so a state return always serialises."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def summary(raw):
    """
    One line of an fstab with its fields separated by single spaces (for
    messages and ``changes``); a line commented out by this formula keeps its
    marker, and bytes that are not UTF-8 are shown as ``\\xNN`` escapes.
    """
    content, _ = _split_ending(shown(raw))
    if content.startswith(MARKER):
        return MARKER + " ".join(_FIELD.findall(content[len(MARKER) :]))
    return " ".join(_FIELD.findall(content))


def is_local_disk(entry):
    """
    True when an entry mounts a local disk: its device is a ``/dev/...`` path
    (not ``/dev/nfs``) or a ``UUID=``, ``LABEL=``, ``PARTUUID=``, ``PARTLABEL=``
    or ``ID=`` tag, and it is neither a pseudo or network filesystem nor a bind
    mount.
    """
    device = entry["device"]
    if not (
        (device.startswith("/dev/") and device != NFS_ROOT_DEVICE)
        or device.startswith(DEVICE_TAGS)
    ):
        return False
    if entry.get("fstype") in _NOT_ON_DISK:
        return False
    options = (entry.get("opts") or "").split(",")
    return "bind" not in options and "rbind" not in options


# --------------------------------------------------------------------------- validation


def _check_word(field, value):
    if not isinstance(value, str) or not value:
        raise values.invalid(field, value, "must be a non-empty string")
    if any(char.isspace() or char == "\0" for char in value):
        raise values.invalid(field, value, "must not contain whitespace")


def _check_opts(value):
    """Mount options as one string; a list of options is joined with commas."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise values.invalid("opts", value, "must not be empty")
        for option in value:
            _check_word("opts", option)
            if "," in option:
                raise values.invalid("opts", option,
                                     "must be a single option (one per list item)")
        return ",".join(value)
    _check_word("opts", value)
    return value


def _check_count(field, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise values.invalid(field, value, "must be an integer >= 0")


def check_device(value, field="device"):
    """A device (first field): a non-empty string on one line, not starting
    with ``#`` (libmount reads such a line as a comment)."""
    if not isinstance(value, str) or not value.strip():
        raise values.invalid(field, value, "must be a non-empty string")
    if "\n" in value or "\0" in value:
        raise values.invalid(field, value, "must not contain a newline or NUL byte")
    if value.startswith("#"):
        raise values.invalid(field, value,
                             "starts with '#': libmount would read the line as a comment")


def check_mount_point(value, field="name"):
    """A mount point (second field): an absolute path, ``swap`` or ``none``."""
    check_device(value, field)
    if not value.startswith("/") and value not in ("swap", "none"):
        raise values.invalid(field, value, "must be an absolute path, 'swap' or 'none'")


def check_disable(value):
    """The ``disable`` list (devices or mount points) or None; returns a new list."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise values.invalid("disable", value, "must be a list of devices or mount points")
    for item in value:
        if not isinstance(item, str) or not item.strip() or "\n" in item:
            raise values.invalid(
                "disable", item, "must be a device or mount point (a non-empty string)"
            )
    return list(value)


def check_nfs_root(args=None, field="fstab"):
    """
    Check the arguments of an NFS root line (``fstype``, ``opts``, ``dump``,
    ``pass_num``, ``disable``; see :func:`plan_nfs_root`) given as a mapping.
    Returns them complete, ``opts`` as one comma-separated string.
    """
    args = {} if args is None else args
    if not isinstance(args, dict):
        raise values.invalid(field, args,
                             "must be a mapping of fstype, opts, dump, pass_num, disable")
    defaults = {"fstype": "nfs", "opts": "defaults", "dump": 0, "pass_num": 0, "disable": None}
    unknown = sorted(set(args) - set(defaults) - {"name"})
    if unknown:
        raise values.invalid(f"{field}.{unknown[0]}", args[unknown[0]],
                             f"is not an NFS root line setting ({', '.join(defaults)})")
    merged = {**defaults, **{key: value for key, value in args.items() if key != "name"}}
    merged["opts"] = check_entry(merged["fstype"], merged["opts"], merged["dump"],
                                 merged["pass_num"])
    merged["disable"] = check_disable(merged["disable"])
    return merged


def check_entry(fstype, opts, dump, pass_num):
    """The fields of an entry after its device and mount point; returns
    ``opts`` as one comma-separated string."""
    _check_word("fstype", fstype)
    opts = _check_opts(opts)
    _check_count("dump", dump)
    _check_count("pass_num", pass_num)
    return opts


# --------------------------------------------------------------------------- edits


def _same_entry(line, wanted):
    return (
        line["device"] == wanted["device"]
        and line["name"] == wanted["name"]
        and (line["fstype"] or "auto") == wanted["fstype"]
        and (line["opts"] or "defaults") == wanted["opts"]
        and (line["dump"] or 0) == wanted["dump"]
        and (line["pass_num"] or 0) == wanted["pass_num"]
    )


def _norm(value):
    return posixpath.normpath(value) if value.startswith("/") else value


def _entry_line(wanted, template_line):
    """Raw text of a new entry line shaped like template_line (a record or None)."""
    if template_line is None:
        return format_entry(wanted), "\n"
    content, ending = _split_ending(template_line["raw"])
    if template_line["kind"] == "disabled":
        content = content[len(MARKER) :]
    return format_entry(wanted, content), ending


class _Edit:
    """The lines of one fstab being edited: replacements and insertions by index."""

    def __init__(self, text):
        self.lines = parse(text)
        self.raws = [line["raw"] for line in self.lines]
        self.after = {}  # index -> raw lines inserted after it (-1: before the first line)

    def disable(self, index):
        self.raws[index] = MARKER + self.raws[index]

    def terminate(self, index):
        if not _split_ending(self.raws[index])[1]:
            self.raws[index] += "\n"

    def insert_after(self, index, raw):
        self.after.setdefault(index, []).append(raw)

    def append(self, raw):
        if self.raws:
            self.terminate(len(self.raws) - 1)
        self.insert_after(len(self.raws) - 1, raw)

    def text(self):
        out = list(self.after.get(-1, []))
        for index, raw in enumerate(self.raws):
            out.append(raw)
            out.extend(self.after.get(index, []))
        return "".join(out)


def plan_nfs_root(  # noqa: PLR0913,PLR0917 (the six fields of an entry)
    text, fstype="nfs", opts="defaults", dump=0, pass_num=0, disable=None,
):
    """
    Apply the NFS root policy to fstab text (pure; nothing is read or written).

    The root line becomes ``/dev/nfs / <fstype> <opts> <dump> <pass_num>``: a
    disk root line is commented out with :data:`MARKER` and the new line goes
    right below it, an existing ``/dev/nfs`` root line is updated in place, and
    without any root line the new one goes before the first entry. Further root
    lines are commented out. Then, when ``disable`` is None, every other local-disk
    entry (see :func:`is_local_disk`) is commented out; otherwise exactly the
    entries whose device or mount point is listed. Every other line stays as it
    was, byte for byte.

    Returns ``[new_text, changes]``; ``changes`` is empty when nothing would
    change, else it has ``root`` (``{"old": <old root line or None>, "new": <new
    root line>}``) when the root line changes and ``disabled`` (the lines commented
    out, fields separated by single spaces) when there are any.
    """
    opts = check_entry(fstype, opts, dump, pass_num)
    disable = check_disable(disable)
    wanted = {
        "device": NFS_ROOT_DEVICE,
        "name": "/",
        "fstype": fstype,
        "opts": opts,
        "dump": dump,
        "pass_num": pass_num,
    }
    edit = _Edit(text)
    entries = [i for i, line in enumerate(edit.lines) if line["kind"] == "entry"]
    roots = [i for i in entries if edit.lines[i]["name"] == "/"]
    keep = next((i for i in roots if _same_entry(edit.lines[i], wanted)), None)
    changes = {}
    if keep is None:
        changes["root"], extra_roots = _place_root(edit, roots, wanted)
    else:
        extra_roots = [i for i in roots if i != keep]
    disabled = _disable_lines(edit, entries, extra_roots, disable)
    if disabled:
        changes["disabled"] = disabled
    return [edit.text() if changes else text, changes]


def _place_root(edit, roots, wanted):
    """Put the wanted root line in place: ({"old", "new"}, further root lines).

    A /dev/nfs root line is updated in place; a disk root line is commented
    out with the new line right below it; without one, the new line goes
    below the last root line this formula commented out, else before the
    first entry, else at the end.
    """
    if roots:
        first = edit.lines[roots[0]]
        content, ending = _entry_line(wanted, first)
        if first["device"] == NFS_ROOT_DEVICE:
            edit.raws[roots[0]] = content + ending
        else:
            edit.disable(roots[0])
            edit.terminate(roots[0])
            edit.insert_after(roots[0], content + ending)
        return {"old": summary(first["raw"]), "new": summary(content)}, roots[1:]
    old_roots = [i for i, line in enumerate(edit.lines)
                 if line["kind"] == "disabled" and line["name"] == "/"]
    anchor = next((i for i, line in enumerate(edit.lines)
                   if line["kind"] in ("entry", "disabled")), None)
    if old_roots:
        content, ending = _entry_line(wanted, edit.lines[old_roots[-1]])
        edit.terminate(old_roots[-1])
        edit.insert_after(old_roots[-1], content + ending)
    elif anchor is None:
        content, ending = _entry_line(wanted, None)
        edit.append(content + ending)
    else:
        content, ending = _entry_line(wanted, edit.lines[anchor])
        edit.insert_after(anchor - 1, content + (ending or "\n"))
    return {"old": None, "new": summary(content)}, []


def _disable_lines(edit, entries, extra_roots, disable):
    """Comment out further root lines, then local-disk lines (disable None)
    or the lines whose device or mount point disable lists: their summaries."""
    wanted_off = None if disable is None else {_norm(item) for item in disable}
    disabled = []
    for index in entries:
        line = edit.lines[index]
        if index in extra_roots:
            selected = True
        elif line["name"] == "/":
            selected = False
        elif wanted_off is None:
            selected = is_local_disk(line)
        else:
            selected = bool({_norm(line["device"]), _norm(line["name"])} & wanted_off)
        if selected:
            edit.disable(index)
            disabled.append(summary(line["raw"]))
    return disabled


def _matches(line, name, device):
    if _norm(line["name"]) != _norm(name):
        return False
    return device is None or line["device"] == device


class MountIndex:
    """fstab text indexed by mount point (normalised), read once and looked
    up for many entries: ``entries`` and ``disabled`` (lines this formula
    commented out) ``{mount point: [line, ...]}``, ``last`` the last active
    entry (the layout of an appended one)."""

    def __init__(self, text):
        self.text = text
        self.entries, self.disabled, self.last = {}, {}, None
        for line in parse(text):
            if line["kind"] in ("entry", "disabled"):
                getattr(self, line["kind"] if line["kind"] == "disabled" else "entries") \
                    .setdefault(_norm(line["name"]), []).append(line)
            if line["kind"] == "entry":
                self.last = line

    def others_on(self, name, device):
        """The active entries mounted on ``name`` from another device than
        ``device`` (the lines of whoever else owns that mount point)."""
        return [summary(line["raw"]) for line in self.entries.get(_norm(name), [])
                if line["device"] != device]

    def _found(self, wanted):
        return [line for line in self.entries.get(_norm(wanted["name"]), [])
                if line["device"] == wanted["device"]]

    def holds(self, wanted):
        """Whether :func:`plan_entry` with ``stacked`` would leave the text as
        it is: exactly one active entry of ``wanted``'s mount point and device
        (a dict of the six fields), and it is ``wanted``."""
        found = self._found(wanted)
        return len(found) == 1 and _same_entry(found[0], wanted)

    def append(self, wanted):
        """``[new text, changes]`` as :func:`plan_entry` with ``stacked``
        gives them when it appends ``wanted`` (no entry of its mount point and
        device, no commented-out line of it to restore), without parsing the
        text again; the index follows. None when it would do something else."""
        if self._found(wanted) or any(_same_entry(line, wanted) for line in
                                      self.disabled.get(_norm(wanted["name"]), [])):
            return None
        content, ending = _entry_line(wanted, self.last)
        raw = content + (ending or "\n")
        text = self.text if not self.text or self.text.endswith("\n") else self.text + "\n"
        self.text = text + raw
        self.last = dict(wanted, kind="entry", raw=raw)
        self.entries.setdefault(_norm(wanted["name"]), []).append(self.last)
        return [self.text, {"entry": {"old": None, "new": summary(content)}}]


def plan_entry(  # noqa: PLR0913,PLR0917 (the six fields of an entry)
    text, name, device, fstype, opts="defaults", dump=0, pass_num=0, stacked=False,
):
    """
    Make one fstab entry present in fstab text (pure; nothing is read or written).

    The entry is found by mount point ``name``, or by mount point and device
    when ``name`` is ``swap`` or ``none`` (several swap lines can share it) or
    ``stacked`` is true (a mount stacked on another one's mount point, such as
    a bind mount of a directory onto itself, leaves the other's line alone). A
    matching entry with other settings is rewritten in place in its own layout;
    further matching entries are commented out. Without a matching entry, a line
    this formula commented out that holds exactly the wanted entry is restored
    byte for byte; otherwise the entry is appended in the layout of the last entry.

    Returns ``[new_text, changes]``; ``changes`` is empty when nothing would
    change, else ``{"entry": {"old": <old line or None>, "new": <new line>}}``
    plus ``disabled`` (duplicates commented out) when there are any.
    """
    check_mount_point(name)
    check_device(device)
    opts = check_entry(fstype, opts, dump, pass_num)
    wanted = {
        "device": device,
        "name": name,
        "fstype": fstype,
        "opts": opts,
        "dump": dump,
        "pass_num": pass_num,
    }
    by_device = device if stacked or not name.startswith("/") else None
    edit = _Edit(text)
    found = [
        i
        for i, line in enumerate(edit.lines)
        if line["kind"] == "entry" and _matches(line, name, by_device)
    ]
    changes = {}
    keep = next((i for i in found if _same_entry(edit.lines[i], wanted)), None)
    if keep is None and found:
        keep = found[0]
        line = edit.lines[keep]
        content, ending = _entry_line(wanted, line)
        edit.raws[keep] = content + ending
        changes["entry"] = {"old": summary(line["raw"]), "new": summary(content)}
    elif keep is None:
        restorable = next(
            (
                i
                for i, line in enumerate(edit.lines)
                if line["kind"] == "disabled" and _same_entry(line, wanted)
            ),
            None,
        )
        if restorable is not None:
            line = edit.lines[restorable]
            edit.raws[restorable] = line["raw"][len(MARKER) :]
            changes["entry"] = {
                "old": summary(line["raw"]),
                "new": summary(edit.raws[restorable]),
            }
        else:
            entries = [line for line in edit.lines if line["kind"] == "entry"]
            content, ending = _entry_line(wanted, entries[-1] if entries else None)
            edit.append(content + (ending or "\n"))
            changes["entry"] = {"old": None, "new": summary(content)}
    disabled = []
    for index in found:
        if index != keep:
            edit.disable(index)
            disabled.append(summary(edit.lines[index]["raw"]))
    if disabled:
        changes["disabled"] = disabled
    return [edit.text() if changes else text, changes]


def plan_absent(text, name, device=None):
    """
    Comment out (never delete) the fstab entries mounted on ``name`` (and, when
    given, from ``device``) in fstab text (pure; nothing is read or written).

    Returns ``[new_text, changes]``; ``changes`` is empty when no such entry is
    active, else ``{"disabled": [<lines commented out>]}``.
    """
    check_mount_point(name)
    if device is not None:
        check_device(device)
    edit = _Edit(text)
    disabled = []
    for index, line in enumerate(edit.lines):
        if line["kind"] == "entry" and _matches(line, name, device):
            edit.disable(index)
            disabled.append(summary(line["raw"]))
    if not disabled:
        return [text, {}]
    return [edit.text(), {"disabled": disabled}]
