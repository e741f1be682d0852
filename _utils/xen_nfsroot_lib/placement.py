"""
Where a guest runs across its dom0s, and the rule that it never runs twice.

Two kernels writing one NFS root destroy it, so a guest with several dom0s
(``dom0s`` in pillar) runs on one of them at a time. What each dom0 runs is
its domain list (``xm.list_domains``: ``{name: {"state": ...}}``), read by the
callers wherever they get it (this dom0's own list and the mine's copies in
the ``xen_guest`` states; the dom0s' direct answers in the migration plan of
``xen_nfsroot``). Here: what such lists say about one guest, why a boot or a
migration must not start, and the moves a migration makes.

``xl migrate`` renames the guest while it moves (``NAME--incoming`` on the
target, ``NAME--migratedaway`` on the source); such a name anywhere means a
migration is under way or failed half-way: nothing boots or moves then.
"""

from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import toolstack, values

#: What each dom0 publishes to the Salt mine: its domain list, read by the others.
MINE_FUNCTION = "xm.list_domains"
#: Domain states in which a guest runs (``xl list``'s r, b, p).
RUNNING = ("running", "blocked", "paused")
#: States in which a domain still holds its root: running, or being destroyed.
OCCUPIED = (*RUNNING, "dying")
#: The suffixes ``xl migrate`` gives a guest's name while it moves.
TRANSIENT = ("--incoming", "--migratedaway")


def check_dom0(value, field="to"):
    """A dom0's minion id (:func:`values.check_minion_id`: whole, not even a
    line end after it). Returns it."""
    return values.check_minion_id(value, field)


def check_dom0s(value, field="dom0s"):
    """A list of dom0 minion ids (:func:`check_dom0`), never a string read
    character by character; None stays None. Returns a new list."""
    if value is None:
        return None
    dom0s = values.check_list(value, field, "list of minion ids")
    for index, dom0 in enumerate(dom0s):
        check_dom0(dom0, f"{field}[{index}]")
    return dom0s


def check_migration(to, address=None, dom0s=None, other_dom0s=None, timeout=None,  # noqa: PLR0913,PLR0917
                    ssh_command=None):
    """The arguments of a migration of a guest to the dom0 ``to``
    (``xen_guest.migrated``), checked before anything runs or is asked:
    ``to`` a minion id; the host xl reaches (``address``, default ``to``) a
    migration target (:func:`toolstack.check_migrate_host`: one word for sh
    and ssh); ``dom0s`` a non-empty and ``other_dom0s`` a list of minion ids
    (a string is refused, never read character by character); ``timeout``
    whole seconds from 1 to a day (:func:`toolstack.check_seconds`);
    ``ssh_command`` option words only (:func:`toolstack.check_ssh_command`).
    Returns them checked, as a dict, with ``host`` added."""
    to = check_dom0(to, "to")
    host = toolstack.check_migrate_host(to if address is None else address,
                                        "to" if address is None else "address")
    if dom0s is not None:
        values.check_list(dom0s, "dom0s", "list of minion ids", empty=False)
    return {
        "to": to,
        "host": host,
        "address": address,
        "dom0s": check_dom0s(dom0s, "dom0s"),
        "other_dom0s": check_dom0s(other_dom0s, "other_dom0s"),
        "timeout": toolstack.check_seconds(timeout, "timeout"),
        "ssh_command": toolstack.check_ssh_command(ssh_command),
    }


def whereabouts(name, listing):
    """What one dom0's domain list says of ``name``: (whether it runs there,
    the names ``xl migrate`` gave it there, sorted)."""
    domain = listing.get(name)
    live = isinstance(domain, dict) and domain.get("state") in OCCUPIED
    transient = sorted(name + suffix for suffix in TRANSIENT if name + suffix in listing)
    return live, transient


def locate(name, here, others, listings):
    """Where ``name`` runs, from this dom0's domain list ``here`` and the other
    dom0s' ``listings`` (``{minion id: domain list}``; a dom0 of ``others``
    without one is missing): ``{"here": bool, "there": [dom0s], "transient":
    {dom0 or "here": [names]}, "missing": [dom0s]}``."""
    here_live, here_transient = whereabouts(name, here)
    found = {"here": here_live, "there": [], "transient": {}, "missing": []}
    if here_transient:
        found["transient"]["here"] = here_transient
    for other in others:
        if other not in listings:
            found["missing"].append(other)
            continue
        live, transient = whereabouts(name, listings[other])
        if live:
            found["there"].append(other)
        if transient:
            found["transient"][other] = transient
    return found


def blocks_boot(found, domain_state, booting):
    """Whether what :func:`locate` found stops this dom0 from going on: the
    guest runs on another dom0, a migration's names are somewhere, or (for a
    boot of a guest not running here) a dom0 could not be asked."""
    if found["transient"] or found["there"]:
        return True
    return bool(found["missing"]) and booting and domain_state not in RUNNING


def transient_text(transient):
    """``NAME--incoming on dom0-b; NAME--migratedaway on this dom0``."""
    return "; ".join(f"{', '.join(names)} on {'this dom0' if where == 'here' else where}"
                     for where, names in sorted(transient.items()))


def boot_refusal(name, found, me):
    """Why the guest must not be booted on this dom0 (``me``), or None when it
    runs, alone, on one other dom0."""
    if found["transient"]:
        return (f"{name} is being migrated or a migration of it failed "
                f"({transient_text(found['transient'])}): not booted, nothing destroyed; "
                "finish or clean up the migration first")
    if found["there"] and (found["here"] or len(found["there"]) > 1):
        running = ([me] if found["here"] else []) + found["there"]
        return (f"{name} runs on two dom0s at once: {' and '.join(running)}; nothing changed: "
                "stop one of them (two kernels writing one NFS root destroy it)")
    if not found["there"]:
        return (f"Cannot tell whether {name} runs on {', '.join(found['missing'])} (no domain "
                "list in the mine: is that dom0 up and publishing xm.list_domains?): not "
                "booted")
    return None


def migration_refusal(name, to, dom0s, found, me):
    """Why a migration of ``name`` from this dom0 (``me``) to ``to`` must not
    start, or None. dom0s: every dom0 of the guest (None: not checked)."""
    if dom0s and to not in dom0s:
        return f"to: {to!r} is not one of the dom0s of {name} ({', '.join(dom0s)})"
    if to == me:
        return f"to: {to!r} is this dom0: {name} would migrate onto itself"
    if found["transient"]:
        return (f"{name} is being migrated or a migration of it failed "
                f"({transient_text(found['transient'])})")
    if not found["here"]:
        there = f" (it runs on {', '.join(found['there'])})" if found["there"] else ""
        return f"{name} does not run on this dom0 ({me}){there}"
    if found["there"]:
        return (f"{name} runs on two dom0s at once: {me} and {' and '.join(found['there'])}; "
                "not migrating it")
    return None


# ---------------------------------------------------------------------------
# The migration plan: moves checked against the dom0s' own answers
# ---------------------------------------------------------------------------


def running_on(name, answers):
    """(dom0s where the guest runs, {dom0: its xl migrate names there}), from
    the dom0s' answers ``{minion id: {"domains": {...}, "toolstack": ...}}``."""
    live, transient = [], {}
    for dom0, answer in answers.items():
        runs, names = whereabouts(name, answer["domains"])
        if runs:
            live.append(dom0)
        if names:
            transient[dom0] = names
    return live, transient


def move(name, dom0s, to, answers):
    """One move of the guest ``name`` (whose dom0s are ``dom0s``) to ``to``,
    checked against what its dom0s said: ``{guest, from, to}``."""
    live, transient = running_on(name, answers)
    if transient:
        shown = "; ".join(f"{', '.join(names)} on {dom0}" for dom0, names in transient.items())
        raise SaltInvocationError(f"guest: {name} is being migrated or a migration of it "
                                  f"failed ({shown}): nothing moves")
    if len(live) != 1:
        raise SaltInvocationError(
            f"guest: {name} runs on {' and '.join(live)}: nothing moves" if live else
            f"guest: {name} runs on none of its dom0s ({', '.join(dom0s)}): "
            "nothing to migrate")
    (source,) = live
    if source == to:
        raise SaltInvocationError(f"to: {name} already runs on {to}")
    if answers[source]["toolstack"] != answers[to]["toolstack"]:
        raise SaltInvocationError(
            f"to: {to} runs {answers[to]['toolstack']}, {source} runs "
            f"{answers[source]['toolstack']}: a live migration needs one toolstack")
    return {"guest": name, "from": source, "to": to}


def migration_target(guests, guest, to):
    """The guest ``guest`` of the validated ``guests``, checked to be one that
    may move to ``to`` (one of its dom0s)."""
    if not isinstance(guest, str) or guest not in guests:
        raise SaltInvocationError(f"guest: {guest!r} is not a guest of the pillar")
    found = guests[guest]
    if not isinstance(to, str) or to not in found["dom0s"]:
        raise SaltInvocationError(
            f"to: {to!r} is not one of the dom0s of {guest} ({', '.join(found['dom0s'])})")
    return found


def evacuees(guests, evacuate):
    """The guests of ``guests`` that may leave the dom0 ``evacuate``: it is one
    of their dom0s and they have another (the dom0s to ask: theirs)."""
    return {name: guest for name, guest in guests.items()
            if evacuate in guest["dom0s"] and len(guest["dom0s"]) > 1 and not guest["absent"]}


def evacuation(guests, evacuate, answers):
    """The moves that empty the dom0 ``evacuate`` of ``guests`` (from
    :func:`evacuees`), each to its home dom0, or the next of its dom0s when
    its home is the one evacuated."""
    moves = []
    for name, guest in guests.items():
        live, transient = running_on(name, answers)
        if evacuate not in live and evacuate not in transient:
            continue
        target = guest["dom0"] if guest["dom0"] != evacuate else next(
            dom0 for dom0 in guest["dom0s"] if dom0 != evacuate)
        moves.append(move(name, guest["dom0s"], target, answers))
    if not moves:
        raise SaltInvocationError(f"evacuate: no guest with another dom0 runs on "
                                  f"{evacuate!r}: nothing to move")
    return moves
