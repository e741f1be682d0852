"""
The Xen toolstack (``xl`` or the old ``xm``) behind one interface.

Domain control (list, create, shut down, destroy, reboot, migrate) runs the
toolstack's own command with an argument list, never through a shell; a
non-zero exit raises :class:`CommandExecutionError` carrying the tool's
message. Guest configuration files are rendered and read here, in both
formats:

* ``xm``: a Python file of literal assignments with the xm keys the seed uses
  (``kernel``, ``memory``, ``name``, ``dhcp``, ``vif``, ``nfs_root``,
  ``nfs_server``, ``root``); xm turns ``nfs_server``/``nfs_root``/``dhcp`` into
  the kernel's ``ip=``/``nfsroot=`` itself.
* ``xl``: xl.cfg(5). xl silently ignores the xm-only keys, so the rendered file
  has ``root = "/dev/nfs"`` and an ``extra`` holding the synthesized
  ``ip=...`` and ``nfsroot=SERVER:PATH,vers=3`` (plus ``boot=nfs`` when an
  initramfs is given).

Choice of listing: one run lists the domains once (``xl list`` or ``xm list``,
cached in ``__context__``). The plain listing is used because it is the only
one that shows a domain's state; ``xl list -l`` shows the running kernel and
command line but no state, so it is only spawned when ``list_domains`` is
asked for ``details``. A state decides "running with the same config" by
comparing the config file on disk with the wanted one, not the running
command line. A boot, shutdown, destroy or migration marks the domains it
touched (and Domain-0, whose memory may change) stale in the cached listing:
asking about one of them lists again, asking about another guest does not.

Toolstack selection: ``auto`` (default) takes the installed toolstack that
answers, ``xl`` when both do; ``xl`` installed without a running hypervisor
(it prints an error and exits 1) counts as unusable. Override with the
minion config ``xen_nfsroot.toolstack`` (or ``xm.toolstack``) or the pillar
``xen_nfsroot:defaults:toolstack``: ``auto``, ``xl`` or ``xm``.
"""

import ast
import copy
import ipaddress
import json
import keyword
import logging
import math
import os
import re

import salt.utils.atomicfile
import salt.utils.files
import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "xm"

TOOLSTACKS = ("xl", "xm")
TOOLSTACK_CHOICES = ("auto", "xl", "xm")
DOMAIN_STATES = ("running", "blocked", "paused", "shutdown", "crashed", "dying")

# Xen's rule for domain names (xm's check; xl accepts the same).
NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
XL_KEY_RE = re.compile(r"^[a-z][._0-9a-z]*$")
XM_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
NFS_OPTION_RE = re.compile(r"^[A-Za-z0-9_]+(=[A-Za-z0-9_.:/-]+)?$")
VIF_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

HEADER = "# Managed by Salt (xen-nfsroot): local changes are overwritten.\n"
XM_HEADER = "# -*- mode: python; coding: utf-8 -*-\n" + HEADER
XL_HEADER = HEADER + (
    "# xl.cfg(5) syntax: xl ignores the xm-only NFS keys, so the NFS root is in extra.\n"
)

LISTING_KEY = "xm.listing"
TOOLSTACK_KEY = "xm.toolstack"


def __virtual__():
    if salt.utils.path.which("xl") or salt.utils.path.which("xm"):
        return __virtualname__
    return (False, "the xm module needs a Xen toolstack: neither xl nor xm is installed")


class XenConfigError(ValueError):
    """A Xen guest config file that cannot be read; the message names file and line."""


# ---------------------------------------------------------------------------
# Listing parsers (pure)
# ---------------------------------------------------------------------------


def state_from_flags(flags, toolstack):
    """Map the six state letters of a list row to one state name.

    xm's slots are r b p s c d (running blocked paused shutdown crashed
    dying). xl's fifth slot is the shutdown *reason* (``-rscwS``), so a crash
    reads ``---sc-`` there and ``s`` in that slot means "suspended". A domain
    with no letter set is runnable, waiting for a CPU: ``running``.

    CLI Example:

    .. code-block:: bash

        salt-call xm.state_from_flags ---sc- xl
    """
    if len(flags) != 6:
        raise ValueError(f"state {flags!r} is not six letters")
    running, blocked, paused, shutdown, fifth, dying = (c != "-" for c in flags)
    if dying:
        return "dying"
    if toolstack == "xl":
        if shutdown:
            return "crashed" if flags[4] == "c" else "shutdown"
    else:
        if fifth:
            return "crashed"
        if shutdown:
            return "shutdown"
    if paused:
        return "paused"
    if running:
        return "running"
    if blocked:
        return "blocked"
    return "running"


def _parse_brief_list(text, toolstack):
    domains = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if fields[0] == "Name" and "ID" in fields:
            continue
        if toolstack == "xm" and len(fields) == 5:
            # xend's inactive (managed) domains have an empty id column.
            fields.insert(1, "")
        try:
            if len(fields) != 6:
                raise ValueError("expected 6 columns")
            name, domid, memory, vcpus, flags, cpu_time = fields
            entry = {
                "id": int(domid) if domid else None,
                "memory_mb": int(memory),
                "vcpus": int(vcpus),
                # A managed xm domain without an id is defined but not running.
                "state": state_from_flags(flags, toolstack) if domid else "shutdown",
                "flags": flags,
                "time_s": float(cpu_time),
            }
        except ValueError as err:
            raise ValueError(
                f"line {number} of '{toolstack} list' is not a domain row ({err}): {line!r}"
            ) from None
        domains[name] = entry
    return domains


def parse_xl_list(text):
    """Parse ``xl list`` output into ``{name: {id, memory_mb, vcpus, state, flags, time_s}}``.

    The header has TABs before ``State`` and ``Time(s)``; rows are
    ``"%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f"``.

    CLI Example:

    .. code-block:: bash

        salt-call xm.parse_xl_list "$(xl list)"
    """
    return _parse_brief_list(text, "xl")


def parse_xm_list(text):
    """Parse ``xm list`` output into ``{name: {id, memory_mb, vcpus, state, flags, time_s}}``.

    Rows are ``"%(name)-40s %(domid)5s %(mem)5d %(vcpus)5d %(state)10s
    %(cpu_time)8.1f"``; an inactive managed domain has no id (``None``) and
    the state ``shutdown``.

    CLI Example:

    .. code-block:: bash

        salt-call xm.parse_xm_list "$(xm list)"
    """
    return _parse_brief_list(text, "xm")


def parse_xl_list_long(text):
    """Parse the JSON of ``xl list -l`` into ``{name: {...}}``.

    Each entry has ``id``, ``uuid``, ``type``, ``memory_mb`` (target),
    ``max_memory_mb``, ``vcpus``, ``kernel``, ``ramdisk`` and ``cmdline``
    (``None`` where the JSON has no value). Domain-0 is absent from this
    listing (xl keeps no config for it).

    CLI Example:

    .. code-block:: bash

        salt-call xm.parse_xl_list_long "$(xl list -l)"
    """
    text = text.strip()
    if not text:
        return {}
    try:
        entries = json.loads(text)
    except ValueError as err:
        raise ValueError(f"'xl list -l' did not print JSON: {err}") from None
    domains = {}
    for entry in entries:
        config = entry.get("config", {})
        c_info = config.get("c_info", {})
        b_info = config.get("b_info", {})
        name = c_info.get("name")
        if not name:
            continue

        def _mb(key, info=b_info):
            value = info.get(key)
            return value // 1024 if isinstance(value, int) else None

        domains[name] = {
            "id": entry.get("domid"),
            "uuid": c_info.get("uuid"),
            "type": c_info.get("type"),
            "memory_mb": _mb("target_memkb"),
            "max_memory_mb": _mb("max_memkb"),
            "vcpus": b_info.get("max_vcpus"),
            "kernel": b_info.get("kernel"),
            "ramdisk": b_info.get("ramdisk"),
            "cmdline": b_info.get("cmdline"),
        }
    return domains


# ---------------------------------------------------------------------------
# xl.cfg reader and writer (pure)
# ---------------------------------------------------------------------------

_XL_TOKEN_RE = re.compile(
    r"""
    (?P<space>[ \t]+)
  | (?P<newline>\n|\#[^\n]*(?:\n|\Z))
  | (?P<ident>[a-z][._0-9a-z]*)
  | (?P<number>[0-9][0-9a-fx]*)
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<append>\+=)
  | (?P<punct>[,\[\]=;])
    """,
    re.VERBOSE,
)
_XL_SIMPLE_ESCAPES = {
    '"': '"', "'": "'", "\\": "\\", "a": "\a", "b": "\b", "f": "\f",
    "n": "\n", "r": "\r", "t": "\t", "v": "\v",
}
_XL_PYTHON_CHARS = "+-.():"


def _xl_tokens(text, source):
    """Tokens of an xl.cfg file: (kind, text, line). Follows libxlu_cfg_l.l."""
    pos = 0
    line = 1
    tokens = []
    while pos < len(text):
        match = _XL_TOKEN_RE.match(text, pos)
        if not match:
            bad = re.match(r"[^ \t\n]*", text[pos:]).group(0) or text[pos]
            hint = ""
            if text[pos] in _XL_PYTHON_CHARS:
                hint = " (the file looks like Python: xl does not run Python configs)"
            raise XenConfigError(
                f"{source}:{line}: config parsing error near `{bad}': lexical error{hint}"
            )
        kind = match.lastgroup
        value = match.group(0)
        if kind != "space":
            tokens.append((kind, value, line))
        line += value.count("\n")
        pos = match.end()
    tokens.append(("eof", "", line))
    return tokens


def _xl_dequote(literal, source, line):
    body = literal[1:-1]
    out = []
    pos = 0
    while pos < len(body):
        char = body[pos]
        pos += 1
        if char != "\\":
            out.append(char)
            continue
        escape = body[pos]
        pos += 1
        if escape in _XL_SIMPLE_ESCAPES:
            out.append(_XL_SIMPLE_ESCAPES[escape])
        elif escape == "x":
            digits = re.match(r"[0-9A-Fa-f]{1,2}", body[pos:])
            if not digits:
                raise XenConfigError(
                    f"{source}:{line}: invalid digit after backslash hex escape in quoted string"
                )
            out.append(chr(int(digits.group(0), 16)))
            pos += len(digits.group(0))
        elif escape in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[pos - 1:]).group(0)
            out.append(chr(int(digits, 8)))
            pos += len(digits) - 1
        else:
            out.append(escape)
    return "".join(out)


def _xl_number(text):
    """strtol(text, 0) as xl reads numbers; an atom that is no number stays text."""
    try:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if re.fullmatch(r"0[0-7]*", text):
            return int(text, 8)
        if re.fullmatch(r"[1-9][0-9]*", text):
            return int(text, 10)
    except ValueError:
        pass
    return text


def parse_xl(text, source="<string>"):
    """Parse xl.cfg(5) text into a dict of settings (pure).

    Strings ('...' or "..." with C escapes) become ``str``, numbers (decimal,
    0-octal, 0x-hex) ``int``, lists (nested allowed) ``list``; ``#``
    comments and ``;`` separators are honoured; a later assignment wins, and
    ``+=`` appends. Anything else raises :class:`XenConfigError` naming the
    source and line.

    CLI Example:

    .. code-block:: bash

        salt-call xm.parse_xl 'name = "XenGuest"'
    """
    tokens = _xl_tokens(text, source)
    pos = 0
    config = {}

    def peek():
        return tokens[pos]

    def fail(token, what):
        near = "<newline>" if token[0] == "newline" else token[1].strip() or "<end of file>"
        raise XenConfigError(
            f"{source}:{token[2]}: config parsing error near `{near}': syntax error, {what}"
        )

    def skip_newlines():
        nonlocal pos
        while peek()[0] == "newline":
            pos += 1

    def value():
        nonlocal pos
        token = peek()
        if token[0] == "string":
            pos += 1
            return _xl_dequote(token[1], source, token[2])
        if token[0] == "number":
            pos += 1
            return _xl_number(token[1])
        if token[1] == "[":
            pos += 1
            items = []
            skip_newlines()
            while peek()[1] != "]":
                items.append(value())
                skip_newlines()
                if peek()[1] == ",":
                    pos += 1
                    skip_newlines()
                elif peek()[1] != "]":
                    fail(peek(), "expecting ',' or ']'")
            pos += 1
            return items
        fail(token, "expecting a string, a number or '['")
        return None

    while True:
        token = peek()
        if token[0] == "eof":
            break
        if token[0] == "newline" or token[1] == ";":
            pos += 1
            continue
        if token[0] != "ident":
            fail(token, "expecting a setting name")
        key = token[1]
        pos += 1
        operator = peek()
        if operator[1] not in ("=", "+="):
            fail(operator, "expecting '='")
        pos += 1
        setting = value()
        if operator[1] == "+=" and key in config:
            previous = config[key]
            if isinstance(previous, list) and isinstance(setting, list):
                setting = previous + setting
            elif isinstance(previous, str) and isinstance(setting, str):
                setting = previous + setting
            else:
                fail(operator, f"cannot append to {key}")
        config[key] = setting
        end = peek()
        if end[0] not in ("newline", "eof") and end[1] != ";":
            fail(end, "expecting a newline or ';'")
    return config


def _xl_string(value):
    if "\x00" in value:
        raise ValueError("an xl.cfg string cannot hold a NUL character")
    out = ['"']
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append("\\" + {"\a": "a", "\b": "b", "\f": "f", "\n": "n", "\r": "r",
                                "\t": "t", "\v": "v"}[char])
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _xl_value(value, key):
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{key}: xl.cfg has no {type(value).__name__} values")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{key}: xl.cfg numbers cannot be negative ({value})")
        return str(value)
    if isinstance(value, str):
        return _xl_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_xl_value(item, key) for item in value) + "]"
    raise ValueError(f"{key}: xl.cfg cannot hold a {type(value).__name__} ({value!r})")


def render_xl(config, header=XL_HEADER):
    """Render a dict of settings as xl.cfg(5) text (pure; inverse of :func:`parse_xl`).

    Values: ``str`` (always double-quoted, C escapes), non-negative ``int``,
    and lists of those (nested allowed). Keys must match ``[a-z][._0-9a-z]*``.

    CLI Example:

    .. code-block:: bash

        salt-call xm.render_xl '{"name": "XenGuest", "memory": 256}'
    """
    lines = [header] if header else []
    for key, value in config.items():
        if not isinstance(key, str) or not XL_KEY_RE.match(key):
            raise ValueError(f"{key!r} is not an xl.cfg setting name")
        lines.append(f"{key} = {_xl_value(value, key)}\n")
    return "".join(lines)


# ---------------------------------------------------------------------------
# xm (Python) config reader and writer (pure)
# ---------------------------------------------------------------------------


def _xm_literal(value, source, line, key):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_xm_literal(item, source, line, key) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (str, int, float)):
        return value
    raise XenConfigError(
        f"{source}:{line}: {key} is a {type(value).__name__}; xm configs hold "
        "strings, numbers and lists"
    )


def parse_xm(text, source="<string>"):
    """Read an xm config (Python) without running it (pure).

    Every top-level statement must assign one literal (string, number or
    list) to one name; each value is read with ``ast.literal_eval``, nothing
    is executed. As xm does, ``True``/``False``/``None`` values are ignored.
    Any other statement (code, computed values, imports) raises
    :class:`XenConfigError` naming the source and line.

    CLI Example:

    .. code-block:: bash

        salt-call xm.parse_xm 'memory = 256'
    """
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as err:
        raise XenConfigError(f"{source}:{err.lineno}: not valid Python: {err.msg}") from None
    config = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            continue  # a docstring
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            raise XenConfigError(
                f"{source}:{node.lineno}: only assignments of literal values are read "
                f"(found {type(node).__name__}); xm configs are never executed here"
            )
        key = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise XenConfigError(
                f"{source}:{node.lineno}: {key} is computed, not a literal value; "
                "xm configs are never executed here"
            ) from None
        value = _xm_literal(value, source, node.lineno, key)
        if isinstance(value, bool) or value is None:
            config.pop(key, None)
            continue
        config[key] = value
    return config


def _py_string(value, quote):
    out = [quote]
    for char in value:
        code = ord(char)
        if char in ("\\", quote):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"{value!r} holds a lone surrogate")
        else:
            out.append(char)
    out.append(quote)
    return "".join(out)


def _xm_value(value, key, quote='"'):
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{key}: xm ignores {type(value).__name__} values")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key}: {value!r} has no literal form")
        return repr(value)
    if isinstance(value, str):
        return _py_string(value, quote)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_xm_value(item, key, "'") for item in value) + "]"
    raise ValueError(f"{key}: an xm config cannot hold a {type(value).__name__} ({value!r})")


def render_xm(config, header=XM_HEADER):
    """Render a dict of settings as an xm config: Python literal assignments (pure).

    Strings are escaped so that no value can end its literal or start a new
    line (a quote or newline in a value cannot add a key); the file is UTF-8
    with a coding line, read alike by Python 2 (xm) and Python 3.

    CLI Example:

    .. code-block:: bash

        salt-call xm.render_xm '{"name": "XenGuest", "memory": 256}'
    """
    lines = [header] if header else []
    for key, value in config.items():
        if not isinstance(key, str) or not XM_KEY_RE.match(key) or keyword.iskeyword(key):
            raise ValueError(f"{key!r} is not a Python variable name")
        lines.append(f"{key} = {_xm_value(value, key)}\n")
    return "".join(lines)


def parse_config(text, source="<string>", toolstack=None):
    """Parse a guest config of either format into a dict of settings (pure).

    ``toolstack="xl"`` reads xl.cfg(5) only, ``"xm"`` Python literal
    assignments only; by default xl.cfg is tried first, then the xm form. A
    file that is neither raises :class:`XenConfigError` naming source and line.

    CLI Example:

    .. code-block:: bash

        salt-call xm.parse_config 'memory = 256'
    """
    if toolstack == "xl":
        return parse_xl(text, source)
    if toolstack == "xm":
        return parse_xm(text, source)
    if toolstack not in (None, "auto"):
        raise SaltInvocationError(f"toolstack: {toolstack!r} is not one of xl, xm")
    try:
        return parse_xl(text, source)
    except XenConfigError as xl_error:
        try:
            return parse_xm(text, source)
        except XenConfigError as xm_error:
            raise XenConfigError(
                f"{source} is neither an xl.cfg file ({xl_error}) nor an xm config "
                f"of literal assignments ({xm_error})"
            ) from None


def render_text(config, toolstack):
    """Render a settings dict in the format of ``toolstack`` (``xl`` or ``xm``) (pure).

    CLI Example:

    .. code-block:: bash

        salt-call xm.render_text '{"name": "XenGuest"}' xl
    """
    if toolstack == "xl":
        return render_xl(config)
    if toolstack == "xm":
        return render_xm(config)
    raise SaltInvocationError(f"toolstack: {toolstack!r} is not one of xl, xm")


# ---------------------------------------------------------------------------
# Guest description -> config settings (pure, validating)
# ---------------------------------------------------------------------------


def _invalid(field, value, problem):
    return SaltInvocationError(f"{field}: {value!r} {problem}")


def check_name(name):
    """Check a guest (domain) name against Xen's rule; return it or raise.

    Allowed: letters, digits and ``_ . : + -``; not ``.`` or ``..``; not
    starting with ``-`` (it would be read as a command option).

    CLI Example:

    .. code-block:: bash

        salt-call xm.check_name XenGuest
    """
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise _invalid(
            "name", name,
            "is not a valid Xen domain name (letters, digits and _ . : + - only; "
            "not '.' or '..')",
        )
    if name.startswith("-"):
        raise _invalid("name", name, "must not start with '-' (it would read as an option)")
    return name


def _check_path(field, value, required=True):
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _invalid(field, value, "must be an absolute path")
    if CONTROL_RE.search(value) or " " in value:
        raise _invalid(field, value, "must not contain spaces or control characters")
    if not os.path.isabs(value):
        raise _invalid(field, value, "must be an absolute path")
    return value


def _check_positive(field, value, required=True):
    if value is None and not required:
        return None
    if isinstance(value, bool):
        raise _invalid(field, value, "is not a positive integer")
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0:
        raise _invalid(field, value, "is not a positive integer")
    return value


def _check_ipv4(field, value, required=False):
    if value in (None, "") and not required:
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise _invalid(field, value, "is not an IPv4 address") from None


def _check_netmask(field, value):
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.lstrip("/").isdigit():
        value = value.lstrip("/")
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{value}").netmask)
    except (ipaddress.NetmaskValueError, ValueError, TypeError):
        raise _invalid(field, value, "is not an IPv4 netmask (255.255.255.0 or 24)") from None


def _check_text(field, value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = " ".join(str(item) for item in value)
    if not isinstance(value, str):
        raise _invalid(field, value, "must be a string")
    if CONTROL_RE.search(value):
        raise _invalid(field, value, "must not contain control characters (newlines, tabs)")
    return value.strip() or None


def normalize_network(network=None, dhcp=None):
    """Return the guest's kernel network setting as ``None``, ``"dhcp"`` or a dict (pure).

    ``network`` is ``"dhcp"``, ``"off"`` or a mapping with ``address``
    (required unless ``dhcp: true``), ``netmask``, ``gateway``,
    ``hostname`` and ``interface`` (default ``eth0``). The seed's
    ``dhcp = "dhcp"``/``"off"`` is accepted too. The dict form returned has
    every key: ``{dhcp: bool, address, netmask, gateway, hostname, interface}``.

    CLI Example:

    .. code-block:: bash

        salt-call xm.normalize_network dhcp
    """
    if dhcp is not None and dhcp not in ("dhcp", "off"):
        raise _invalid("dhcp", dhcp, "must be 'dhcp' or 'off'")
    if network is None:
        network = "off" if dhcp == "off" else "dhcp"
    elif dhcp is not None:
        wants_dhcp = network == "dhcp" or (
            isinstance(network, dict) and bool(network.get("dhcp"))
        )
        if wants_dhcp != (dhcp == "dhcp"):
            raise _invalid("dhcp", dhcp, f"contradicts network {network!r}")
    if network in ("off", "none", False):
        return None
    if network == "dhcp":
        network = {"dhcp": True}
    if not isinstance(network, dict):
        raise _invalid("network", network, "must be 'dhcp', 'off' or a mapping")
    unknown = sorted(set(network) - {"dhcp", "address", "netmask", "gateway", "hostname",
                                     "interface"})
    if unknown:
        raise _invalid("network", network, f"has unknown keys {unknown}")
    result = {
        "dhcp": bool(network.get("dhcp")),
        "address": _check_ipv4("network.address", network.get("address")),
        "netmask": _check_netmask("network.netmask", network.get("netmask")),
        "gateway": _check_ipv4("network.gateway", network.get("gateway")),
        "hostname": None,
        "interface": network.get("interface") or "eth0",
    }
    if not result["dhcp"] and not result["address"]:
        raise _invalid("network.address", network.get("address"),
                       "is required for a static address (or use network: dhcp)")
    hostname = network.get("hostname")
    if hostname not in (None, ""):
        if not isinstance(hostname, str) or not HOSTNAME_RE.match(hostname):
            raise _invalid("network.hostname", hostname, "is not a valid host name")
        result["hostname"] = hostname
    if not isinstance(result["interface"], str) or not INTERFACE_RE.match(result["interface"]):
        raise _invalid("network.interface", result["interface"], "is not an interface name")
    return result


def _check_vif(vif):
    if vif is None:
        return [""]
    if isinstance(vif, (str, dict)):
        vif = [vif]
    if not isinstance(vif, (list, tuple)):
        raise _invalid("vif", vif, "must be a list of interface specs")
    result = []
    for index, item in enumerate(vif):
        field = f"vif[{index}]"
        spec = "" if item is None else item
        if isinstance(spec, dict):
            spec = ",".join(f"{key}={value}" for key, value in spec.items())
        if not isinstance(spec, str) or CONTROL_RE.search(spec) or '"' in spec or "'" in spec:
            raise _invalid(field, spec, "must be a string without quotes or control characters")
        for part in filter(None, (item.strip() for item in spec.split(","))):
            key, sep, _ = part.partition("=")
            if not sep or not VIF_KEY_RE.match(key.strip()):
                raise _invalid(field, spec, f"has {part!r}, not key=value")
        result.append(spec)
    return result


def _nfs_options(value, default):
    if value is None:
        value = default
    if value in (None, "", []):
        return None
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    if not isinstance(value, str):
        raise _invalid("nfs_options", value, "must be a string such as 'vers=3'")
    for option in value.split(","):
        if not NFS_OPTION_RE.match(option):
            raise _invalid("nfs_options", value, f"has {option!r}, not an NFS mount option")
    return value


def guest_config(
    name,
    kernel,
    *,
    memory=256,
    ramdisk=None,
    network=None,
    dhcp=None,
    vif=None,
    nfs_server=None,
    nfs_root=None,
    root="/dev/nfs",
    extra=None,
    vcpus=None,
    nfs_options=None,
    guest_type="pv",
    toolstack="xl",
):
    """Validate a guest description and return its config settings (pure).

    Returns an ordered dict of the keys of the ``toolstack``'s format:

    * ``xm``: ``kernel``, ``ramdisk``, ``memory``, ``name``, ``vcpus``,
      ``dhcp`` (or ``ip``/``netmask``/``gateway``/``hostname``/``interface``),
      ``vif``, ``nfs_root``, ``nfs_server``, ``root``, ``extra`` -- only those
      given. ``nfs_options`` (none by default) are appended to ``nfs_root``, as
      xm builds ``nfsroot=`` by plain concatenation.
    * ``xl``: ``name``, ``type``, ``kernel``, ``ramdisk``, ``memory``,
      ``vcpus``, ``vif``, ``root`` and ``extra`` = ``ip=... nfsroot=SERVER:PATH,OPTS
      [boot=nfs] [extra]`` (``nfs_options`` default ``vers=3``; ``boot=nfs``
      when a ramdisk is given).

    Every problem raises ``SaltInvocationError`` naming the field and value.

    CLI Example:

    .. code-block:: bash

        salt-call xm.guest_config XenGuest /boot/vmlinuz nfs_server=192.0.2.1 nfs_root=/xen
    """
    if toolstack not in TOOLSTACKS:
        raise _invalid("toolstack", toolstack, "must be xl or xm")
    check_name(name)
    kernel = _check_path("kernel", kernel)
    ramdisk = _check_path("ramdisk", ramdisk, required=False) if ramdisk else None
    memory = _check_positive("memory", memory)
    vcpus = _check_positive("vcpus", vcpus, required=False)
    net = normalize_network(network, dhcp)
    vif = _check_vif(vif)
    root = _check_text("root", root)
    extra = _check_text("extra", extra)
    nfs_server = _check_ipv4("nfs_server", nfs_server)
    if nfs_root is not None:
        nfs_root = _check_path("nfs_root", nfs_root)
        if "," in nfs_root:
            raise _invalid("nfs_root", nfs_root, "must not contain ',' (it starts NFS options)")
    if nfs_root and not nfs_server:
        raise _invalid("nfs_server", nfs_server, "is required with nfs_root (Must set nfs "
                                                  "root and nfs server)")
    if nfs_server and not nfs_root:
        raise _invalid("nfs_root", nfs_root, "is required with nfs_server")
    if root == "/dev/nfs" and not nfs_root:
        raise _invalid("nfs_root", nfs_root, "is required when root is /dev/nfs")
    if guest_type not in ("pv", "pvh"):
        raise _invalid("guest_type", guest_type, "must be 'pv' or 'pvh'")
    if toolstack == "xm" and guest_type != "pv":
        raise _invalid("guest_type", guest_type, "is not supported by xm (pv only)")
    options = _nfs_options(nfs_options, "vers=3" if toolstack == "xl" else None)
    boot_nfs = "boot=nfs" if (ramdisk and nfs_root) else None

    config = {}
    if toolstack == "xm":
        config["kernel"] = kernel
        if ramdisk:
            config["ramdisk"] = ramdisk
        config["memory"] = memory
        config["name"] = name
        if vcpus:
            config["vcpus"] = vcpus
        if net and net["dhcp"]:
            config["dhcp"] = "dhcp"
        if net and net["address"]:
            config["ip"] = net["address"]
        if net:
            for key in ("netmask", "gateway", "hostname"):
                if net[key]:
                    config[key] = net[key]
            if net["interface"] != "eth0":
                config["interface"] = net["interface"]
        config["vif"] = vif
        if nfs_root:
            config["nfs_root"] = nfs_root + ("," + options if options else "")
            config["nfs_server"] = nfs_server
        if root:
            config["root"] = root
        extra_text = " ".join(filter(None, [boot_nfs, extra]))
        if extra_text:
            config["extra"] = extra_text
        return config

    parts = []
    if net:
        parts.append(
            "ip={}:{}:{}:{}:{}:{}:{}".format(
                net["address"] or "",
                nfs_server or "",
                net["gateway"] or "",
                net["netmask"] or "",
                net["hostname"] or "",
                net["interface"],
                "dhcp" if net["dhcp"] else "off",
            )
        )
    if nfs_root:
        parts.append(f"nfsroot={nfs_server}:{nfs_root}" + ("," + options if options else ""))
    parts.extend(filter(None, [boot_nfs, extra]))
    config["name"] = name
    config["type"] = guest_type
    config["kernel"] = kernel
    if ramdisk:
        config["ramdisk"] = ramdisk
    config["memory"] = memory
    if vcpus:
        config["vcpus"] = vcpus
    config["vif"] = vif
    if root:
        config["root"] = root
    if parts:
        config["extra"] = " ".join(parts)
    return config


# ---------------------------------------------------------------------------
# Toolstack selection and the cached listing
# ---------------------------------------------------------------------------


def _choice(value, where):
    if value is None:
        return None
    value = str(value).strip().lower()
    if value not in TOOLSTACK_CHOICES:
        raise SaltInvocationError(f"{where}: {value!r} is not one of auto, xl, xm")
    return value


def _nested(data, *keys):
    """data[k1][k2]..., or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _configured_toolstack():
    for key in ("xen_nfsroot.toolstack", "xm.toolstack"):
        if __opts__.get(key) is not None:
            return _choice(__opts__[key], f"minion config {key}")
    # Plain lookups: this runs for every guest of a run, and Salt's
    # traverse_dict_and_list costs more than the rest of it on __opts__.
    nested = _nested(__opts__, "xen_nfsroot", "toolstack")
    if nested is not None:
        return _choice(nested, "minion config xen_nfsroot:toolstack")
    pillar = _nested(__pillar__, "xen_nfsroot", "defaults", "toolstack")
    if pillar is not None:
        return _choice(pillar, "pillar xen_nfsroot:defaults:toolstack")
    return "auto"


def _run(tool, args, timeout=None):
    command = [tool, *args]
    ret = __salt__["cmd.run_all"](
        command, python_shell=False, ignore_retcode=True, timeout=timeout
    )
    return command, ret


def _failure(command, ret):
    message = (ret.get("stderr") or "").strip() or (ret.get("stdout") or "").strip()
    return CommandExecutionError(
        "'{}' failed (exit {}): {}".format(" ".join(command), ret.get("retcode"),
                                           message or "no message")
    )


def _refresh_listing(tool):
    command, ret = _run(tool, ["list"])
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    try:
        domains = _parse_brief_list(ret["stdout"], tool)
    except ValueError as err:
        raise CommandExecutionError(str(err)) from None
    listing = {"toolstack": tool, "domains": domains, "stale": set()}
    __context__[LISTING_KEY] = listing
    return listing


def _listing(tool, name=None):
    listing = __context__.get(LISTING_KEY)
    if (
        not listing
        or listing["toolstack"] != tool
        or "*" in listing["stale"]
        or (name is None and listing["stale"])
        or (name is not None and name in listing["stale"])
    ):
        listing = _refresh_listing(tool)
    return listing


def _invalidate(*names):
    listing = __context__.get(LISTING_KEY)
    if listing:
        listing["stale"].update([n for n in names if n] or ["*"])
        listing["stale"].add("Domain-0")


def _select_toolstack(requested):
    choice = _choice(requested, "toolstack") if requested not in (None, "") else None
    if choice is None:
        choice = _configured_toolstack()
    cached = __context__.get(TOOLSTACK_KEY)
    if cached and cached[0] == choice:
        return cached[1]
    candidates = TOOLSTACKS if choice == "auto" else (choice,)
    problems = []
    for tool in candidates:
        if not salt.utils.path.which(tool):
            if choice != "auto":
                problems.append(f"{tool} is not installed")
            continue
        try:
            _refresh_listing(tool)
        except CommandExecutionError as err:
            problems.append(f"{tool} is installed but not answering: {err}")
            continue
        __context__[TOOLSTACK_KEY] = (choice, tool)
        return tool
    raise CommandExecutionError(
        "No usable Xen toolstack: " + ("; ".join(problems) or "neither xl nor xm is installed")
    )


def toolstack(requested=None):
    """Return the usable toolstack: ``xl`` or ``xm``.

    ``requested`` (``auto``, ``xl``, ``xm``) overrides the configured choice
    (minion config ``xen_nfsroot.toolstack``/``xm.toolstack``, pillar
    ``xen_nfsroot:defaults:toolstack``, else ``auto``). A toolstack counts
    only when installed *and* answering: its ``list`` must succeed (that
    listing is kept as the run's domain listing, so detection costs no extra
    process). ``auto`` prefers xl. Raises ``CommandExecutionError`` saying
    why none is usable (e.g. "xl is installed but not answering: ... Can't
    find hypervisor information in sysfs!"). Cached in ``__context__``.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.toolstack
    """
    return _select_toolstack(requested)


def _format_toolstack(requested):
    """The config format to write: the usable toolstack, else the installed one."""
    if requested in TOOLSTACKS:
        return requested
    try:
        return _select_toolstack(requested)
    except CommandExecutionError:
        choice = _choice(requested, "toolstack") if requested else _configured_toolstack()
        if choice in TOOLSTACKS:
            return choice
        for tool in TOOLSTACKS:
            if salt.utils.path.which(tool):
                return tool
        raise


# ---------------------------------------------------------------------------
# Public: listing and domain control
# ---------------------------------------------------------------------------


def list_domains(details=False, toolstack=None):
    """List the domains: ``{name: {id, memory_mb, vcpus, state, flags, time_s}}``.

    ``state`` is one of running, blocked, paused, shutdown, crashed, dying;
    ``flags`` the six letters as printed; ``id`` is ``None`` for an xm
    managed domain that is not running. One ``xl list``/``xm list`` per run
    (cached). With ``details=True`` under xl, ``xl list -l`` is run as well
    and each guest gains ``kernel``, ``ramdisk``, ``cmdline``, ``uuid`` and
    ``type`` (Domain-0 has none; xm shows none).

    CLI Example:

    .. code-block:: bash

        salt '*' xm.list_domains
        salt '*' xm.list_domains details=True
    """
    tool = _select_toolstack(toolstack)
    domains = copy.deepcopy(_listing(tool)["domains"])
    if details and tool == "xl":
        command, ret = _run(tool, ["list", "-l"])
        if ret["retcode"] != 0:
            raise _failure(command, ret)
        try:
            detailed = parse_xl_list_long(ret["stdout"])
        except ValueError as err:
            raise CommandExecutionError(str(err)) from None
        for name, extra in detailed.items():
            if name in domains:
                for key in ("kernel", "ramdisk", "cmdline", "uuid", "type"):
                    domains[name][key] = extra[key]
    return domains


def state(name, toolstack=None):
    """Return a domain's state: running, blocked, paused, shutdown, crashed, dying or absent.

    Uses the run's cached listing (listing again only if this domain was
    booted, stopped or migrated since).

    CLI Example:

    .. code-block:: bash

        salt '*' xm.state XenGuest
    """
    check_name(name)
    tool = _select_toolstack(toolstack)
    domain = _listing(tool, name)["domains"].get(name)
    return domain["state"] if domain else "absent"


def create(path, toolstack=None):
    """Boot a domain from its config file (``xl create /abs/path`` / ``xm create /abs/path``).

    Returns ``{"name": <name in the file or None>, "path": <absolute path>,
    "toolstack": "xl"|"xm", "output": <the tool's messages>}``. Raises
    ``CommandExecutionError`` with the tool's message on failure.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.create /etc/xen/XenGuest.cfg
    """
    path = os.path.abspath(path)
    tool = _select_toolstack(toolstack)
    try:
        name = read_config(path).get("name")
    except CommandExecutionError:
        name = None
    command, ret = _run(tool, ["create", path])
    _invalidate(name if isinstance(name, str) else None)
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    output = "\n".join(filter(None, [ret.get("stdout", "").strip(), ret.get("stderr", "").strip()]))
    return {"name": name, "path": path, "toolstack": tool, "output": output}


def _timed_out(ret, timeout):
    return bool(timeout) and ret.get("retcode") != 0 and "Timed out after" in (
        ret.get("stdout") or ""
    ) and not (ret.get("stderr") or "").strip()


def shutdown(name, wait=True, timeout=60, toolstack=None):
    """Shut a domain down gracefully (``shutdown -w NAME`` when ``wait``).

    With ``wait``, gives up after ``timeout`` seconds (``0``/``None``: wait
    for ever). Returns ``{"name": name, "stopped": bool, "timed_out": bool,
    "output": str}``: ``stopped`` is True once the domain has gone (only known
    with ``wait``); ``timed_out`` True when it was still up at the timeout
    (destroy it then if it must go).

    CLI Example:

    .. code-block:: bash

        salt '*' xm.shutdown XenGuest timeout=120
    """
    check_name(name)
    tool = _select_toolstack(toolstack)
    args = ["shutdown", "-w", name] if wait else ["shutdown", name]
    command, ret = _run(tool, args, timeout=(timeout or None) if wait else None)
    _invalidate(name)
    if wait and _timed_out(ret, timeout):
        return {"name": name, "stopped": False, "timed_out": True,
                "output": f"{name} was still up after {timeout} s"}
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    output = "\n".join(filter(None, [ret.get("stdout", "").strip(), ret.get("stderr", "").strip()]))
    return {"name": name, "stopped": bool(wait), "timed_out": False, "output": output}


def _control(name, args, tool):
    command, ret = _run(tool, args)
    _invalidate(name)
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    return True


def destroy(name, toolstack=None):
    """Destroy a domain at once (``destroy NAME``). Returns True.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.destroy XenGuest
    """
    check_name(name)
    return _control(name, ["destroy", name], _select_toolstack(toolstack))


def reboot(name, toolstack=None):
    """Reboot a domain (``reboot NAME``). Returns True.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.reboot XenGuest
    """
    check_name(name)
    return _control(name, ["reboot", name], _select_toolstack(toolstack))


def migrate(name, host, live=True, toolstack=None):
    """Migrate a domain to another dom0 (``xl migrate NAME HOST`` / ``xm migrate [--live]``).

    xl migrations are always live (over ssh); ``live`` matters for xm only.
    Returns True.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.migrate XenGuest dom0-b
    """
    check_name(name)
    target = host.split("@", 1)[-1] if isinstance(host, str) else host
    user = host.split("@", 1)[0] if isinstance(host, str) and "@" in host else None
    valid_target = isinstance(target, str) and (HOSTNAME_RE.match(target) or _is_ip(target))
    if not valid_target or (user is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
                                                                   user)):
        raise _invalid("host", host, "is not a host name or address")
    tool = _select_toolstack(toolstack)
    args = ["migrate", name, host]
    if tool == "xm" and live:
        args = ["migrate", "--live", name, host]
    return _control(name, args, tool)


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# Public: config files
# ---------------------------------------------------------------------------


def config_path(name, config_dir="/etc/xen"):
    """Return ``<config_dir>/<name>.cfg``, the name checked so the path stays in config_dir.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.config_path XenGuest
    """
    check_name(name)
    if not isinstance(config_dir, str) or not os.path.isabs(config_dir):
        raise _invalid("config_dir", config_dir, "must be an absolute path")
    directory = os.path.normpath(config_dir)
    path = os.path.normpath(os.path.join(directory, f"{name}.cfg"))
    if os.path.dirname(path) != directory:
        raise _invalid("name", name, f"would leave the config directory {directory}")
    return path


def render_config(
    name,
    kernel,
    *,
    memory=256,
    ramdisk=None,
    network=None,
    dhcp=None,
    vif=None,
    nfs_server=None,
    nfs_root=None,
    root="/dev/nfs",
    extra=None,
    vcpus=None,
    nfs_options=None,
    guest_type="pv",
    toolstack=None,
):
    """Return the text of a guest's config file for the toolstack in use.

    The arguments are those of :func:`guest_config`; ``toolstack`` ``None``
    or ``auto`` picks the format of the usable (else installed) toolstack.
    The text starts with a comment saying Salt manages the file.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.render_config XenGuest /boot/vmlinuz nfs_server=192.0.2.1 nfs_root=/xen
    """
    tool = _format_toolstack(toolstack)
    config = guest_config(
        name, kernel, memory=memory, ramdisk=ramdisk, network=network, dhcp=dhcp, vif=vif,
        nfs_server=nfs_server, nfs_root=nfs_root, root=root, extra=extra, vcpus=vcpus,
        nfs_options=nfs_options, guest_type=guest_type, toolstack=tool,
    )
    try:
        return render_text(config, tool)
    except ValueError as err:
        raise SaltInvocationError(str(err)) from None


def read_config(path, toolstack=None):
    """Read a guest config file of either format into a dict of settings.

    xl.cfg(5) files are parsed by its grammar; xm files by reading literal
    assignments (never executed). ``toolstack`` (``xl``/``xm``) forces one
    format. Raises ``CommandExecutionError`` naming the file and line.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.read_config /etc/xen/XenGuest.cfg
    """
    try:
        with salt.utils.files.fopen(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise CommandExecutionError(f"Cannot read {path}: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CommandExecutionError(f"{path}: not UTF-8 text ({err})") from None
    try:
        return parse_config(text, source=path, toolstack=toolstack)
    except XenConfigError as err:
        raise CommandExecutionError(str(err)) from None


def write_config(path, text):
    """Write a config file atomically if its content differs; return True if written.

    The file is replaced by rename from a temporary file in the same
    directory, keeping mode and owner; the directory is created (0755) if
    missing.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.write_config /etc/xen/XenGuest.cfg 'name = "XenGuest"'
    """
    data = text.encode("utf-8")
    try:
        with salt.utils.files.fopen(path, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    with salt.utils.atomicfile.atomic_open(path, "wb") as handle:
        handle.write(data)
    return True


def remove_config(path):
    """Remove a config file; return True if it existed.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.remove_config /etc/xen/XenGuest.cfg
    """
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True
