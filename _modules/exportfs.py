"""
NFS server exports: ``/etc/exports``, ``/etc/exports.d/*.exports`` and ``exportfs``.

The exports(5) files are read into a lossless model: every byte the module
does not edit is written back unchanged (comments, blank lines, tabs,
continuation lines, quoting, a missing final newline, lines ``exportfs``
itself rejects). Editing one export rewrites only that export's lines, adding
one appends a line, removing one deletes only its lines. Writes are atomic
(temporary file in the same directory, then rename), keep the file's mode and
owner, and are serialised by an exclusive lock on the file's directory, under
which the file is read again, so concurrent writers lose nothing.

The tokenizer follows nfs-utils (``support/nfs/xio.c``, ``exports.c``):
``#`` starts a comment only where a token could start, ``"`` toggles quoting
inside a token, ``\\ooo`` octal escapes, a trailing ``\\`` continues the entry
on the next line, ``-opts`` after the path sets defaults for the rest of the
line, a client without ``(opts)`` gets the defaults, and ``(opts)`` with no
client name (``host (rw)``: whitespace before ``(``) applies to the world.

Options are compared as a normalised set (:func:`normalize_options`): their
order and spelled-out defaults never cause a rewrite.

Changes are applied with one ``exportfs -ra`` (:func:`reload`, which puts
back the files a run changed if exportfs rejects them); the process exit
status is trusted, never the emptiness of stderr (``exportfs`` prints
warnings when it succeeds). :func:`check_active` compares an export with the
server's live table (``exportfs -v``, once per run).
"""

import bisect
import contextlib
import difflib
import fnmatch
import ipaddress
import logging
import os
import random
import re
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "exportfs"

__all__ = [
    "list_configured",
    "list_active",
    "add",
    "remove",
    "reload",
    "check_active",
    "unexport",
    "mounts",
    "mounted_by",
    "validate",
    "check_exports_file",
    "normalize_options",
    "list_exports",
    "add_export",
    "del_export",
    "reload_exports",
]

DEFAULT_EXPORTS = "/etc/exports"
EXPORTS_D = "/etc/exports.d"
DROP_IN_SUFFIX = ".exports"

# __context__ keys: parsed files, the parsed ``exportfs -v`` listing, and the
# files changed in this run with their bytes before it (for reload's rollback).
_CTX_FILES = "exportfs.files"
_CTX_ACTIVE = "exportfs.active"
_CTX_CHANGED = "exportfs.changed"
# How often an edit is retried when another writer changes the file meanwhile
# (each retry waits a little longer, at random, so that writers spread out).
_EDIT_ATTEMPTS = 50

_BLANKS = " \t"
_SPACES = " \t\n\r\v\f"
# A token without quotes, escapes or continuations: the common case, read
# in one match instead of character by character.
_PLAIN_TOKEN = re.compile(r'[^ \t\n\r\v\f"\\]*')


def __virtual__():
    if salt.utils.path.which("exportfs"):
        return __virtualname__
    return (
        False,
        "The exportfs execution module cannot be loaded: the exportfs binary "
        "(package nfs-kernel-server or nfs-utils) is not in the path",
    )


# ---------------------------------------------------------------------------
# Export options: the exports(5) keywords of nfs-utils 2.6 and their meaning
# ---------------------------------------------------------------------------

# option -> (setting, canonical value); aliases map to the same value.
_FLAG_OPTIONS = {
    "ro": ("access", "ro"),
    "rw": ("access", "rw"),
    "sync": ("sync", "sync"),
    "async": ("sync", "async"),
    "secure": ("secure", "secure"),
    "insecure": ("secure", "insecure"),
    "wdelay": ("wdelay", "wdelay"),
    "no_wdelay": ("wdelay", "no_wdelay"),
    "hide": ("hide", "hide"),
    "nohide": ("hide", "nohide"),
    "crossmnt": ("crossmnt", "crossmnt"),
    "nocrossmnt": ("crossmnt", "nocrossmnt"),
    "root_squash": ("root_squash", "root_squash"),
    "no_root_squash": ("root_squash", "no_root_squash"),
    "all_squash": ("all_squash", "all_squash"),
    "no_all_squash": ("all_squash", "no_all_squash"),
    "subtree_check": ("subtree_check", "subtree_check"),
    "no_subtree_check": ("subtree_check", "no_subtree_check"),
    "secure_locks": ("locks", "secure_locks"),
    "auth_nlm": ("locks", "secure_locks"),
    "insecure_locks": ("locks", "insecure_locks"),
    "no_auth_nlm": ("locks", "insecure_locks"),
    "acl": ("acl", "acl"),
    "no_acl": ("acl", "no_acl"),
    "pnfs": ("pnfs", "pnfs"),
    "no_pnfs": ("pnfs", "no_pnfs"),
    "nordirplus": ("nordirplus", "nordirplus"),
    "security_label": ("security_label", "security_label"),
    "mountpoint": ("mountpoint", "mountpoint"),
    "mp": ("mountpoint", "mountpoint"),
}
_VALUE_OPTIONS = (
    "anonuid",
    "anongid",
    "fsid",
    "sec",
    "refer",
    "replicas",
    "mountpoint",
    "mp",
    "squash_uids",
    "squash_gids",
)
# What exportfs assumes when an option is not given (nfs-utils >= 1.1:
# no_subtree_check is the default).
_DEFAULTS = {
    "access": "ro",
    "sync": "sync",
    "secure": "secure",
    "wdelay": "wdelay",
    "hide": "hide",
    "crossmnt": "nocrossmnt",
    "root_squash": "root_squash",
    "all_squash": "no_all_squash",
    "subtree_check": "no_subtree_check",
    "locks": "secure_locks",
    "acl": "acl",
    "pnfs": "no_pnfs",
    "nordirplus": None,
    "security_label": None,
    "mountpoint": None,
    "anonuid": "anonuid=65534",
    "anongid": "anongid=65534",
    "fsid": None,
    "fsloc": None,
    "squash_uids": None,
    "squash_gids": None,
}
# ``exportfs -v`` prints no_subtree_check when set and nothing otherwise.
_LISTING_DEFAULTS = dict(_DEFAULTS, subtree_check="subtree_check")
# Choices always kept in the normalised form, default or not, so that it
# reads as a full statement of access: ro|rw, sync|async, (no_)root_squash.
_EXPLICIT = ("access", "sync", "root_squash")
# Settings that may differ per security flavour (sec=a:b,<flags>,sec=c,...).
_SECINFO = ("access", "secure", "root_squash", "all_squash")
_FLAVOURS = {
    "krb5": "krb5",
    "krb5i": "krb5i",
    "krb5p": "krb5p",
    "sys": "sys",
    "unix": "sys",
    "none": "none",
    "null": "none",
}
_KNOWN_OPTION_NAMES = sorted(set(_FLAG_OPTIONS) | {name + "=" for name in _VALUE_OPTIONS})


def _split_options(text):
    """Split an exports(5) option list the way nfs-utils' parseopts does."""
    pieces = text.split(",")
    if pieces and pieces[-1].strip(_BLANKS) == "":
        pieces.pop()
    options = []
    for piece in pieces:
        option = piece.lstrip(_BLANKS)
        # squash_uids=0-15,20 continues over the following numeric items
        if options and re.fullmatch(r"\d+(-\d+)?", option) and options[-1].startswith(
            ("squash_uids=", "squash_gids=")
        ):
            options[-1] += "," + option
            continue
        options.append(option)
    return options


def _uuid_fsid(value):
    return sum(char in "0123456789abcdefABCDEF" for char in value) == 32


def _fsid_number(value):
    """fsid=VALUE as strtoul(VALUE, 0) reads it, or None when it is not a number."""
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", value):
        return int(value, 16)
    if re.fullmatch(r"0[0-7]*", value):
        return int(value, 8)
    if re.fullmatch(r"[1-9][0-9]*", value):
        return int(value)
    return None


def _id_problem(name, value, option):
    if not re.fullmatch(r"[+-]?\d+", value) or not -(2**31) <= int(value) < 2**31:
        return f"bad {name} '{option}': expected an integer uid/gid"
    return None


def _fsid_problem(name, value, option):
    number = _fsid_number(value)
    if number is None and value != "root" and not (
        re.fullmatch(r"[0-9a-fA-F-]+", value) and _uuid_fsid(value)
    ):
        return (f"bad {name} '{option}': expected 'root', a number or a UUID "
                "(32 hexadecimal digits)")
    if number is not None and number >= 2**32:
        return f"bad {name} '{option}': the number must be below 2**32"
    return None


def _sec_problem(_name, value, option):
    for flavour in value.split(":"):
        if flavour not in _FLAVOURS:
            return (f"unknown security flavour '{flavour}' in '{option}' "
                    f"(known: {', '.join(sorted(_FLAVOURS))})")
    return None


def _squash_problem(name, value, option):
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
        return f"bad {name} '{option}': expected a list of ids or id ranges"
    return None


def _mountpoint_problem(name, value, option):
    if not value.startswith("/"):
        return f"bad {name} '{option}': expected an absolute path"
    return None


def _value_problem(name, value, option):
    return None if value else f"bad option '{option}': {name}= needs a value"


# The check of each value option's value (exports(5)).
_VALUE_CHECKS = {
    "anonuid": _id_problem, "anongid": _id_problem, "fsid": _fsid_problem,
    "sec": _sec_problem, "squash_uids": _squash_problem, "squash_gids": _squash_problem,
    "mountpoint": _mountpoint_problem, "mp": _mountpoint_problem,
}


def _option_problem(option):
    """Why exportfs would reject one option, or None when it accepts it."""
    if option in _FLAG_OPTIONS:
        return None
    name, equals, value = option.partition("=")
    if not equals or name not in _VALUE_OPTIONS:
        close = difflib.get_close_matches(option, _KNOWN_OPTION_NAMES, n=1, cutoff=0.7)
        hint = f" (did you mean '{close[0].rstrip('=')}'?)" if close else ""
        return f"unknown export option '{option}'{hint}"
    return _VALUE_CHECKS.get(name, _value_problem)(name, value, option)


def _sec_group(value, settings, flavours):
    """Start a sec= group: the indexes (in flavours) of its flavours."""
    active = []
    for spelling in value.split(":"):
        flavour = _FLAVOURS[spelling]
        names = [entry[0] for entry in flavours]
        if flavour not in names:
            flavours.append([flavour, {key: settings[key] for key in _SECINFO}])
            names.append(flavour)
        active.append(names.index(flavour))
    return active


def _setting_of(name, value, option):
    """The (setting, canonical value) a valid value option sets."""
    if name in ("anonuid", "anongid"):
        return name, f"{name}={int(value)}"
    if name == "fsid":
        number = 0 if value == "root" else _fsid_number(value)
        return "fsid", f"fsid={value.lower() if number is None else number}"
    if name in ("mountpoint", "mp"):
        return "mountpoint", f"mountpoint={value}"
    if name in ("refer", "replicas"):
        return "fsloc", option
    return name, option  # squash_uids, squash_gids


def _evaluate(options, defaults=None):
    """What exportfs makes of an option list, as (settings, flavours, unknown).

    Mirrors nfs-utils parseopts(): later options win; ``sec=`` starts a
    group whose access and squash flags apply to those flavours only.
    """
    settings = dict(defaults or _DEFAULTS)
    flavours = []  # [name, {secinfo setting: value}] in the order given
    active = []
    unknown = set()
    for option in options:
        if option in _FLAG_OPTIONS:
            setting, value = _FLAG_OPTIONS[option]
            settings[setting] = value
            if setting in _SECINFO:
                for index in active:
                    flavours[index][1][setting] = value
            continue
        name, _, value = option.partition("=")
        if _option_problem(option):
            unknown.add(option)
        elif name == "sec":
            active = _sec_group(value, settings, flavours)
        else:
            setting, canonical = _setting_of(name, value, option)
            settings[setting] = canonical
    return settings, flavours, unknown


def _option_tokens(options, start=None, ignore=()):
    """The normalised set of an option list (see :func:`normalize_options`).

    start: the settings before the first option (exportfs's defaults, or
    _LISTING_DEFAULTS for ``exportfs -v`` output); ignore: settings left out.
    """
    settings, flavours, unknown = _evaluate(options, start)
    tokens = set(unknown)
    for setting, value in settings.items():
        if setting in ignore or value is None:
            continue
        if setting in _EXPLICIT or value != _DEFAULTS[setting]:
            tokens.add(value)
    if [entry[0] for entry in flavours] not in ([], ["sys"]):
        tokens.add("sec=" + ":".join(entry[0] for entry in flavours))
        for flavour, flags in flavours:
            tokens.update(
                f"{flavour}:{value}" for setting, value in flags.items() if setting not in ignore
            )
    return frozenset(tokens)


def normalize_options(options):
    """
    Return an export option list as its normalised, sorted set.

    Order does not matter, aliases are folded (``auth_nlm`` =
    ``secure_locks``, ``mp`` = ``mountpoint``, ``fsid=root`` = ``fsid=0``,
    ``sec=unix`` = ``sec=sys``), later options override earlier ones, and
    options equal to exportfs's defaults are dropped (``wdelay``, ``hide``,
    ``nocrossmnt``, ``secure``, ``no_all_squash``, ``no_subtree_check``,
    ``secure_locks``, ``acl``, ``no_pnfs``, ``anonuid=65534``,
    ``anongid=65534``, ``sec=sys``), except the three explicit choices that
    are always present: ``ro``/``rw``, ``sync``/``async`` and
    ``root_squash``/``no_root_squash``. No options at all gives
    ``['ro', 'root_squash', 'sync']``.

    options
        A list of options or a comma-separated string. Unknown options raise
        an error naming them.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.normalize_options rw,no_root_squash,async,no_subtree_check
    """
    cleaned = _check_options("options", options, conflicts=False)
    return sorted(_option_tokens(cleaned))


# ---------------------------------------------------------------------------
# Validation of paths, clients and options, with errors naming the field
# ---------------------------------------------------------------------------

_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_WILDCARD = re.compile(r"[A-Za-z0-9_.*?\[\]!^-]+")
_NETGROUP = re.compile(r"@[A-Za-z0-9_.+-]+")
_GSS = re.compile(r"gss/[a-z0-9]+")


def _check_path(path, field="name"):
    if not isinstance(path, str):
        raise SaltInvocationError(
            f"{field}: expected an absolute path string, got {type(path).__name__} {path!r}"
        )
    if "\n" in path or "\0" in path or "\r" in path:
        raise SaltInvocationError(
            f"{field}: {path!r} contains a newline or NUL character, which exports(5) "
            "cannot hold"
        )
    if not path.startswith("/"):
        raise SaltInvocationError(f"{field}: {path!r} is not an absolute path")
    return path


def _network_problem(host):
    address, _, mask = host.partition("/")
    try:
        network = ipaddress.ip_address(address)
    except ValueError:
        return f"network address {address!r} is not an IPv4 or IPv6 address"
    if network.version == 6:
        if not mask.isdigit() or int(mask) > 128:
            return f"IPv6 prefix length {mask!r} must be a number from 0 to 128"
        return None
    if mask.isdigit():
        return None if int(mask) <= 32 else f"prefix length {mask!r} must be 0 to 32"
    try:
        ipaddress.IPv4Address(mask)
    except ValueError:
        return f"netmask {mask!r} is neither a prefix length nor a dotted netmask"
    return None


def _address_problem(host, kind, what):
    try:
        kind(host)
    except ValueError:
        return f"is not a valid {what} address"
    return None


def _wildcard_problem(host):
    if not _WILDCARD.fullmatch(host) or host.count("[") != host.count("]"):
        return "is not a valid wildcard host pattern (characters: letters, digits, . - * ? [ ])"
    return None


def _hostname_problem(host):
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_HOSTNAME_LABEL.fullmatch(label) for label in name.split(".")):
        return "is not a valid host name, address, network, wildcard or @netgroup"
    return None


# The kinds of client exportfs knows (exports(5) "Machine Name Formats"),
# tried in this order: (test, check).
_CLIENT_KINDS = (
    (lambda host: host.startswith("@"),
     lambda host: None if _NETGROUP.fullmatch(host) else "is not a valid @netgroup name"),
    (lambda host: host.startswith("gss/"),
     lambda host: None if _GSS.fullmatch(host) else "is not a valid gss/<flavour> client"),
    (lambda host: "/" in host, _network_problem),
    (lambda host: ":" in host,
     lambda host: _address_problem(host, ipaddress.IPv6Address, "IPv6")),
    (lambda host: any(char in host for char in "*?["), _wildcard_problem),
    (lambda host: re.fullmatch(r"[0-9.]+", host) is not None,
     lambda host: _address_problem(host, ipaddress.IPv4Address, "IPv4")),
    (lambda host: True, _hostname_problem),
)


def _host_problem(host):
    """Why exportfs would not understand one client name, or None."""
    if host == "*":
        return None
    if not host.isascii() or not host.isprintable():
        return "contains non-ASCII or control characters"
    for char in "\"#\\'":
        if char in host:
            return f"contains {char!r}"
    check = next(check for test, check in _CLIENT_KINDS if test(host))
    return check(host)


def _check_host_text(field, hosts):
    """A client string without options, parentheses or spaces in it."""
    if not isinstance(hosts, str):
        raise SaltInvocationError(
            f"{field}: expected a host string, got {type(hosts).__name__} {hosts!r}"
        )
    if hosts.strip() == "":
        raise SaltInvocationError(f"{field}: the host is empty (use '*' for every host)")
    if re.search(r"\s\(", hosts):
        raise SaltInvocationError(
            f"{field}: {hosts!r} has whitespace before '(': exportfs would give those "
            "options to the world and the default options to the host; give the host "
            "alone and its options in 'options'"
        )
    if "(" in hosts or ")" in hosts:
        raise SaltInvocationError(
            f"{field}: {hosts!r} contains '(' or ')': give the host alone and its options "
            "in 'options'"
        )
    if re.search(r"\s", hosts.strip()):
        raise SaltInvocationError(
            f"{field}: {hosts!r} contains whitespace: give one client per entry (a list)"
        )


def _split_hosts(field, hosts):
    """One client string (or list of strings) as a list of client names."""
    if isinstance(hosts, (list, tuple)):
        names = []
        for index, item in enumerate(hosts):
            names.extend(_split_hosts(f"{field}[{index}]", item))
        if not names:
            raise SaltInvocationError(f"{field}: the list of hosts is empty")
        return names
    _check_host_text(field, hosts)
    names = []
    # "a,b" (Salt 3007's documented form) means two clients with these options.
    for name in hosts.strip().split(","):
        problem = _host_problem(name) if name else "is empty"
        if problem:
            value = name if name == hosts.strip() else f"{name}' in '{hosts}"
            raise SaltInvocationError(f"{field}: '{value}' {problem}")
        names.append(name)
    return names


def _option_items(field, options):
    """(field, option text) of each option of a list or comma-separated string."""
    if isinstance(options, str):
        return [(field, piece) for piece in _split_options(options)]
    if not isinstance(options, (list, tuple)):
        raise SaltInvocationError(
            f"{field}: expected a list of options, got {type(options).__name__} {options!r}"
        )
    items = []
    for index, item in enumerate(options):
        if not isinstance(item, str):
            raise SaltInvocationError(
                f"{field}[{index}]: expected an option string, got "
                f"{type(item).__name__} {item!r}"
            )
        items.extend((f"{field}[{index}]", piece) for piece in _split_options(item))
    return items


def _check_option(item_field, piece, options):
    option = piece.strip()
    if not option:
        raise SaltInvocationError(f"{item_field}: empty option in {options!r}")
    if any(char in option for char in _SPACES + "()\"#"):
        raise SaltInvocationError(
            f"{item_field}: option {option!r} contains whitespace, a parenthesis, a quote "
            "or '#'"
        )
    problem = _option_problem(option)
    if problem:
        raise SaltInvocationError(f"{item_field}: {problem}")
    return option


def _check_options(field, options, conflicts=True):
    """Validated option list (strings) from a list or a comma-separated string.

    With conflicts, contradicting options in one sec= group (rw and ro...)
    are refused: exportfs would silently keep the last one.
    """
    if options is None:
        return []
    cleaned = []
    seen = {}  # setting -> option, within one sec= group
    for item_field, piece in _option_items(field, options):
        option = _check_option(item_field, piece, options)
        if option.startswith("sec="):
            seen = {}
        elif conflicts and option in _FLAG_OPTIONS:
            setting, value = _FLAG_OPTIONS[option]
            earlier = seen.get(setting)
            if earlier is not None and _FLAG_OPTIONS[earlier][1] != value:
                raise SaltInvocationError(
                    f"{item_field}: conflicting options '{earlier}' and '{option}'"
                )
            seen[setting] = option
        cleaned.append(option)
    return cleaned


def _is_open_to_everyone(host):
    if host in ("*", ""):
        return True
    if any(char in host for char in "*?["):
        return True
    if "/" in host:
        address, _, mask = host.partition("/")
        with contextlib.suppress(ValueError):
            return ipaddress.ip_network(f"{address}/{mask}", strict=False).prefixlen == 0
    return False


def _grants_root(options):
    settings, flavours, _ = _evaluate(options)
    return settings["root_squash"] == "no_root_squash" or any(
        flags["root_squash"] == "no_root_squash" for _, flags in flavours
    )


def validate(path, clients=None, hosts=None, options=None, allow_world_root=False):
    """
    Check an export and return its clients in canonical form.

    Nothing is written. Errors name the field and the value, e.g.
    ``clients[0].options: unknown export option 'rwx' (did you mean 'rw'?)``.

    path
        The exported directory: an absolute path without newline or NUL.

    clients
        A list of ``{"hosts": HOST, "options": [OPTION, ...]}`` mappings (Salt
        ``nfs_export`` form). HOST is a host name, IPv4/IPv6 address,
        network (``addr/len``, ``addr/dotted.mask``), wildcard (``* ? [..]``),
        ``@netgroup``, ``gss/krb5`` or ``*``; several comma-separated names
        (or a list) give several clients with the same options. A host with
        whitespace before ``(`` is refused: exportfs would export the options
        to the world.

    hosts, options
        Short form for one client, instead of ``clients``.

    allow_world_root
        Allow ``no_root_squash`` for ``*``, wildcard or ``/0`` clients
        (refused by default: every host would get root access).

    Returns a list of ``{"hosts": HOST, "options": [OPTION, ...]}``, one
    per client name, options as given (validated).

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.validate /xen hosts=192.0.2.10 options='[rw, no_root_squash, async]'
    """
    _check_path(path)
    entries = _client_entries(clients, hosts, options)
    wanted = []
    seen_hosts = {}
    for prefix, client in entries:
        names = _split_hosts(prefix + "hosts", client["hosts"])
        cleaned = _check_options(prefix + "options", client.get("options"))
        for name in names:
            if name in seen_hosts:
                raise SaltInvocationError(
                    f"{prefix}hosts: '{name}' is listed twice (also in {seen_hosts[name]})"
                )
            seen_hosts[name] = prefix + "hosts"
            if not allow_world_root and _is_open_to_everyone(name) and _grants_root(cleaned):
                raise SaltInvocationError(
                    f"{prefix}options: refusing to export {path} to '{name}' with "
                    f"no_root_squash: every host matching '{name}' would get root access "
                    "to the exported files; set allow_world_root=True if that is intended"
                )
            wanted.append({"hosts": name, "options": list(cleaned)})
    return wanted


def _client_entry(index, client):
    field = f"clients[{index}]"
    if not isinstance(client, dict):
        raise SaltInvocationError(
            f"{field}: expected a mapping with 'hosts' and 'options', got "
            f"{type(client).__name__} {client!r}"
        )
    extra = sorted(set(client) - {"hosts", "options"}, key=str)
    if extra:
        raise SaltInvocationError(
            f"{field}: unknown key {extra[0]!r} (expected 'hosts' and 'options')"
        )
    if "hosts" not in client:
        raise SaltInvocationError(f"{field}.hosts: missing")
    return field + ".", client


def _client_entries(clients, hosts, options):
    """[(field prefix, {hosts, options})] of validate's two argument forms."""
    if clients is not None and clients != [] and hosts is not None:
        raise SaltInvocationError("clients: give either 'clients' or 'hosts', not both")
    if clients is None or clients == []:
        if hosts is None or hosts == "":
            raise SaltInvocationError("Either 'clients' or 'hosts' must be defined")
        return [("", {"hosts": hosts, "options": options})]
    if not isinstance(clients, (list, tuple)):
        raise SaltInvocationError(
            "clients: expected a list of {hosts, options} mappings, got "
            f"{type(clients).__name__} {clients!r}"
        )
    if options is not None:
        raise SaltInvocationError(
            "options: give options inside each client of 'clients', not beside it"
        )
    return [_client_entry(index, client) for index, client in enumerate(clients)]


def check_exports_file(exports, field="exports"):
    """
    Check the exports file an export goes to: an absolute path; in
    ``/etc/exports.d`` a name exportfs reads (ending in ``.exports``, not
    starting with ``.``). Returns it normalised; None is ``/etc/exports``.

    CLI Example:

    .. code-block:: bash

        salt nfs1 exportfs.check_exports_file /etc/exports.d/xen-nfsroot.exports
    """
    return _check_exports_file(exports, field)


def _check_exports_file(exports, field="exports"):
    if exports is None:
        return DEFAULT_EXPORTS
    _check_path(exports, field)
    directory, name = os.path.split(os.path.normpath(exports))
    if os.path.normpath(directory) == EXPORTS_D and (
        not name.endswith(DROP_IN_SUFFIX) or name.startswith(".")
    ):
        raise SaltInvocationError(
            f"{field}: {exports!r} would be ignored by exportfs: files in {EXPORTS_D} must "
            f"end in '{DROP_IN_SUFFIX}' and not start with '.'"
        )
    return os.path.normpath(exports)


# ---------------------------------------------------------------------------
# The exports(5) model: tokenizer, parser, renderer (pure, no Salt needed)
# ---------------------------------------------------------------------------


class _Token:
    """A token of an exports file: its value and its span in the text."""

    __slots__ = ("start", "end", "value")

    def __init__(self, start, end, value):
        self.start = start
        self.end = end
        self.value = value


class _Scanner:
    """exports(5) tokenizer, faithful to nfs-utils' xio.c and exports.c."""

    def __init__(self, text):
        self.text = text
        self.open_end = False  # the text ends with a live line continuation
        self.open_quote = None  # offset of a '"' left open at the end

    def _continuation(self, pos):
        """Offset after a line continuation at pos, or None if there is none."""
        text = self.text
        if text.startswith("\\\n", pos):
            pos += 2
            while pos < len(text) and text[pos] in _BLANKS:
                pos += 1
            if pos >= len(text):
                self.open_end = True
            return pos
        return None

    def skip(self, pos, chars):
        """Skip chars, comments and continuations; return the next offset."""
        text = self.text
        while pos < len(text):
            after = self._continuation(pos)
            if after is not None:
                pos = after
                continue
            char = text[pos]
            if char == "#":
                newline = text.find("\n", pos)
                if newline < 0:
                    return len(text)
                pos, char = newline, "\n"
            if char not in chars:
                return pos
            pos += 1
        return pos

    def token(self, pos):
        """Read one token at pos: (token, next offset)."""
        text = self.text
        end = _PLAIN_TOKEN.match(text, pos).end()
        if end == len(text) or text[end] not in '"\\':
            after = end if end == len(text) or text[end] == "\n" else end + 1
            return _Token(pos, end, text[pos:end]), after
        return self.token_by_char(pos)

    def token_by_char(self, pos):
        """token() for any text: quotes, octal escapes, continuations."""
        text = self.text
        value = bytearray()
        quoted = None
        start = end = pos
        while pos < len(text):
            after = self._continuation(pos)
            if after is not None:
                char, pos = " ", after
            else:
                char = text[pos]
                pos += 1
            if char == '"':
                quoted = None if quoted is not None else pos - 1
                end = pos
                continue
            if quoted is None and char in _SPACES:
                if char == "\n":
                    pos -= 1  # the newline ends the entry: leave it
                break
            value += char.encode("utf-8", "surrogateescape")
            end = pos
            tail = value[-4:]
            if len(tail) == 4 and tail[0] == 0x5C and all(0x30 <= b <= 0x37 for b in tail[1:]):
                del value[-4:]
                value.append(int(tail[1:], 8))
        if quoted is not None:
            self.open_quote = quoted
        return _Token(start, end, value.decode("utf-8", "surrogateescape")), pos

    def entries(self):
        """Yield (path token, [client tokens], end offset) for each entry."""
        text = self.text
        pos = 0
        while True:
            pos = self.skip(pos, " \t\n")
            if pos >= len(text):
                return
            path, pos = self.token(pos)
            tokens = []
            while self.open_quote is None:
                pos = self.skip(pos, _BLANKS)
                if pos >= len(text) or text[pos] == "\n":
                    break
                token, pos = self.token(pos)
                if token.end > token.start:
                    tokens.append(token)
            if path.value:
                yield path, tokens, pos


def _path_key(path):
    """Paths naming the same directory compare equal (/srv/x/ == /srv/x)."""
    return os.path.normpath(path) if path.startswith("/") else path


def _parse_client(value):
    """A client token: (hosts, options or None, problem or None)."""
    host, paren, rest = value.partition("(")
    if not paren:
        return host, None, None
    if not rest.endswith(")") or ")" in rest[:-1]:
        return host or "*", [], f"bad option list in '{value}': exportfs rejects this line"
    problem = None
    if not host:
        host = "*"
        problem = (
            f"'{value}' has no client name: exportfs applies these options to the world "
            "(whitespace before '('?)"
        )
    return host, _split_options(rest[:-1]), problem


class _Entry:
    """One export line (path, optional -defaults, clients) and its text."""

    def __init__(self, text, path, tokens, offset):
        # offset: of the entry's first line in the parsed text
        self.text = text  # the entry's whole lines, newline included
        self.path = path.value
        self.key = _path_key(path.value)
        self.path_end = path.end - offset
        # where the first token after the path starts, and where the last ends
        self.after_path = tokens[0].start - offset if tokens else None
        self.tail = (tokens[-1].end if tokens else path.end) - offset
        self.defaults = []
        self.clients = []  # [(hosts, options list or None, problem, offset)]
        if tokens and tokens[0].value.startswith("-"):
            self.defaults = _split_options(tokens[0].value[1:])
            tokens = tokens[1:]
        for token in tokens:
            hosts, options, problem = _parse_client(token.value)
            self.clients.append((hosts, options, problem, token.start - offset))
        if not tokens:
            problem = "no client given: exportfs exports this path to the world"
            self.clients.append(("*", None, problem, path.start - offset))

    def effective(self):
        """[(hosts, options as exportfs applies them, problem, offset)]."""
        return [
            (hosts, self.defaults + (options or []), problem, where)
            for hosts, options, problem, where in self.clients
        ]

    def signature(self):
        return sorted(
            (hosts, _option_tokens(options)) for hosts, options, _, _ in self.effective()
        )


def _render_path(path):
    """A path as exports(5) text: octal escapes like exportfs writes them."""
    out = []
    for byte in path.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if byte < 0x21 or byte == 0x7F or char in '"\\#':
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return "".join(out).encode("latin-1").decode("utf-8", "surrogateescape")


def _render_clients(clients):
    """Clients ({hosts, options}) as exports(5) text: ``host(opt,opt) ...``."""
    return " ".join(
        f"{client['hosts']}({','.join(client.get('options') or [])})" for client in clients
    )


class ExportsFile:
    """A lossless exports(5) file: parse, edit one export, render.

    ``ExportsFile.parse(text).render() == text`` for every text. The file is
    a list of chunks in order: entries (an export's complete lines) and the
    text between them (comments, blank lines), kept verbatim.
    """

    def __init__(self, chunks, open_quote=None):
        self.chunks = chunks  # _Entry or str
        self.open_quote = open_quote
        # Derived from chunks, kept up to date by the edits below so that a
        # run editing one file N times costs O(N), not O(N^2): the entries
        # by path key, and the rendered text (None: render again).
        self._index = None
        self._rendered = None

    @classmethod
    def parse(cls, text):
        """Parse exports(5) text into a model that renders it back unchanged."""
        scanner = _Scanner(text)
        line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        chunks = []
        done = 0
        for path, tokens, end in scanner.entries():
            first = line_starts[bisect.bisect_right(line_starts, path.start) - 1]
            last = text.find("\n", end)
            last = len(text) if last < 0 else last + 1
            if first > done:
                chunks.append(text[done:first])
            chunks.append(_Entry(text[first:last], path, tokens, first))
            done = last
        if done < len(text):
            chunks.append(text[done:])
        return cls(chunks, scanner.open_quote)

    def render(self):
        """The file's text."""
        if self._rendered is None:
            self._rendered = "".join(
                [chunk if isinstance(chunk, str) else chunk.text for chunk in self.chunks]
            )
        return self._rendered

    def _entries(self, key):
        if self._index is None:
            self._index = {}
            for chunk in self.chunks:
                if isinstance(chunk, _Entry):
                    self._index.setdefault(chunk.key, []).append(chunk)
        return self._index.get(key, [])

    def exports(self):
        """Yield (path, hosts, options, problem, line) for each client, in file order."""
        line = 1
        for chunk in self.chunks:
            if isinstance(chunk, _Entry):
                for hosts, options, problem, where in chunk.effective():
                    here = line + chunk.text.count("\n", 0, where)
                    yield chunk.path, hosts, options, problem, here
                line += chunk.text.count("\n")
            else:
                line += chunk.count("\n")

    def clients(self, path):
        """The clients of path ({hosts, options}), or None when not exported."""
        entries = self._entries(_path_key(path))
        if not entries:
            return None
        return [
            {"hosts": hosts, "options": options}
            for entry in entries
            for hosts, options, _, _ in entry.effective()
        ]

    def differs(self, path, clients):
        """True when path is not exported to exactly clients (options normalised)."""
        entries = self._entries(_path_key(path))
        wanted = sorted((c["hosts"], _option_tokens(c.get("options") or [])) for c in clients)
        return not entries or sorted(sum((e.signature() for e in entries), [])) != wanted

    def set_export(self, path, clients):
        """Make path exported to exactly clients; return True if the text changed.

        The first line of path is rewritten in place (its path spelling,
        indentation and trailing comment kept, a ``-defaults`` token
        dropped); other lines of path in this file are deleted; a new path is
        appended on a line of its own.
        """
        if not self.differs(path, clients):
            return False
        entries = self._entries(_path_key(path))
        rendered = _render_clients(clients)
        if not entries:
            self._append(f"{_render_path(path)} {rendered}\n")
            return True
        first = entries[0]
        text = first.text
        if first.after_path is not None and "\n" not in text[: first.after_path]:
            prefix = text[: first.after_path]
        else:
            prefix = text[: first.path_end] + " "
        new_text = prefix + rendered + text[first.tail :]
        replacement = self._replace(first, new_text)
        for entry in entries[1:]:
            self.chunks.remove(entry)
        self._index[first.key] = [replacement]
        self._rendered = None
        return True

    def remove_export(self, path):
        """Delete every line exporting path; return True if the text changed."""
        entries = self._entries(_path_key(path))
        for entry in entries:
            self.chunks.remove(entry)
        if entries:
            del self._index[entries[0].key]
            self._rendered = None
        return bool(entries)

    def _replace(self, entry, new_text):
        parsed = ExportsFile.parse(new_text).chunks
        replacement = [chunk for chunk in parsed if isinstance(chunk, _Entry)]
        if len(replacement) != 1 or replacement[0].key != entry.key:
            raise CommandExecutionError(f"internal error: cannot rewrite {entry.text!r}")
        self.chunks[self.chunks.index(entry)] = replacement[0]
        self._rendered = None
        return replacement[0]

    def _append(self, line):
        if self.open_quote is not None:
            raise CommandExecutionError(
                "the file ends inside a '\"' quote opened at offset "
                f"{self.open_quote}: a line added at its end would be swallowed; fix the "
                "quoting first"
            )
        start = len(self.chunks)
        last = next((chunk for chunk in reversed(self.chunks) if self._text(chunk)), None)
        if last is not None:
            # Chunks start at line boundaries between entries: the last one
            # alone tells whether the file ends in a live continuation.
            text = self._text(last)
            if not text.endswith("\n"):
                self.chunks.append("\n")
                text += "\n"
            scanner = _Scanner(text)
            for _ in scanner.entries():
                pass
            if scanner.open_end:  # a trailing '\' would join the new line to the last one
                self.chunks.append("\n")
        self.chunks.extend(ExportsFile.parse(line).chunks)
        added = self.chunks[start:]
        if self._index is not None:
            for chunk in added:
                if isinstance(chunk, _Entry):
                    self._index.setdefault(chunk.key, []).append(chunk)
        if self._rendered is not None:
            self._rendered += "".join(self._text(chunk) for chunk in added)

    @staticmethod
    def _text(chunk):
        return chunk if isinstance(chunk, str) else chunk.text


# ---------------------------------------------------------------------------
# ``exportfs -v`` listing (pure)
# ---------------------------------------------------------------------------


def _parse_listing(text):
    """Parse ``exportfs -v`` output: {path: [{hosts, options}]} in output order.

    Two layouts: ``PATH<pad to 14>\\tCLIENT(opts)`` and, for paths longer
    than 14 characters, ``PATH\\n\\t\\tCLIENT(opts)``; ``<world>`` is ``*``.
    """
    listing = {}
    path = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("\t"):
            client = line.lstrip("\t")
        elif "\t" in line:
            path, _, client = line.rpartition("\t")
            if len(path) == 14:
                path = path.rstrip(" ")
        else:
            path, client = line, None
        if client is None:
            continue
        if path is None:
            raise CommandExecutionError(f"cannot parse exportfs -v output line {line!r}")
        host, _, rest = client.rstrip().partition("(")
        options = rest[:-1].split(",") if rest.endswith(")") else []
        host = "*" if host in ("<world>", "") else host
        listing.setdefault(path, []).append(
            {"hosts": host, "options": [option for option in options if option]}
        )
    return listing


# ---------------------------------------------------------------------------
# Files on disk: cache, lock, atomic write
# ---------------------------------------------------------------------------


def _version_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _default_files():
    files = [DEFAULT_EXPORTS]
    with contextlib.suppress(OSError):
        names = [
            name
            for name in os.listdir(EXPORTS_D)
            if name.endswith(DROP_IN_SUFFIX)
            and not name.startswith(".")
            and os.path.isfile(os.path.join(EXPORTS_D, name))
        ]
        files += [os.path.join(EXPORTS_D, name) for name in sorted(names, key=_version_key)]
    return files


def _read(filename):
    """(model, signature) of a file read now; a missing file is empty."""
    try:
        with open(filename, "rb") as handle:
            info = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return ExportsFile.parse(""), None
    except OSError as err:
        raise CommandExecutionError(f"cannot read {filename}: {err}") from err
    signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return ExportsFile.parse(data.decode("utf-8", "surrogateescape")), signature


def _signature(filename):
    try:
        info = os.stat(filename)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _load(filename):
    """The parsed file, from __context__ when the file has not changed."""
    cache = __context__.setdefault(_CTX_FILES, {})
    cached = cache.get(filename)
    if cached is not None and cached[1] == _signature(filename):
        return cached[0]
    model, signature = _read(filename)
    cache[filename] = (model, signature)
    return model


def _write(filename, data, previous=None):
    """Replace an exports file through nfsroot_files (the formula's one write
    routine): atomic, mode and owner kept, a new file 0644. The directory's
    fsync is left to reload(), once per run (a run may rewrite one file
    once per state). previous: the bytes it must still hold."""
    __salt__["nfsroot_files.write"](
        filename, data, previous=previous, sync_directory=False, makedirs=True
    )


def _edit(filename, path, change):
    """Apply change(model) -> bool to filename; write it back if changed.

    The write is a compare and swap against the bytes the model was parsed
    from: if another writer changed the file meanwhile, it is read again and
    the change applied again. Returns (changed, clients of path before,
    created). The file's bytes before its first change in this run are
    recorded, so that reload() can restore them if exportfs rejects the
    change.
    """
    cache = __context__.setdefault(_CTX_FILES, {})
    changed = __context__.setdefault(_CTX_CHANGED, {"files": {}})
    for attempt in range(_EDIT_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.002 * attempt))
        # Taken out of the cache while it is edited: a concurrent edit in
        # this run (a thread) parses its own copy.
        cached = cache.pop(filename, None)
        signature = _signature(filename)
        if cached is not None and cached[1] == signature:
            model = cached[0]
        else:
            model, signature = _read(filename)
        old = model.clients(path)
        before = model.render()
        if not change(model):
            cache[filename] = (model, signature)
            return False, old, False
        before = before.encode("utf-8", "surrogateescape")
        data = model.render().encode("utf-8", "surrogateescape")
        try:
            _write(filename, data, previous=before)
        except CommandExecutionError as err:
            if getattr(err, "conflict", False):
                continue
            raise
        record = changed["files"].setdefault(
            filename, {"before": before if signature is not None else None}
        )
        record["after"] = data
        cache[filename] = (model, _signature(filename))
        return True, old, signature is None
    raise CommandExecutionError(
        f"{filename} kept changing while it was edited ({_EDIT_ATTEMPTS} attempts)"
    )


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def list_configured(exports=None):
    """
    List the exports configured in exports(5) files.

    exports
        A file or a list of files. Default: ``/etc/exports`` and then
        ``/etc/exports.d/*.exports`` (dot-files skipped, version order), the
        files ``exportfs -a`` reads. Missing files have no exports.

    Returns ``{path: [{"hosts": HOST, "options": [...], "file": FILE,
    "line": N}, ...]}``: one item per client, in file order, options as
    exportfs applies them (``-defaults`` of the line first). A client
    without a name (``(rw)``, e.g. after a stray space) or a path without
    clients is reported with hosts ``*`` and a ``"warning"`` key saying so.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.list_configured
        salt '*' exportfs.list_configured /etc/exports.d/xen-nfsroot.exports
    """
    if exports is None:
        files = _default_files()
    elif isinstance(exports, str):
        files = [_check_exports_file(exports)]
    else:
        files = [_check_exports_file(name) for name in exports]
    listing = {}
    for filename in files:
        for path, hosts, options, problem, line in _load(filename).exports():
            client = {"hosts": hosts, "options": options, "file": filename, "line": line}
            if problem:
                client["warning"] = problem
            listing.setdefault(path, []).append(client)
    return listing


def _exportfs(*args):
    """Run exportfs with args (no shell): the cmd.run_all result."""
    binary = salt.utils.path.which("exportfs") or "exportfs"
    return __salt__["cmd.run_all"](
        [binary, *args], python_shell=False, ignore_retcode=True, output_loglevel="debug"
    )


def _error(text, result, restored=(), skipped=()):
    """CommandExecutionError whose message is text alone.

    The command result and the files restored (or not) by a rollback ride
    along as attributes: ``info`` would append them to the message.
    """
    err = CommandExecutionError(text)
    err.result = result
    err.restored = list(restored)
    err.skipped = list(skipped)
    return err


def _failed(command, result):
    message = (result.get("stderr") or result.get("stdout") or "").strip()
    return _error(f"{command} failed with exit code {result.get('retcode')}: {message}", result)


def list_active():
    """
    List the exports the NFS server currently has, from ``exportfs -v``.

    ``exportfs -v`` runs once per Salt run (cached in ``__context__``; a
    reload through this module clears the cache).

    Returns ``{path: [{"hosts": HOST, "options": [...]}, ...]}``, options
    as exportfs prints them (``<world>`` is reported as ``*``).

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.list_active
    """
    if _CTX_ACTIVE not in __context__:
        result = _exportfs("-v")
        if result["retcode"] != 0:
            raise _failed("exportfs -v", result)
        __context__[_CTX_ACTIVE] = _parse_listing(result["stdout"])
    return __context__[_CTX_ACTIVE]


def _describe(clients):
    return _render_clients(clients) if clients else None


def add(  # noqa: PLR0913,PLR0917 (Salt calls it with keyword arguments)
    path,
    clients=None,
    exports=DEFAULT_EXPORTS,
    hosts=None,
    options=None,
    allow_world_root=False,
    test=False,
):
    """
    Make ``path`` exported to exactly ``clients`` in one exports file.

    Every client and option is validated (see :func:`validate`) before the
    file is touched. When the file already exports ``path`` to these clients
    (options compared as normalised sets) nothing is written. Otherwise the
    first line of ``path`` is rewritten (other lines of ``path`` in that
    file are removed) or a new line is appended; all other bytes stay as
    they were. A missing file (or ``/etc/exports.d``) is created (0644).
    The change is not applied: call :func:`reload`.

    path
        The exported directory.

    clients
        ``[{"hosts": HOST, "options": [OPTION, ...]}, ...]``; or use
        ``hosts`` and ``options`` for one client.

    exports
        The file to edit (default ``/etc/exports``; a drop-in such as
        ``/etc/exports.d/xen-nfsroot.exports`` works too).

    allow_world_root
        Allow ``no_root_squash`` for world or wildcard clients.

    test
        Only say what would change.

    Returns ``{"path", "file", "changed": bool, "created": bool,
    "old": [clients] or None, "new": [clients], "old_text": str or None,
    "new_text": str}`` (``*_text``: the clients in exports(5) form).

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.add /xen hosts=192.0.2.10 \\
            options='[rw, no_root_squash, async, no_subtree_check]'
    """
    wanted = validate(
        path, clients=clients, hosts=hosts, options=options, allow_world_root=allow_world_root
    )
    filename = _check_exports_file(exports)

    if test:
        model = _load(filename)
        old = model.clients(path)
        changed = model.differs(path, wanted)
        created = _signature(filename) is None
    else:
        changed, old, created = _edit(filename, path, lambda model: model.set_export(path, wanted))
    return {
        "path": path,
        "file": filename,
        "changed": changed,
        "created": bool(changed and created),
        "old": old,
        "new": wanted,
        "old_text": _describe(old),
        "new_text": _describe(wanted),
    }


def remove(path, exports=DEFAULT_EXPORTS, test=False):
    """
    Delete every line exporting ``path`` from one exports file.

    Only those lines change; comments and other exports stay byte for
    byte. The change is not applied: call :func:`reload`.

    Returns ``{"path", "file", "changed": bool, "old": [clients] or None,
    "old_text": str or None}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.remove /xen
    """
    _check_path(path)
    filename = _check_exports_file(exports)
    if test or _signature(filename) is None:
        old = _load(filename).clients(path)
        changed = old is not None
    else:
        changed, old, _ = _edit(filename, path, lambda model: model.remove_export(path))
    return {
        "path": path,
        "file": filename,
        "changed": changed,
        "old": old,
        "old_text": _describe(old),
    }


# exportfs messages that are warnings (exit status 0); anything else is an error.
_WARNINGS = re.compile(
    r"Neither 'subtree_check' or 'no_subtree_check' specified|^\s+(Assuming default|NOTE:)"
    r"|No options for |No host name given with |Failed to resolve "
)
_LOCATION = re.compile(r"(/\S+?)(:\s?\d+:| \[\d+\]:)")


def _errors(stderr):
    """exportfs error lines, without line numbers (which edits shift)."""
    errors = []
    for line in (stderr or "").splitlines():
        if line.strip() and not _WARNINGS.search(line):
            errors.append(_LOCATION.sub(r"\1:", line.strip()))
    return errors


def _restore(files):
    """Put files changed in this run back as they were before it.

    A file somebody else changed since is left alone. Returns (restored,
    skipped) file lists.
    """
    restored, skipped = [], []
    for filename, record in files.items():
        real = os.path.realpath(filename)
        try:
            if record["before"] is not None:
                _write(filename, record["before"], previous=record["after"])
            elif __salt__["nfsroot_files.read"](real) == record["after"]:
                __salt__["nfsroot_files.remove"](real)
            else:
                skipped.append(filename)
                continue
        except CommandExecutionError:
            skipped.append(filename)
            continue
        __context__.get(_CTX_FILES, {}).pop(filename, None)
        restored.append(filename)
    return restored, skipped


def _put_back(files):
    """Write the changed files again after a rollback."""
    for filename, record in files.items():
        _write(filename, record["after"])
        __context__.get(_CTX_FILES, {}).pop(filename, None)


def _rejected(result, files):
    """exportfs -ra failed after this run changed files: restore them and
    judge whether the errors predate the run. Returns the result of a final,
    successful exportfs -ra and the errors that predate the run, or raises."""
    new_errors = _errors(result["stderr"])
    restored, skipped = _restore(files)
    previous = _exportfs("-ra")
    old_errors = _errors(previous["stderr"]) if previous["retcode"] != 0 else None
    introduced = [line for line in new_errors if old_errors is None or line not in old_errors]
    if old_errors is None or introduced or skipped:
        message = "\n".join(introduced or new_errors) or result["stderr"].strip()
        text = f"exportfs -ra failed with exit code {result['retcode']}: {message}"
        if restored:
            text += f"; restored {', '.join(restored)} to the contents before this run"
        if skipped:
            text += f"; not restored (changed by someone else since): {', '.join(skipped)}"
        log.warning("%s", text)
        raise _error(text, result, restored, skipped)
    # The old files fail the same way: the errors predate this run.
    log.info("exportfs -ra errors that predate this run: %s", old_errors)
    _put_back(files)
    return _exportfs("-ra"), old_errors


def reload():
    """
    Apply the exports files with ``exportfs -ra``.

    The exit status decides: non-zero raises an error carrying exportfs's
    messages (warnings on stderr with exit status 0 are a success). When
    the same Salt run changed exports files through :func:`add` or
    :func:`remove` and exportfs rejects them, those files are restored to
    their bytes before the run and ``exportfs -ra`` runs again: if the old
    files fail with the same errors (errors that predate the run, e.g. an
    unrelated line naming a missing directory), the changes are written back
    and applied; otherwise the files stay restored and the error quotes
    exportfs's new messages.

    Returns ``{"retcode": 0, "stdout": str, "stderr": str, "files": [files
    this run changed], "preexisting_errors": [str]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.reload
    """
    files = __context__.get(_CTX_CHANGED, {}).get("files", {})
    for directory in sorted({os.path.dirname(os.path.realpath(name)) for name in files}):
        __salt__["nfsroot_files.sync"](directory)
    result = _exportfs("-ra")
    __context__.pop(_CTX_ACTIVE, None)
    preexisting = []
    if result["retcode"] != 0:
        if not files:
            raise _failed("exportfs -ra", result)
        result, preexisting = _rejected(result, files)
        __context__.pop(_CTX_ACTIVE, None)
    __context__.pop(_CTX_CHANGED, None)
    return {
        "retcode": 0,
        "stdout": result["stdout"],
        "stderr": result["stderr"],
        "files": sorted(files),
        "preexisting_errors": preexisting,
    }


def _listed(path):
    active = {_path_key(listed): clients for listed, clients in list_active().items()}
    key = _path_key(path)
    return active.get(key) or active.get(os.path.realpath(key)) or []


def check_active(path, clients=None, exports=None):
    """
    Compare one export with what the NFS server exports now (``exportfs -v``,
    once per run).

    path
        The exported directory.
    clients
        The clients it should be exported to (``[{"hosts", "options"}]``,
        options compared as normalised sets); ``None``: it should not be
        exported, unless an exports file other than ``exports`` exports it.
    exports
        The exports file this export lives in; a file ``exportfs -a`` does
        not read is reported, since no reload can make its exports active.

    Returns ``{"active": bool, "confirmed": [str], "problems": [str]}``:
    ``active`` is True when the server exports exactly what was asked.

    CLI Example:

    .. code-block:: bash

        salt nfs1 exportfs.check_active /xen '[{hosts: 192.0.2.10, options: [rw]}]'
    """
    _check_path(path, "path")
    key = _path_key(path)
    if exports is not None and _check_exports_file(exports) not in _default_files():
        problem = f"{key} not checked: exportfs does not read {exports}"
        return {"active": False, "confirmed": [], "problems": [problem]}
    listed = _listed(path)
    if clients is None:
        if not listed:
            return {"active": True, "confirmed": [f"{key} not exported"], "problems": []}
        others = [name for name in _default_files() if name != exports]
        if key in {_path_key(p) for p in list_configured(others)}:
            return {"active": True, "confirmed": [f"{key} exported by another exports file"],
                    "problems": []}
        problem = f"exportfs -v still lists {key} for {_describe(listed)}"
        return {"active": False, "confirmed": [], "problems": [problem]}
    confirmed, problems = [], []
    for client in validate(path, clients=clients, allow_world_root=True):
        match = [item for item in listed if item["hosts"] == client["hosts"]]
        want = _option_tokens(client["options"], ignore=("secure",))
        if not match:
            problems.append(f"exportfs -v does not list {key} for {client['hosts']}")
        elif _option_tokens(match[0]["options"], _LISTING_DEFAULTS, ("secure",)) != want:
            problems.append(
                f"exportfs -v lists {key} for {_describe(match[:1])}, not {_describe([client])}"
            )
        else:
            confirmed.append(f"{key} for {client['hosts']}")
    return {"active": not problems, "confirmed": confirmed, "problems": problems}


def unexport(path, host):
    """
    Withdraw one export from the NFS server now: ``exportfs -u host:path``.

    The exports files are not changed (the next ``exportfs -ra`` exports it
    again if they still hold it).

    Returns ``{"retcode": 0, "stdout": str, "stderr": str}``; raises when
    exportfs fails (e.g. ``Could not find 'host:/path' to unexport.``).

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.unexport /xen 192.0.2.10
    """
    _check_path(path, "path")
    names = _split_hosts("host", host)
    if len(names) != 1:
        raise SaltInvocationError(f"host: give one client, not {host!r}")
    result = _exportfs("-u", f"{names[0]}:{path}")
    __context__.pop(_CTX_ACTIVE, None)
    if result["retcode"] != 0:
        raise _failed(f"exportfs -u {names[0]}:{path}", result)
    return {"retcode": 0, "stdout": result["stdout"], "stderr": result["stderr"]}


# ---------------------------------------------------------------------------
# Who has an export mounted
# ---------------------------------------------------------------------------

RMTAB = "/var/lib/nfs/rmtab"
NFSD_CLIENTS = "/proc/fs/nfsd/clients"
_V4_ADDRESS = re.compile(r'^address:\s*"?\[?([0-9A-Fa-f.:]+?)\]?:\d+"?\s*$', re.M)


def _rmtab(path):
    """(client, exported path) of each NFSv3 mount rpc.mountd recorded."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    entries = []
    for line in text.splitlines():
        record, _, _count = line.rpartition(":")
        client, separator, exported = record.partition(":/")
        if separator:
            entries.append({"client": client, "path": "/" + exported})
    return entries


def _nfsv4_clients(directory):
    """The addresses of the NFSv4 clients nfsd knows (kernels >= 5.3)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    addresses = []
    for name in names:
        with contextlib.suppress(OSError):
            with open(os.path.join(directory, name, "info"), encoding="utf-8",
                      errors="replace") as handle:
                match = _V4_ADDRESS.search(handle.read())
            if match:
                addresses.append(match.group(1))
    return addresses


def mounts():
    """
    Who has what mounted from this NFS server: NFSv3 mounts as ``rpc.mountd``
    records them (``/var/lib/nfs/rmtab``: ``client:path:count``) and the
    NFSv4 clients nfsd knows (``/proc/fs/nfsd/clients/*/info``, kernels 5.3
    and later; NFSv4 has no mount protocol, so which export each one uses is
    not known).

    Returns ``{"v3": [{"client", "path"}], "v4": [address], "sources":
    [what could be read]}``.

    CLI Example:

    .. code-block:: bash

        salt nfs1 exportfs.mounts
    """
    v3 = _rmtab(RMTAB)
    v4 = _nfsv4_clients(NFSD_CLIENTS)
    sources = [name for name, found in ((RMTAB, v3), (NFSD_CLIENTS, v4)) if found is not None]
    return {"v3": v3 or [], "v4": v4 or [], "sources": sources}


def _client_matches(address, client):
    """Whether a mounting host (as recorded) is one of an export's clients."""
    if client in ("*", address):
        return True
    with contextlib.suppress(ValueError):
        if "/" in client:
            return ipaddress.ip_address(address) in ipaddress.ip_network(client, strict=False)
    return any(char in client for char in "*?[") and fnmatch.fnmatch(address, client)


def mounted_by(path, clients):
    """
    Whether one of ``clients`` (an export's hosts: addresses, networks,
    wildcards) has ``path`` mounted now: ``{"mounted": True | False | None,
    "by": [what says so], "sources": [...]}``; None when the server cannot
    tell (neither rmtab nor nfsd's client list is there).

    CLI Example:

    .. code-block:: bash

        salt nfs1 exportfs.mounted_by /xen '[192.0.2.10]'
    """
    _check_path(path, "path")
    if isinstance(clients, str):
        clients = [clients]
    found = mounts()
    key = _path_key(path)
    by = [f"{entry['client']} (NFSv3, {RMTAB})" for entry in found["v3"]
          if _path_key(entry["path"]) == key
          and any(_client_matches(entry["client"], client) for client in clients)]
    by += [f"{address} (an NFSv4 client of this server; NFSv4 does not say which export)"
           for address in found["v4"]
           if any(_client_matches(address, client) for client in clients)]
    mounted = bool(by) if found["sources"] else None
    return {"mounted": mounted, "by": by, "sources": found["sources"]}


# ---------------------------------------------------------------------------
# Salt nfs3 compatible names
# ---------------------------------------------------------------------------


def list_exports(exports=DEFAULT_EXPORTS):
    """
    List the exports of one file, like Salt's ``nfs3.list_exports``.

    Returns ``{path: [{"hosts": HOST, "options": [...]}, ...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.list_exports
    """
    return {
        path: [{"hosts": client["hosts"], "options": client["options"]} for client in clients]
        for path, clients in list_configured(exports).items()
    }


def add_export(exports=DEFAULT_EXPORTS, path=None, hosts=None, options=None,
               allow_world_root=False):
    """
    Add one client to an export, like Salt's ``nfs3.add_export``.

    The client is added to the clients ``path`` already has in ``exports``
    (replacing the options of the same host); other lines stay unchanged.
    As in :func:`add`, a world or wildcard client with ``no_root_squash``
    (new or already there) is refused unless ``allow_world_root``.

    Returns the added client: ``{"hosts": HOST, "options": [...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.add_export path=/srv/test hosts=127.0.0.1 options='[rw]'
    """
    _check_path(path, "path")
    new = validate(path, hosts=hosts, options=options, allow_world_root=allow_world_root)
    filename = _check_exports_file(exports)
    current = _load(filename).clients(path) or []
    names = {client["hosts"] for client in new}
    kept = [
        {"hosts": client["hosts"], "options": client["options"]}
        for client in current
        if client["hosts"] not in names
    ]
    add(path, kept + new, exports=filename, allow_world_root=allow_world_root)
    return new[0] if len(new) == 1 else new


def del_export(exports=DEFAULT_EXPORTS, path=None):
    """
    Remove an export, like Salt's ``nfs3.del_export``.

    Returns the remaining exports of the file, as :func:`list_exports`.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.del_export path=/media/storage
    """
    remove(path, exports=exports)
    return list_exports(exports)


def reload_exports():
    """
    Apply the exports files, like Salt's ``nfs3.reload_exports``.

    Unlike ``nfs3``, success is judged by exportfs's exit status.

    Returns ``{"result": bool, "stdout": str, "stderr": str}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.reload_exports
    """
    try:
        result = reload()
    except CommandExecutionError as err:
        stdout = getattr(err, "result", {}).get("stdout", "")
        return {"result": False, "stdout": stdout, "stderr": str(err)}
    return {"result": True, "stdout": result["stdout"], "stderr": result["stderr"]}
