"""
NFS exports, drop-in compatible with Salt 3007's ``nfs_export`` state.

SLS files written for Salt 3007 keep working: the same ``present`` and
``absent`` arguments (``clients`` as a list of ``{hosts, options}``, or
``hosts`` plus ``options``). Unlike 3007: options are compared as a
normalised set (order and spelled-out defaults never cause a rewrite),
omitted options converge, every client and option is checked before
anything is written, unmanaged lines and comments are kept byte for byte, a
missing exports file is created, ``test=True`` predicts exactly, a failed
``exportfs -ra`` restores the files as they were, and the state converges on
what the server really exports: an export that is in the file but not in
the live table (after ``exportfs -ua``, a server restart that lost it, or a
reload that failed in an earlier run) is reported and applied again.

.. code-block:: yaml

    # Salt 3007 style
    /xen:
      nfs_export.present:
        - hosts: 192.0.2.10
        - options: [rw, no_root_squash, async, no_subtree_check]

One ``exportfs -ra`` and one ``exportfs -v`` per run, however many exports
change. With ``reload: True`` (the default, as in 3007) the exports states
of a run share them: a state whose change needs a reload leaves it to a
later exports state of the same run when that one is sure to run (no
requisites, no ``onlyif``/``unless``, no ``parallel``, no ``failhard`` in the
run), and the last one reloads for all; the comments say which. A state that
leaves the reload to another says its export is not in effect yet; if that
reload fails, the state that ran it fails and names every export of the run
it left out of effect (their files restored as before the run). A reload
that never ran (the run was killed) is caught by the next run's check of the
live table. Or give ``reload: False`` to the exports and end with one
``nfs_export.reloaded``, which applies whatever the exports states of the
run left to it (``watch`` works too: ``mod_watch`` reloads):

.. code-block:: yaml

    /xen:
      nfs_export.present:
        - clients:
          - hosts: 192.0.2.10
            options: [rw, no_root_squash, async, no_subtree_check]
        - exports: /etc/exports.d/xen-nfsroot.exports
        - reload: False

    exports applied:
      nfs_export.reloaded:
        - order: last

A world (``*``), wildcard or ``/0`` client with ``no_root_squash`` is
refused unless ``allow_world_root: True``: every host that can reach the
server would get root access to the exported files.
"""

import time

from salt.exceptions import CommandExecutionError, SaltInvocationError
from salt.state import STATE_REQUISITE_KEYWORDS

from xen_nfsroot_lib import exports as exports_format

__virtualname__ = "nfs_export"

# The exports of this run waiting for exportfs -ra: [(path, file, clients, state ID)].
_PENDING = "nfs_export.pending"
# Keywords that may keep a state function from being called when its turn comes.
_MAY_NOT_RUN = frozenset(STATE_REQUISITE_KEYWORDS) | {
    "onlyif", "unless", "creates", "parallel", "failhard", "check_cmd", "prereq",
}


def __virtual__():
    if "exportfs.add" in __salt__:
        return __virtualname__
    return (
        False,
        "The nfs_export state cannot be loaded: the exportfs execution module is not "
        "available (is the exportfs binary installed?)",
    )


def _ret(name):
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def _sentence(text):
    return text[:1].upper() + text[1:]


def _then(comment, more):
    """Two sentences of a comment."""
    if not comment:
        return more
    return f"{comment} {more}" if comment.endswith(".") else f"{comment}. {more}"


# ---------------------------------------------------------------------------
# The run's one exportfs -ra
# ---------------------------------------------------------------------------


def _pending():
    return __context__.setdefault(_PENDING, [])


def _names(paths):
    """Paths in order, each once."""
    return list(dict.fromkeys(paths))


def _state_id():
    """The ID of the state being run, or None outside a state run."""
    return (globals().get("__low__") or {}).get("__id__")


def _not_in_effect(pending):
    """The sentence naming each export of the run a failed reload left out
    of effect, with the state that changed it where its ID is not the path."""
    named = _names(path if state in (None, path) else f"{path} (state {state})"
                   for path, _, _, state in pending)
    return f"Not in effect, of the exports this run changed: {', '.join(named)}."


def _tag(chunk):
    return f"{chunk['state']}_|-{chunk['__id__']}_|-{chunk['name']}_|-{chunk['fun']}"


def _reloader(chunk):
    """True for an exports state that is sure to run and to reload."""
    return (
        chunk.get("state") == "nfs_export"
        and chunk.get("fun") in ("present", "absent")
        and chunk.get("reload", True) is not False
        and not _MAY_NOT_RUN.intersection(chunk)
    )


def _later_reloader():
    """The ID of a later exports state of this run that will reload for this
    one, or None when this state must reload itself."""
    low = globals().get("__low__") or {}
    chunks = list(globals().get("__lowstate__") or [])
    running = globals().get("__running__") or {}
    if not low or __opts__.get("failhard") or low.get("parallel"):
        return None
    if any(chunk.get("failhard") or chunk.get("parallel") for chunk in chunks):
        return None
    mine = _tag(low)
    later = False
    found = None
    for chunk in chunks:
        if later and _reloader(chunk) and _tag(chunk) not in running:
            found = chunk["__id__"]
        later = later or _tag(chunk) == mine
    return found


def _reload(name):
    """exportfs -ra for every export of the run, then each checked against
    ``exportfs -v``: (result, comment, restored). name: the state's own
    export (a failure names the others the run left to it too)."""
    pending = __context__.pop(_PENDING, [])
    try:
        applied = __salt__["exportfs.reload"]()
    except CommandExecutionError as err:
        restored = bool(getattr(err, "restored", None)) and not getattr(err, "skipped", None)
        comment = str(err)
        if any(path != name for path, _, _, _ in pending):
            comment = _then(comment, _not_in_effect(pending))
        return False, comment, restored
    confirmed, problems = [], []
    for path, exports, clients, _ in pending:
        check = __salt__["exportfs.check_active"](path, clients, exports=exports)
        confirmed += check["confirmed"]
        problems += check["problems"]
    comment = "Applied with exportfs -ra"
    if confirmed:
        comment += "; exportfs -v lists " + ", ".join(confirmed)
    comment += "."
    if applied["preexisting_errors"]:
        comment += (" exportfs reported errors that predate this change: "
                    + "; ".join(applied["preexisting_errors"]) + ".")
    if problems:
        return False, comment + " But " + "; ".join(problems) + ".", False
    return True, comment, False


def _prediction(ret, own, others):
    """What test=True says of the reload this state would run."""
    if not ret["comment"]:  # nfs_export.reloaded: the reload is all it does
        return "Would have run exportfs -ra" + (
            f" to apply the changes to {', '.join(others)}" if others else "")
    return "Would then run exportfs -ra" + (
        f" (for {', '.join(others)} too)." if own and others
        else f" for {', '.join(others)}." if others else ".")


def _apply(ret, test, reload=True, now=False):
    """The run's one exportfs -ra, decided here for every state that may
    apply exports: run it now for every export of the run that waits for it,
    or leave it to a later state, and say which in ret.

    reload: the state's ``reload`` argument (False: leave it to
    nfs_export.reloaded). now: run it now, even with no export waiting
    (nfs_export.reloaded, and a watched exports state that changed nothing
    itself). Otherwise it is left to a later exports state of the run that
    is sure to run (:func:`_later_reloader`), or run by the last one.
    """
    if not _pending() and not now:
        return ret
    own = bool(ret["changes"])
    later = None if now or not reload else _later_reloader()
    if not now and (not reload or later is not None):
        if own:
            where = ("nfs_export.reloaded" if not reload
                     else f"the exports state {later} of this run")
            # The file changed, the server's table not yet: said so, and the
            # state that reloads names this export if its reload fails.
            pending = "" if test else "Not in effect yet: "
            ret["comment"] = _then(ret["comment"],
                                   f"{pending}exportfs -ra is left to {where}.")
        return ret
    # The exports applied for other states (this state's own are its changes).
    others = _names(path for path, _, _, _ in _pending()
                    if not (own and path == ret["name"]))
    if test:
        __context__.pop(_PENDING, None)  # as the reload would
        if ret["result"] is not False:
            ret["result"] = None
        ret["comment"] = _then(ret["comment"], _prediction(ret, own, others))
        if not own:
            ret["changes"]["reloaded"] = others
        return ret
    result, comment, restored = _reload(ret["name"])
    ret["result"] = ret["result"] and result
    ret["comment"] = _then(ret["comment"], comment)
    if restored:
        ret["changes"] = {}
    elif not own:
        ret["changes"]["reloaded"] = others
    return ret


# ---------------------------------------------------------------------------
# States
# ---------------------------------------------------------------------------


def _export_state(name, reload, edit, watched=False):
    """Run one exports state: edit(test) -> (outcome, wanted clients or None,
    (changes, comment)); a change joins the run's pending reload. watched:
    called by mod_watch, which asks for a reload even without a change."""
    ret = _ret(name)
    test = bool(__opts__.get("test"))
    try:
        outcome, wanted, (ret["changes"], ret["comment"]) = edit(test)
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return _apply(ret, test, reload)
    if ret["changes"]:
        _pending().append((name, outcome["file"], wanted, _state_id()))
        if test:
            ret["result"] = None
    return _apply(ret, test, reload, now=watched and ret["result"] and not ret["changes"])


def _present(name, outcome, test):
    """(changes, comment, pending clients) of present's own work."""
    hosts = ", ".join(client["hosts"] for client in outcome["new"])
    target = outcome["file"]
    if outcome["changed"]:
        if outcome["old"] is None:
            action = f"added export {name} for {outcome['new_text']} to {target}"
            if outcome["created"]:
                action += " (creating the file)"
        else:
            action = (f"updated export {name} in {target} to {outcome['new_text']} "
                      f"(was {outcome['old_text']})")
        comment = f"Would have {action}" if test else _sentence(action) + "."
        return {"old": outcome["old"], "new": outcome["new"]}, comment
    check = __salt__["exportfs.check_active"](name, outcome["new"], exports=target)
    if check["active"]:
        return {}, f"Export {name} for {hosts} is already present"
    problems = "; ".join(check["problems"])
    comment = (f"Export {name} for {hosts} is in {target} but not active ({problems}): "
               + ("would apply it again" if test else "applying it again") + ".")
    return {"active": {"old": problems, "new": outcome["new_text"]}}, comment


def present(  # noqa: PLR0913,PLR0917 (Salt 3007's signature, called with keywords)
    name,
    clients=None,
    hosts=None,
    options=None,
    exports=exports_format.DEFAULT_EXPORTS,
    reload=True,
    allow_world_root=False,
):
    """
    Ensure that ``name`` is exported to exactly the given clients, in the
    exports file and in the server's live export table.

    name
        The exported directory.

    clients
        A list of clients, each ``{"hosts": HOST, "options": [OPTION, ...]}``;
        not together with ``hosts``/``options``.

        .. code-block:: yaml

            - clients:
              - hosts: 192.0.2.10
                options: [rw, no_root_squash, async, no_subtree_check]
              - hosts: '*.example.com'
                options: [ro, subtree_check]

    hosts
        One client: a host name, address, network (``10.0.2.0/24``),
        wildcard (``*.example.com``), ``@netgroup`` or ``*``; several
        comma-separated names give several clients with the same options.

    options
        The options for ``hosts``, e.g. ``[rw, no_subtree_check]``.
        Omitted: exportfs's defaults (``ro,sync,root_squash``).

    exports
        The exports file to manage (default ``/etc/exports``; a drop-in such
        as ``/etc/exports.d/xen-nfsroot.exports`` works too). Other lines in
        it are left as they are; created when missing.

    reload
        ``True`` (default, as Salt 3007): apply a change with
        ``exportfs -ra`` in this run (shared with the run's other exports
        states, see above). ``False``: leave it to ``nfs_export.reloaded``.

    allow_world_root
        Allow ``no_root_squash`` for world (``*``), wildcard or ``/0``
        clients, refused by default.
    """
    return _export_state(name, reload, _adding(name, clients, hosts, options, exports,
                                               allow_world_root))


def _adding(name, clients, hosts, options, exports, allow_world_root):  # noqa: PLR0913,PLR0917
    """present's edit (see :func:`_export_state`)."""
    def edit(test):
        outcome = __salt__["exportfs.add"](
            name, clients=clients, hosts=hosts, options=options,
            exports=exports or exports_format.DEFAULT_EXPORTS,
            allow_world_root=allow_world_root, test=test,
        )
        return outcome, outcome["new"], _present(name, outcome, test)

    return edit


def _absent(name, outcome, test):
    target = outcome["file"]
    if outcome["changed"]:
        action = f"removed export {name} ({outcome['old_text']}) from {target}"
        comment = f"Would have {action}" if test else _sentence(action) + "."
        return {"old": outcome["old"], "new": None}, comment
    check = __salt__["exportfs.check_active"](name, None, exports=target)
    if check["active"]:
        return {}, f"Export {name} is already absent from {target}"
    problems = "; ".join(check["problems"])
    comment = (f"Export {name} is absent from {target} but still active ({problems}): "
               + ("would withdraw it" if test else "withdrawing it") + ".")
    return {"active": {"old": problems, "new": None}}, comment


def absent(name, exports=exports_format.DEFAULT_EXPORTS, reload=True):
    """
    Ensure that ``name`` is not exported by the exports file, and not in the
    server's live export table (unless another exports file exports it).

    Every line of that file exporting ``name`` is deleted; nothing else
    changes.

    name
        The exported directory.

    exports
        The exports file to manage (default ``/etc/exports``).

    reload
        As in :func:`present`.
    """
    return _export_state(name, reload, _removing(name, exports))


def _removing(name, exports):
    """absent's edit (see :func:`_export_state`)."""
    def edit(test):
        outcome = __salt__["exportfs.remove"](
            name, exports=exports or exports_format.DEFAULT_EXPORTS, test=test
        )
        return outcome, None, _absent(name, outcome, test)

    return edit


def reloaded(name, force=False):
    """
    Apply the exports this run's exports states left to it with one
    ``exportfs -ra``, then check each against ``exportfs -v``.

    Does nothing (and spawns nothing) when no exports state of this run needs
    a reload. If exportfs rejects the new files, they are restored to their
    contents before the run and the state fails with exportfs's message.

    name
        Any name, e.g. ``exports applied``.

    force
        Run ``exportfs -ra`` even when nothing is pending.
    """
    ret = _ret(name)
    if not _pending() and not force:
        ret["comment"] = "No export changed in this run: exportfs -ra is not needed"
        return ret
    return _apply(ret, bool(__opts__.get("test")), now=True)


def mounted(name, clients, timeout=60):
    """
    One of ``clients`` has ``name`` mounted, as the NFS server sees it: the
    server-side proof of a guest's boot on its NFS root.

    The server's own records are asked every 2 seconds for up to
    ``timeout`` seconds (``exportfs.mounted_by``: rpc.mountd's rmtab for
    NFSv3, nfsd's client list for NFSv4). Where the server cannot tell (no
    rmtab, no client list), the state succeeds with a warning.

    name
        The exported directory.
    clients
        The hosts that may mount it (addresses, networks, wildcards).
    timeout
        Seconds to wait for the mount to appear.

    With ``test=True`` the records are asked once, without waiting: a mount
    already there is confirmed, otherwise the state says it would wait.
    """
    ret = _ret(name)
    test = bool(__opts__.get("test"))
    deadline = time.monotonic() + (0 if test else timeout)
    while True:
        try:
            seen = __salt__["exportfs.mounted_by"](name, clients)
        except (CommandExecutionError, SaltInvocationError) as err:
            return dict(ret, result=False, comment=str(err))
        if seen["mounted"] is None:
            ret["warnings"] = [f"the NFS server cannot tell who has {name} mounted (no "
                               "rpc.mountd rmtab, no nfsd client list)"]
            ret["comment"] = f"Not confirmed: this server cannot tell who has {name} mounted"
            return ret
        if seen["mounted"] or time.monotonic() >= deadline:
            break
        time.sleep(2)
    who = ", ".join(clients) if isinstance(clients, list) else clients
    if not seen["mounted"] and test:
        return dict(ret, result=None, comment=(
            f"Would wait up to {timeout} s for a client of {name} ({who}) to mount it (not "
            f"mounted now; asked: {', '.join(seen['sources'])})"))
    if not seen["mounted"]:
        return dict(ret, result=False, comment=(
            f"No client of {name} ({who}) has it mounted after {timeout} s (asked: "
            f"{', '.join(seen['sources'])})"))
    ret["comment"] = f"{name} is mounted by " + "; ".join(seen["by"])
    return ret


def mod_watch(name, sfun=None, **kwargs):
    """
    Run ``exportfs -ra`` when a watched state changed.

    With ``nfs_export.reloaded`` the exports are reloaded even if no exports
    file changed in this run (e.g. the exported directory was just created);
    with ``present``/``absent`` the state runs and, if it changed nothing,
    reloads anyway (a change of its own reloads as it would unwatched).
    """
    if sfun == "reloaded":
        return reloaded(name, force=True)
    if sfun == "present":
        edit = _adding(name, kwargs.get("clients"), kwargs.get("hosts"), kwargs.get("options"),
                       kwargs.get("exports"), kwargs.get("allow_world_root", False))
    elif sfun == "absent":
        edit = _removing(name, kwargs.get("exports"))
    else:
        return {
            "name": name,
            "changes": {},
            "result": False,
            "comment": f"nfs_export.{sfun} does not support watch",
        }
    return _export_state(name, kwargs.get("reload", True), edit, watched=True)
