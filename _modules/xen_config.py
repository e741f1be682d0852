"""
A Xen guest's config file: the settings it is made of, one validator per
kind of value, and the two file formats.

* ``xm`` (Xen <= 4.4): a Python file of literal assignments with the xm keys
  the seed uses (``kernel``, ``memory``, ``name``, ``dhcp``, ``vif``,
  ``nfs_root``, ``nfs_server``, ``root``); xm turns ``nfs_server``,
  ``nfs_root`` and ``dhcp`` into the kernel's ``ip=``/``nfsroot=`` itself.
  Files are read by their literal assignments, never executed.
* ``xl``: xl.cfg(5). xl silently ignores the xm-only keys, so the rendered
  file has ``root = "/dev/nfs"`` and an ``extra`` holding the synthesized
  ``ip=...`` and ``nfsroot=SERVER:PATH,vers=3`` (plus ``boot=nfs`` when an
  initramfs is given).

:data:`GUEST_SETTINGS` is the one definition of a guest's config settings
and their defaults: the ``xen_guest`` states take them as keyword arguments,
the ``xen_nfsroot`` pillar maps its fields onto them, and
:func:`guest_config` validates them with the ``check_*`` functions, which
every other module calls (through ``__salt__``) for the same kinds of value.
Files are written through ``nfsroot_files`` (atomic, mode and owner kept,
new files 0644 like Xen's own examples).
"""

import ast
import ipaddress
import keyword
import math
import posixpath
import re

import salt.utils.files
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "xen_config"

TOOLSTACKS = ("xl", "xm")
TOOLSTACK_CHOICES = ("auto", "xl", "xm")
GUEST_TYPES = ("pv", "pvh")
#: What Xen does when the guest crashes (xl.cfg(5) on_crash).
ON_CRASH = ("destroy", "restart", "preserve", "coredump-destroy", "coredump-restart",
            "rename-restart", "soft-reset")
CONFIG_DIR = "/etc/xen"

#: A guest's config settings, besides its name and kernel: their defaults,
#: and what each is.
GUEST_SETTINGS = {
    "memory": (256, "MiB"),
    "vcpus": (None, "virtual CPUs (none: Xen's default, 1)"),
    "ramdisk": (None, "an initramfs on the dom0 that mounts the NFS root (adds boot=nfs)"),
    "network": (None, "dhcp (the default, unless dhcp: off), off, or {address, netmask "
                      "(default 255.255.255.0), gateway, hostname, interface (default eth0)}"),
    "dhcp": (None, "the seed's xm key: dhcp or off"),
    "vif": ([""], "network interfaces: vif specs ('' is one with defaults)"),
    "nfs_server": (None, "the address the guest mounts its root from"),
    "nfs_root": (None, "the exported path the guest mounts as /"),
    "nfs_options": ("vers=3", "NFS mount options appended to nfsroot="),
    "root": ("/dev/nfs", "the root device on the kernel command line"),
    "extra": (None, "more kernel command line (e.g. console=hvc0)"),
    "guest_type": ("pv", "pv or pvh (xl only)"),
    "on_crash": ("destroy", "what Xen does when the guest crashes (preserve keeps it)"),
}

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
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
NETWORK_KEYS = frozenset(("dhcp", "address", "netmask", "gateway", "hostname", "interface"))

HEADER = "# Managed by Salt (xen-nfsroot): local changes are overwritten.\n"
XM_HEADER = "# -*- mode: python; coding: utf-8 -*-\n" + HEADER
XL_HEADER = HEADER + (
    "# xl.cfg(5) syntax: xl ignores the xm-only NFS keys, so the NFS root is in extra.\n"
)


def __virtual__():
    return __virtualname__


class XenConfigError(ValueError):
    """A Xen guest config file that cannot be read; the message names file and line."""


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

        salt-call xen_config.parse_xl 'name = "XenGuest"'
    """
    return _XlParser(_xl_tokens(text, source), source).settings()


class _XlParser:
    """The grammar of libxlu_cfg_y.y over _xl_tokens: settings, values, lists."""

    def __init__(self, tokens, source):
        self.tokens = tokens
        self.source = source
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos]

    def take(self):
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, token, what):
        near = "<newline>" if token[0] == "newline" else token[1].strip() or "<end of file>"
        raise XenConfigError(
            f"{self.source}:{token[2]}: config parsing error near `{near}': syntax error, "
            f"{what}"
        )

    def skip_newlines(self):
        while self.peek()[0] == "newline":
            self.pos += 1

    def value(self):
        token = self.take()
        if token[0] == "string":
            return _xl_dequote(token[1], self.source, token[2])
        if token[0] == "number":
            return _xl_number(token[1])
        if token[1] == "[":
            return self.items()
        self.fail(token, "expecting a string, a number or '['")
        return None

    def items(self):
        """A list's items, after its '['."""
        items = []
        self.skip_newlines()
        while self.peek()[1] != "]":
            items.append(self.value())
            self.skip_newlines()
            if self.peek()[1] == ",":
                self.pos += 1
                self.skip_newlines()
            elif self.peek()[1] != "]":
                self.fail(self.peek(), "expecting ',' or ']'")
        self.pos += 1
        return items

    def setting(self, config):
        """One `key = value` (or `key += value`) into config."""
        token = self.take()
        if token[0] != "ident":
            self.fail(token, "expecting a setting name")
        key = token[1]
        operator = self.take()
        if operator[1] not in ("=", "+="):
            self.fail(operator, "expecting '='")
        value = self.value()
        if operator[1] == "+=" and key in config:
            previous = config[key]
            if type(previous) is not type(value) or not isinstance(value, (list, str)):
                self.fail(operator, f"cannot append to {key}")
            value = previous + value
        config[key] = value
        end = self.peek()
        if end[0] not in ("newline", "eof") and end[1] != ";":
            self.fail(end, "expecting a newline or ';'")

    def settings(self):
        config = {}
        while self.peek()[0] != "eof":
            if self.peek()[0] == "newline" or self.peek()[1] == ";":
                self.pos += 1
                continue
            self.setting(config)
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

        salt-call xen_config.render_xl '{"name": "XenGuest", "memory": 256}'
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

        salt-call xen_config.parse_xm 'memory = 256'
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

        salt-call xen_config.render_xm '{"name": "XenGuest", "memory": 256}'
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

        salt-call xen_config.parse_config 'memory = 256'
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

        salt-call xen_config.render_text '{"name": "XenGuest"}' xl
    """
    if toolstack == "xl":
        return render_xl(config)
    if toolstack == "xm":
        return render_xm(config)
    raise SaltInvocationError(f"toolstack: {toolstack!r} is not one of xl, xm")



# ---------------------------------------------------------------------------
# One validator per kind of value (pure): each returns the value in its
# canonical form or raises SaltInvocationError naming the field and the value.
# ---------------------------------------------------------------------------


def _invalid(field, value, problem):
    return SaltInvocationError(f"{field}: {value!r} {problem}")


def check_name(name, field="name"):
    """
    Check a guest (domain) name against Xen's rule; return it or raise.

    Allowed: letters, digits and ``_ . : + -``; not ``.`` or ``..``; not
    starting with ``-`` (it would be read as a command option).

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_name XenGuest
    """
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise _invalid(
            field, name,
            "is not a valid Xen domain name (letters, digits and _ . : + - only; "
            "not '.' or '..')",
        )
    if name.startswith("-"):
        raise _invalid(field, name, "must not start with '-' (it would read as an option)")
    return name


def check_path(value, field="path"):
    """
    Check a file path on the dom0 (a kernel, an initramfs): absolute, without
    spaces or control characters (it goes into the config and, for xm, onto
    xend's command lines). Returns it.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_path /boot/vmlinuz-guest kernel
    """
    if not isinstance(value, str) or not value.startswith("/"):
        raise _invalid(field, value, "must be an absolute path")
    if CONTROL_RE.search(value) or " " in value:
        raise _invalid(field, value, "must not contain spaces or control characters")
    return value


def check_nfs_root(value, field="nfs_root"):
    """
    Check the exported path a guest mounts as its root (``nfsroot=SERVER:PATH``
    on its kernel command line): an absolute, normalised path without spaces,
    control characters or ``,`` (which starts the NFS options), not ``/``.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_nfs_root /xen
    """
    check_path(value, field)
    if "," in value:
        raise _invalid(field, value, "must not contain ',' (it starts NFS options)")
    if posixpath.normpath(value) != value.rstrip("/") or value == "/":
        raise _invalid(field, value, "must be a normalised path below /")
    return value


def check_count(value, field="memory"):
    """
    Check a positive whole number (``memory`` in MiB, ``vcpus``); digits in a
    string are accepted. Returns the number.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_count 256 memory
    """
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _invalid(field, value, "is not a positive integer")
    return value


def check_address(value, field="nfs_server"):
    """
    Check an IPv4 address (the kernel's ``ip=``/``nfsroot=`` take IPv4 only).
    Returns it in canonical form.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_address 192.0.2.1
    """
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise _invalid(field, value, "is not an IPv4 address") from None


def _check_netmask(value, field):
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.lstrip("/").isdigit():
        value = value.lstrip("/")
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{value}").netmask)
    except (ipaddress.NetmaskValueError, ValueError, TypeError):
        raise _invalid(field, value, "is not an IPv4 netmask (255.255.255.0 or 24)") from None


def check_text(value, field="extra"):
    """
    Check a piece of kernel command line (``root``, ``extra``): a string (a
    list is joined with spaces) without control characters. Returns it
    stripped, or None when empty.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_text 'console=hvc0'
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = " ".join(str(item) for item in value)
    if not isinstance(value, str):
        raise _invalid(field, value, "must be a string")
    if CONTROL_RE.search(value):
        raise _invalid(field, value, "must not contain control characters (newlines, tabs)")
    return value.strip() or None


def check_choice(value, field, choices):
    """
    Check a value against its allowed words (``toolstack``: auto, xl, xm;
    ``guest_type``: pv, pvh; ``on_crash``: destroy, restart, preserve, ...).

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_choice xl toolstack '[auto, xl, xm]'
    """
    if value not in choices:
        raise _invalid(field, value, f"must be one of {', '.join(choices)}")
    return value


def _static_network(network, field):
    unknown = sorted(set(network) - NETWORK_KEYS)
    if unknown:
        raise _invalid(f"{field}.{unknown[0]}", network[unknown[0]], "is not a network key")
    dhcp = network.get("dhcp") or False
    if not isinstance(dhcp, bool):
        raise _invalid(f"{field}.dhcp", dhcp, "must be true or false")
    address = network.get("address")
    if address in (None, "") and not dhcp:
        raise _invalid(f"{field}.address", address,
                       "is required for a static address (or use network: dhcp)")
    result = {
        "dhcp": dhcp,
        "address": None if address in (None, "") else check_address(address, f"{field}.address"),
        # A static address without a netmask gets a /24, not the kernel's
        # class-based guess (which makes 10.x.y.z a /8).
        "netmask": (None if dhcp and network.get("netmask") in (None, "")
                    else _check_netmask(network.get("netmask") or "255.255.255.0",
                                        f"{field}.netmask")),
        "gateway": (None if network.get("gateway") in (None, "")
                    else check_address(network["gateway"], f"{field}.gateway")),
        "hostname": network.get("hostname") or None,
        "interface": network.get("interface") or "eth0",
    }
    hostname = result["hostname"]
    if hostname is not None and (not isinstance(hostname, str) or not HOSTNAME_RE.match(hostname)):
        raise _invalid(f"{field}.hostname", hostname, "is not a valid host name")
    if not isinstance(result["interface"], str) or not INTERFACE_RE.match(result["interface"]):
        raise _invalid(f"{field}.interface", result["interface"], "is not an interface name")
    return result


def check_network(value, field="network"):
    """
    Check the guest kernel's network setting: ``dhcp``, ``off``, or a mapping
    with ``address`` (required unless ``dhcp: true``), ``netmask`` (dotted or
    a prefix length), ``gateway``, ``hostname`` and ``interface`` (default
    ``eth0``). Returns ``"dhcp"``, ``"off"`` or the mapping with every key.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_network '{address: 192.0.2.10, netmask: 24}'
    """
    if value in ("dhcp", "off"):
        return value
    if not isinstance(value, dict):
        raise _invalid(field, value, "must be 'dhcp', 'off' or a mapping of address, netmask, "
                                     "gateway, hostname, interface")
    return _static_network(value, field)


def _network(network, dhcp):
    """The network a guest's kernel configures: None (off) or a full mapping."""
    if dhcp is not None and dhcp not in ("dhcp", "off"):
        raise _invalid("dhcp", dhcp, "must be 'dhcp' or 'off'")
    if network is None:
        network = "off" if dhcp == "off" else "dhcp"
    network = check_network(network)
    wants_dhcp = network == "dhcp" or (isinstance(network, dict) and network["dhcp"])
    if dhcp is not None and network != "off" and wants_dhcp != (dhcp == "dhcp"):
        raise _invalid("dhcp", dhcp, f"contradicts network {network!r}")
    if network == "off":
        return None
    return _static_network({"dhcp": True} if network == "dhcp" else network, "network")


def _vif_spec(item, field):
    spec = "" if item is None else item
    if isinstance(spec, dict):
        spec = ",".join(f"{key}={value}" for key, value in spec.items())
    if not isinstance(spec, str) or CONTROL_RE.search(spec) or '"' in spec or "'" in spec:
        raise _invalid(field, spec, "must be a string without quotes or control characters")
    for part in filter(None, (piece.strip() for piece in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not VIF_KEY_RE.match(key.strip()):
            raise _invalid(field, spec, f"has {part!r}, not key=value")
        if key.strip() == "mac" and not MAC_RE.match(value.strip().lower()):
            raise _invalid(field, spec, "has a mac that is not xx:xx:xx:xx:xx:xx")
    return spec


def check_vif(value, field="vif"):
    """
    Check the guest's network interfaces: a list of vif specs (``key=value``
    pairs separated by commas, e.g. ``bridge=xenbr0,mac=00:16:3e:00:00:01``;
    ``''`` is one interface with defaults), or one spec. Returns the list.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_vif '["bridge=xenbr0"]'
    """
    if value is None:
        return [""]
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _invalid(field, value, "must be a list of interface specs")
    return [_vif_spec(item, f"{field}[{index}]") for index, item in enumerate(value)]


def vif_macs(vif):
    """
    The MAC addresses a list of vif specs sets, lowercase.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.vif_macs '["mac=00:16:3E:00:00:01"]'
    """
    macs = []
    for spec in check_vif(vif):
        for part in spec.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip() == "mac":
                macs.append(value.strip().lower())
    return macs


def check_nfs_options(value, field="nfs_options"):
    """
    Check the NFS mount options appended to ``nfsroot=`` (e.g. ``vers=3``; a
    list is joined with commas). Returns them, or None when empty.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_nfs_options vers=3,tcp
    """
    if value in (None, "", []):
        return None
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    if not isinstance(value, str):
        raise _invalid(field, value, "must be a string such as 'vers=3'")
    for option in value.split(","):
        if not NFS_OPTION_RE.match(option):
            raise _invalid(field, value, f"has {option!r}, not an NFS mount option")
    return value


def check_config_dir(value, field="config_dir"):
    """
    Check the directory guest configs live in: an absolute, normalised path.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_config_dir /etc/xen
    """
    check_path(value, field)
    if posixpath.normpath(value) != value:
        raise _invalid(field, value, "must be a normalised absolute path")
    return value


def guest_setting_defaults():
    """
    The settings a guest's config is made of, with their defaults
    (:data:`GUEST_SETTINGS`).

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.guest_setting_defaults
    """
    return {name: default for name, (default, _) in GUEST_SETTINGS.items()}


def guest_setting_docs():
    """
    What each guest setting of :data:`GUEST_SETTINGS` is, in a line.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.guest_setting_docs
    """
    return {name: doc for name, (_, doc) in GUEST_SETTINGS.items()}


# The validator of each setting of GUEST_SETTINGS (None values skip it).
_CHECKS = {
    "memory": check_count,
    "vcpus": check_count,
    "ramdisk": check_path,
    "vif": check_vif,
    "nfs_server": check_address,
    "nfs_root": check_nfs_root,
    "nfs_options": check_nfs_options,
    "root": check_text,
    "extra": check_text,
    "guest_type": lambda value, field: check_choice(value, field, GUEST_TYPES),
    "on_crash": lambda value, field: check_choice(value, field, ON_CRASH),
}


def check_setting(setting, value, field=None):
    """
    Check one guest setting of :data:`GUEST_SETTINGS` by its validator; a
    None value is the setting's absence. Returns the canonical value.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.check_setting memory 512
    """
    if setting not in GUEST_SETTINGS:
        raise _invalid("setting", setting, f"is not a guest setting "
                                           f"(known: {', '.join(GUEST_SETTINGS)})")
    field = field or setting
    if value is None:
        return None
    if setting == "network":
        return check_network(value, field)
    if setting == "dhcp":
        return check_choice(value, field, ("dhcp", "off"))
    return _CHECKS[setting](value, field)


def guest_settings(name, kernel, **settings):
    """
    Validate a guest's settings (see :data:`GUEST_SETTINGS`) and return them
    complete, defaults merged and each value in its canonical form (pure).

    Unknown settings, bad values and contradictions (``nfs_root`` without
    ``nfs_server``, ``root: /dev/nfs`` without ``nfs_root``) raise
    ``SaltInvocationError`` naming the field and the value.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.guest_settings XenGuest /boot/vmlinuz \
            nfs_server=192.0.2.1 nfs_root=/xen
    """
    unknown = sorted(set(settings) - set(GUEST_SETTINGS))
    if unknown:
        raise _invalid(unknown[0], settings[unknown[0]],
                       f"is not a guest setting (known: {', '.join(GUEST_SETTINGS)})")
    merged = {**guest_setting_defaults(), **settings, "name": check_name(name),
              "kernel": check_path(kernel, "kernel")}
    for key, check in _CHECKS.items():
        if merged[key] is not None:
            merged[key] = check(merged[key], key)
    merged["network"] = check_network(merged["network"]) if merged["network"] else None
    _network(merged["network"], merged["dhcp"])
    if merged["nfs_root"] and not merged["nfs_server"]:
        raise _invalid("nfs_server", merged["nfs_server"],
                       "is required with nfs_root (Must set nfs root and nfs server)")
    if merged["nfs_server"] and not merged["nfs_root"]:
        raise _invalid("nfs_root", merged["nfs_root"], "is required with nfs_server")
    if merged["root"] == "/dev/nfs" and not merged["nfs_root"]:
        raise _invalid("nfs_root", merged["nfs_root"], "is required when root is /dev/nfs")
    return merged


# ---------------------------------------------------------------------------
# Guest settings -> config keys (pure)
# ---------------------------------------------------------------------------


def _xm_network(net):
    """The xm keys of the guest kernel's network (xm builds ip= from them)."""
    if not net:
        return {}
    keys = {"dhcp": "dhcp"} if net["dhcp"] else {}
    if net["address"]:
        keys["ip"] = net["address"]
    keys.update({key: net[key] for key in ("netmask", "gateway", "hostname") if net[key]})
    if net["interface"] != "eth0":
        keys["interface"] = net["interface"]
    return keys


def _xm_keys(guest, net):
    """The xm config keys: xm itself turns nfs_server/nfs_root/dhcp into
    the kernel's ip= and nfsroot= (its nfsroot= is plain concatenation, so
    the NFS options go after the path)."""
    config = {"kernel": guest["kernel"]}
    if guest["ramdisk"]:
        config["ramdisk"] = guest["ramdisk"]
    config["memory"] = guest["memory"]
    config["name"] = guest["name"]
    if guest["vcpus"]:
        config["vcpus"] = guest["vcpus"]
    config.update(_xm_network(net))
    config["vif"] = guest["vif"]
    if guest["nfs_root"]:
        options = guest["nfs_options"]
        config["nfs_root"] = guest["nfs_root"] + ("," + options if options else "")
        config["nfs_server"] = guest["nfs_server"]
    if guest["root"]:
        config["root"] = guest["root"]
    extra = " ".join(filter(None, [_boot_nfs(guest), guest["extra"]]))
    if extra:
        config["extra"] = extra
    if guest["on_crash"] != "destroy":
        config["on_crash"] = guest["on_crash"]
    return config


def _boot_nfs(guest):
    # initramfs-tools mounts an NFS root with boot=nfs.
    return "boot=nfs" if guest["ramdisk"] and guest["nfs_root"] else None


def _kernel_ip(guest, net):
    return "ip={}:{}:{}:{}:{}:{}:{}".format(
        net["address"] or "", guest["nfs_server"] or "", net["gateway"] or "",
        net["netmask"] or "", net["hostname"] or "", net["interface"],
        "dhcp" if net["dhcp"] else "off",
    )


def _xl_keys(guest, net):
    """The xl.cfg keys: what xm would have synthesized goes into extra."""
    parts = [_kernel_ip(guest, net)] if net else []
    if guest["nfs_root"]:
        options = guest["nfs_options"]
        parts.append(f"nfsroot={guest['nfs_server']}:{guest['nfs_root']}"
                     + ("," + options if options else ""))
    parts.extend(filter(None, [_boot_nfs(guest), guest["extra"]]))
    config = {"name": guest["name"], "type": guest["guest_type"], "kernel": guest["kernel"]}
    if guest["ramdisk"]:
        config["ramdisk"] = guest["ramdisk"]
    config["memory"] = guest["memory"]
    if guest["vcpus"]:
        config["vcpus"] = guest["vcpus"]
    config["vif"] = guest["vif"]
    if guest["root"]:
        config["root"] = guest["root"]
    if parts:
        config["extra"] = " ".join(parts)
    if guest["on_crash"] != "destroy":  # xl's default: no line for it
        config["on_crash"] = guest["on_crash"]
    return config


def guest_config(name, kernel, toolstack="xl", **settings):
    """
    Validate a guest's settings and return the keys of its config file in
    the format of ``toolstack`` (pure):

    * ``xm``: ``kernel``, ``ramdisk``, ``memory``, ``name``, ``vcpus``,
      ``dhcp`` (or ``ip``/``netmask``/``gateway``/``hostname``/``interface``),
      ``vif``, ``nfs_root`` (with the NFS options appended, as xm builds
      ``nfsroot=`` by concatenation), ``nfs_server``, ``root``, ``extra``,
      ``on_crash`` -- only those that apply.
    * ``xl``: ``name``, ``type``, ``kernel``, ``ramdisk``, ``memory``,
      ``vcpus``, ``vif``, ``root``, ``extra`` = ``ip=... nfsroot=SERVER:PATH,
      OPTS [boot=nfs] [extra]`` and ``on_crash``.

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.guest_config XenGuest /boot/vmlinuz \
            nfs_server=192.0.2.1 nfs_root=/xen
    """
    check_choice(toolstack, "toolstack", TOOLSTACKS)
    guest = guest_settings(name, kernel, **settings)
    net = _network(guest["network"], guest["dhcp"])
    if toolstack == "xm":
        if guest["guest_type"] != "pv":
            raise _invalid("guest_type", guest["guest_type"], "is not supported by xm (pv only)")
        return _xm_keys(guest, net)
    return _xl_keys(guest, net)


def render_config(name, kernel, toolstack="xl", **settings):
    """
    The text of a guest's config file in the format of ``toolstack`` (``xl``
    or ``xm``), starting with a comment saying Salt manages it (pure).

    CLI Example:

    .. code-block:: bash

        salt-call xen_config.render_config XenGuest /boot/vmlinuz xl \
            nfs_server=192.0.2.1 nfs_root=/xen
    """
    config = guest_config(name, kernel, toolstack, **settings)
    try:
        return render_text(config, toolstack)
    except ValueError as err:
        raise SaltInvocationError(str(err)) from None


# ---------------------------------------------------------------------------
# Config files
# ---------------------------------------------------------------------------


def config_path(name, config_dir=CONFIG_DIR):
    """
    Return ``<config_dir>/<name>.cfg``, the name checked so the path stays in
    config_dir.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_config.config_path XenGuest
    """
    check_name(name)
    directory = check_config_dir(config_dir)
    path = posixpath.join(directory, f"{name}.cfg")
    if posixpath.dirname(path) != directory:
        raise _invalid("name", name, f"would leave the config directory {directory}")
    return path


def read_config(path, toolstack=None):
    """
    Read a guest config file of either format into a dict of settings.

    xl.cfg(5) files are parsed by its grammar; xm files by reading literal
    assignments (never executed). ``toolstack`` (``xl``/``xm``) forces one
    format. Raises ``CommandExecutionError`` naming the file and line.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_config.read_config /etc/xen/XenGuest.cfg
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
    """
    Write a config file if its content differs; return True if written.

    Through ``nfsroot_files.write``: atomic, durable, mode and owner kept; a
    new file is 0644 (Xen's own example configs are world-readable) and its
    directory is created (0755) if missing.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_config.write_config /etc/xen/XenGuest.cfg 'name = "XenGuest"'
    """
    data = text.encode("utf-8")
    if __salt__["nfsroot_files.read"](path) == data:
        return False
    __salt__["nfsroot_files.write"](path, data, mode=0o644, makedirs=True)
    return True


def remove_config(path):
    """
    Remove a config file; return True if it existed.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_config.remove_config /etc/xen/XenGuest.cfg
    """
    return __salt__["nfsroot_files.remove"](path)
