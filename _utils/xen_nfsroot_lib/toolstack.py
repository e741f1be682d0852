"""
The Xen toolstacks (``xl`` and the old ``xm``): their names, the guest
types they boot, their listings, and the checks of a migration's target.

* ``xl list`` / ``xm list``: one row per domain, its six state letters
  mapped to one state name (:func:`state_from_flags`);
* ``xl list -l``: the JSON of the domains' configs (kernel, command line);
* a migration target (``[user@]host``) and the ssh command line ``xl
  migrate -s`` runs through ``sh -c``: option words only, no shell syntax;
  the host is one word for sh, ssh, sshd's ``from=`` and ``known_hosts``;
* a time limit in seconds (a migration's, a shutdown's): 1 to a day.
"""

import json
import re

from xen_nfsroot_lib import values

TOOLSTACKS = ("xl", "xm")
#: What a guest, the pillar or the minion config may ask for.
TOOLSTACK_CHOICES = ("auto", *TOOLSTACKS)
#: The guest types the formula boots (xm boots pv only).
GUEST_TYPES = ("pv", "pvh")
#: An ssh command line xl may run through sh -c: option words only, no shell syntax.
SSH_COMMAND_RE = re.compile(r"^[A-Za-z0-9_./=:@,+ -]+\Z")
#: The user of a ``user@host`` migration target.
SSH_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
#: The characters of every host :func:`check_host` accepts: one word for sh,
#: ssh, sshd's ``from=`` and a ``known_hosts`` pattern.
HOST_WORD_RE = re.compile(r"[A-Za-z0-9.:-]+")
#: The longest time limit the formula accepts (seconds): a day.
MAX_SECONDS = 86400


# ---------------------------------------------------------------------------
# The toolstack asked for
# ---------------------------------------------------------------------------


def toolstack_choice(value, where="toolstack"):
    """auto, xl or xm, whatever its case and surrounding spaces; None stays None."""
    if value is None:
        return None
    value = str(value).strip().lower()
    if value not in TOOLSTACK_CHOICES:
        raise values.invalid(where, value, "is not one of auto, xl, xm")
    return value


# ---------------------------------------------------------------------------
# Listings
# ---------------------------------------------------------------------------


def state_from_flags(flags, toolstack):
    """Map the six state letters of a list row to one state name.

    xm's slots are r b p s c d (running blocked paused shutdown crashed
    dying). xl's fifth slot is the shutdown *reason* (``-rscwS``), so a crash
    reads ``---sc-`` there and ``s`` in that slot means "suspended". A domain
    with no letter set is runnable, waiting for a CPU: ``running``.
    """
    if len(flags) != 6:
        raise ValueError(f"state {flags!r} is not six letters")
    running, blocked, paused, shutdown, fifth, dying = (c != "-" for c in flags)
    if toolstack == "xl":
        ended = "crashed" if shutdown and flags[4] == "c" else "shutdown" if shutdown else None
    else:
        ended = "crashed" if fifth else "shutdown" if shutdown else None
    # The first state that holds, in xm's order of precedence.
    for holds, state in ((dying, "dying"), (ended, ended), (paused, "paused"),
                         (running, "running"), (blocked, "blocked")):
        if holds:
            return state
    return "running"


def parse_list(text, toolstack):
    """Parse ``xl list`` or ``xm list`` output (toolstack ``xl``/``xm``) into
    ``{name: {id, memory_mb, vcpus, state, flags, time_s}}``; a line that is
    no row raises ValueError naming it."""
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
    """
    return parse_list(text, "xl")


def parse_xm_list(text):
    """Parse ``xm list`` output into ``{name: {id, memory_mb, vcpus, state, flags, time_s}}``.

    Rows are ``"%(name)-40s %(domid)5s %(mem)5d %(vcpus)5d %(state)10s
    %(cpu_time)8.1f"``; an inactive managed domain has no id (``None``) and
    the state ``shutdown``.
    """
    return parse_list(text, "xm")


def parse_xl_list_long(text):
    """Parse the JSON of ``xl list -l`` into ``{name: {...}}``.

    Each entry has ``id``, ``uuid``, ``type``, ``memory_mb`` (target),
    ``max_memory_mb``, ``vcpus``, ``kernel``, ``ramdisk`` and ``cmdline``
    (``None`` where the JSON has no value). Domain-0 is absent from this
    listing (xl keeps no config for it).
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
# A migration's target
# ---------------------------------------------------------------------------


def check_host(host, field="host", problem="is not an IP address or host name"):
    """A host as the migration's readers take it, as one word: a host name
    (RFC 1123, its last label not all digits) or an IPv4 or IPv6 address.
    Returns it as given.

    It reaches ``sh -c`` (xl runs ``exec SSH HOST xl migrate-receive``),
    ssh's host argument, and, on the peers, sshd's ``from="..."`` pattern
    list and the ``known_hosts`` host pattern: every host accepted here is
    of ``[A-Za-z0-9.:-]`` only, a word none of them splits or expands (no
    space, quote, comma, ``*``, ``?``, ``!``, ``[``, ``]``, ``$``, newline).
    An IPv6 zone id (``fe80::1%eth0``) is refused: Python's address parser
    accepts any text after ``%``, sh and sshd would read it as syntax, and
    a link-local migration peer is not supported (give its global or
    unique local address, or its host name)."""
    if isinstance(host, str) and "%" in host and values.is_ip_address(host):
        raise values.invalid(field, host, "is an IPv6 address with a zone id (%...): not "
                                          "accepted; give a global or unique local address "
                                          "or a host name")
    if not isinstance(host, str) or not (values.is_ip_address(host) or values.is_hostname(host)) \
            or not HOST_WORD_RE.fullmatch(host):
        raise values.invalid(field, host, problem)
    return host


def check_migrate_host(host, field="host"):
    """A migration target: a host (:func:`check_host`), optionally after
    ``user@`` (a user of ``[A-Za-z0-9_][A-Za-z0-9_.-]*``, at most 32
    characters). Returns it as given."""
    if not isinstance(host, str):
        raise values.invalid(field, host, "is not a host name or address")
    user, at, target = host.rpartition("@")
    if at and (len(user) > 32 or not SSH_USER_RE.fullmatch(user)):
        raise values.invalid(field, host, "is not a host name or address (its user is not "
                                          "[A-Za-z0-9_][A-Za-z0-9_.-]*)")
    check_host(target, field, "is not a host name or address")
    return host


def check_ssh_command(command, field="ssh_command"):
    """The ssh command line of ``xl migrate -s``: xl runs ``exec COMMAND HOST
    xl migrate-receive`` through ``sh -c``, so it holds option words only
    (``[A-Za-z0-9_./=:@,+ -]``), no shell syntax and no line end (a
    newline would end sh's command before HOST, which sh would then run
    here as a command). None stays None."""
    if command is not None and (not isinstance(command, str)
                                or not SSH_COMMAND_RE.fullmatch(command)
                                or not command.strip()):
        raise values.invalid(field, command, "is not an ssh command line "
                                             "(words of [A-Za-z0-9_./=:@,+-], no shell syntax)")
    return command


def check_seconds(value, field="timeout", ceiling=None):
    """A time limit in whole seconds, from 1 to ``ceiling`` (default
    :data:`MAX_SECONDS`, a day); None (no limit) stays None. Digits in a
    string are accepted; text, a fraction, zero, a negative number or more
    than the ceiling are refused before anything runs."""
    ceiling = MAX_SECONDS if ceiling is None else ceiling
    if value is None:
        return None
    seconds = value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        seconds = int(value.strip())
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= ceiling:
        raise values.invalid(field, value, f"is not a whole number of seconds from 1 to {ceiling}")
    return seconds
