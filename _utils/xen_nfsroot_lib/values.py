"""
One validator per kind of value that more than one concept shares, and the
one error format: ``FIELD: VALUE PROBLEM`` (``memory: 'x' is not a positive
integer``), raised as ``SaltInvocationError`` before anything is written.

Each validator returns the value in its canonical form. Values that belong
to one format (export options, fstab fields, xl strings, sshd options) are
checked in the module of that format, with the same error format.
"""

import collections
import copy
import functools
import inspect
import ipaddress
import posixpath
import re

from salt.exceptions import SaltInvocationError

# Every pattern ends in \Z, never $: $ also matches before a final newline,
# which would let "name\n" through to a command line or a file.
#: Xen's rule for domain names (xm's check; xl accepts the same).
DOMAIN_NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+\Z")
#: Salt minion ids as they may appear in a target: no glob or compound syntax.
MINION_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
#: RFC 1123 host names (labels of letters, digits and inner hyphens).
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
#: ASCII control characters: never part of a value the formula writes.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


#: The types whose repr() names the value exactly (``True`` is not ``1``, a
#: tuple is not a list): the only arguments a memoized validator keys on.
_PLAIN = (str, int, float, bool, type(None))


def _plain(value):
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return isinstance(value, _PLAIN)


def memoized(function, size=4096):
    """A pure validator that answers the same arguments once: a pillar's
    guest is checked when the pillar is, then by each state it becomes (the
    states cannot trust their arguments), with the same values. Its accepted
    values are kept (the last ``size``), keyed by the arguments bound to its
    signature, defaults applied, and only when every argument is plain data
    (:data:`_PLAIN`, lists, tuples, mappings); each caller gets its own copy.
    A refusal is not kept: it is raised again, from the same checks."""
    signature = inspect.signature(function)
    kept = collections.OrderedDict()

    @functools.wraps(function)
    def answer(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = repr(sorted(bound.arguments.items())) if _plain(bound.arguments) else None
        if key is not None and key in kept:
            kept.move_to_end(key)
            return copy.deepcopy(kept[key])
        result = function(*args, **kwargs)
        if key is not None:
            kept[key] = copy.deepcopy(result)
            if len(kept) > size:
                kept.popitem(last=False)
        return result

    answer.kept = kept
    return answer


def invalid(field, value, problem):
    """The error for a bad value: ``FIELD: VALUE PROBLEM``."""
    return SaltInvocationError(f"{field}: {value!r} {problem}")


def check_domain_name(name, field="name"):
    """A guest (domain) name by Xen's rule: letters, digits and ``_ . : + -``;
    not ``.`` or ``..``; not starting with ``-`` (it would read as an option)."""
    if not isinstance(name, str) or not DOMAIN_NAME_RE.match(name) or name in (".", ".."):
        raise invalid(
            field, name,
            "is not a valid Xen domain name (letters, digits and _ . : + - only; "
            "not '.' or '..')",
        )
    if name.startswith("-"):
        raise invalid(field, name, "must not start with '-' (it would read as an option)")
    return name


def check_minion_id(value, field="minion id"):
    """A minion id as targets and the mine use it (``[A-Za-z0-9_.-]+``)."""
    if not isinstance(value, str) or not MINION_ID_RE.match(value):
        raise invalid(field, value, "is not a minion id ([A-Za-z0-9_.-]+)")
    return value


def is_hostname(value):
    """Whether value is an RFC 1123 host name that cannot be read as an IPv4
    address (its last label is not all digits)."""
    return (isinstance(value, str) and bool(HOSTNAME_RE.match(value))
            and not value.rsplit(".", 1)[-1].isdigit())


def is_ip_address(value):
    """Whether value is an IPv4 or IPv6 address, as text."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_ipv4(value, field="address"):
    """An IPv4 address (the kernel's ``ip=``/``nfsroot=`` take IPv4 only), in
    its canonical form."""
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise invalid(field, value, "is not an IPv4 address") from None


def check_switch(value, field):
    """true or false, and nothing that merely looks like it."""
    if not isinstance(value, bool):
        raise invalid(field, value, "is not true or false")
    return value


def check_choice(value, field, choices):
    """One of the allowed words (``toolstack``: auto, xl, xm; ...)."""
    if not isinstance(value, str) or value not in choices:
        raise invalid(field, value, f"must be one of {', '.join(choices)}")
    return value


def check_count(value, field):
    """A positive whole number; digits in a string are accepted."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise invalid(field, value, "is not a positive integer")
    return value


def check_list(value, field, what="list", empty=True):
    """A list (or tuple) of values, never a string iterated character by
    character; returns a new list."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise invalid(field, value, f"is not a {what}")
    if not empty and not value:
        raise invalid(field, value, f"is not a non-empty {what}")
    return list(value)


def check_absolute_path(value, field="path", normalised=False, spaces=True, below_root=False):
    """An absolute path without control characters.

    normalised: no ``.``/``..``/``//`` components and no trailing ``/``;
    spaces: whether a space may stand in it (False where its reader splits on
    spaces); below_root: ``/`` itself is refused. Returns it.
    """
    if not isinstance(value, str) or not value.startswith("/"):
        raise invalid(field, value, "must be an absolute path")
    if CONTROL_RE.search(value):
        raise invalid(field, value, "must not contain control characters (newlines, tabs, NUL)")
    if not spaces and " " in value:
        raise invalid(field, value, "must not contain spaces")
    if normalised and posixpath.normpath(value) != (value.rstrip("/") or "/"):
        raise invalid(field, value, "must be a normalised absolute path")
    if normalised and value != "/" and value.endswith("/"):
        raise invalid(field, value, "must be a normalised absolute path (no trailing '/')")
    if below_root and value == "/":
        raise invalid(field, value, "must be a path below /")
    return value
