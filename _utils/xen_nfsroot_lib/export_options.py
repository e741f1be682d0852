"""
exports(5) options and clients: what each option means to exportfs, the
normalised form options are compared in, and the validation of an export
(its path, clients and options) before anything is written.

The option keywords and their defaults are nfs-utils 2.6's (``parseopts``
in ``support/nfs/exports.c``); the client kinds are exports(5)'s "Machine
Name Formats". Errors name the field and the value (``FIELD: VALUE
PROBLEM``, :func:`xen_nfsroot_lib.values.invalid`'s format), e.g.
``clients[0].options: unknown export option 'rwx' (did you mean 'rw'?)``.
"""

import contextlib
import difflib
import ipaddress
import re

from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import values

#: Blanks between the tokens of an exports(5) line.
BLANKS = " \t"
#: Every character that ends an unquoted exports(5) token.
SPACES = " \t\n\r\v\f"


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
LISTING_DEFAULTS = dict(_DEFAULTS, subtree_check="subtree_check")
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


def split_options(text):
    """Split an exports(5) option list the way nfs-utils' parseopts does."""
    pieces = text.split(",")
    if pieces and pieces[-1].strip(BLANKS) == "":
        pieces.pop()
    options = []
    for piece in pieces:
        option = piece.lstrip(BLANKS)
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


def option_tokens(options, start=None, ignore=()):
    """The normalised set of an option list (see :func:`normalize_options`).

    start: the settings before the first option (exportfs's defaults, or
    LISTING_DEFAULTS for ``exportfs -v`` output); ignore: settings left out.
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
    """
    cleaned = check_options("options", options, conflicts=False)
    return sorted(option_tokens(cleaned))


# ---------------------------------------------------------------------------
# Validation of paths, clients and options, with errors naming the field
# ---------------------------------------------------------------------------

_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_WILDCARD = re.compile(r"[A-Za-z0-9_.*?\[\]!^-]+")
_NETGROUP = re.compile(r"@[A-Za-z0-9_.+-]+")
_GSS = re.compile(r"gss/[a-z0-9]+")
# What nfs-utils' xgettok decodes wherever it stands in a token, even after
# a ``\134`` it has just decoded: exportfs writes a backslash to etab as
# ``\134`` and reads ``\134040`` back as a space.
_OCTAL_ESCAPE = re.compile(r"\\[0-7]{3}")


def check_path(path, field="name"):
    """An exported directory as exports(5) can hold it: an absolute path
    without newline or NUL, and without a backslash followed by three octal
    digits (``\\040`` as four characters), which nfs-utils cannot write to
    its etab so that it reads the same path back. Spaces, tabs, ``#``,
    quotes and other backslashes are escaped when it is written. Returns it."""
    if not isinstance(path, str):
        raise SaltInvocationError(
            f"{field}: expected an absolute path string, got {type(path).__name__} {path!r}"
        )
    if "\n" in path or "\0" in path or "\r" in path:
        raise values.invalid(
            field, path, "contains a newline or NUL character, which exports(5) cannot hold"
        )
    if not path.startswith("/"):
        raise values.invalid(field, path, "is not an absolute path")
    if _OCTAL_ESCAPE.search(path):
        raise values.invalid(
            field, path,
            "holds a backslash followed by three octal digits, which nfs-utils reads back "
            "from its export table (etab) as an escaped character: exportfs would export "
            "another directory",
        )
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
        raise values.invalid(
            field, hosts,
            "has whitespace before '(': exportfs would give those options to the world and "
            "the default options to the host; give the host alone and its options in 'options'"
        )
    if "(" in hosts or ")" in hosts:
        raise values.invalid(
            field, hosts, "contains '(' or ')': give the host alone and its options in 'options'"
        )
    if re.search(r"\s", hosts.strip()):
        raise values.invalid(
            field, hosts, "contains whitespace: give one client per entry (a list)"
        )


def split_hosts(field, hosts):
    """One client string (or list of strings) as a list of client names, each
    checked: ``"a,b"`` (Salt 3007's form) is two clients."""
    if isinstance(hosts, (list, tuple)):
        names = []
        for index, item in enumerate(hosts):
            names.extend(split_hosts(f"{field}[{index}]", item))
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
        return [(field, piece) for piece in split_options(options)]
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
        items.extend((f"{field}[{index}]", piece) for piece in split_options(item))
    return items


def _check_option(item_field, piece, options):
    option = piece.strip()
    if not option:
        raise SaltInvocationError(f"{item_field}: empty option in {options!r}")
    if any(char in option for char in SPACES + "()\"#"):
        raise SaltInvocationError(
            f"{item_field}: option {option!r} contains whitespace, a parenthesis, a quote "
            "or '#'"
        )
    problem = _option_problem(option)
    if problem:
        raise SaltInvocationError(f"{item_field}: {problem}")
    return option


def check_options(field, options, conflicts=True):
    """The validated option list (strings) of a list or a comma-separated string.

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
    """
    check_path(path)
    entries = _client_entries(clients, hosts, options)
    wanted = []
    seen_hosts = {}
    for prefix, client in entries:
        names = split_hosts(prefix + "hosts", client["hosts"])
        cleaned = check_options(prefix + "options", client.get("options"))
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
