"""
NFS exports, drop-in compatible with Salt 3007's ``nfs_export`` state.

SLS files written for Salt 3007 keep working: the same ``present`` and
``absent`` arguments (``clients`` as a list of ``{hosts, options}``, or
``hosts`` plus ``options``), and by default each state that changed an
exports file applies it with ``exportfs -ra`` itself. Unlike 3007: options
are compared as a normalised set (order and spelled-out defaults never
cause a rewrite), omitted options converge, every client and option is
checked before anything is written, unmanaged lines and comments are kept
byte for byte, a missing exports file is created, ``test=True`` predicts
exactly, and a failed ``exportfs -ra`` restores the files as they were.

.. code-block:: yaml

    # Salt 3007 style: exportfs -ra after each changed export
    /xen:
      nfs_export.present:
        - hosts: 192.0.2.10
        - options: [rw, no_root_squash, async, no_subtree_check]

One ``exportfs -ra`` per run, however many exports change: give
``reload: False`` to the exports and end with one ``nfs_export.reloaded``.
It applies whatever the exports states changed in this run (and restores
the files if exportfs rejects them), and does nothing when nothing changed,
so it needs no requisites; ``watch`` works too (``mod_watch`` reloads).

.. code-block:: yaml

    /xen:
      nfs_export.present:
        - clients:
          - hosts: 192.0.2.10
            options: [rw, no_root_squash, async, no_subtree_check]
        - exports: /etc/exports.d/xen_nfsroot.exports
        - reload: False

    /srv/old-guest:
      nfs_export.absent:
        - exports: /etc/exports.d/xen_nfsroot.exports
        - reload: False

    exports applied:
      nfs_export.reloaded:
        - order: last

A world (``*``), wildcard or ``/0`` client with ``no_root_squash`` is
refused unless ``allow_world_root: True``: every host that can reach the
server would get root access to the exported files.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "nfs_export"

# Exports this run would change under test=True, for reloaded's prediction.
_CTX_PREDICTED = "nfs_export.predicted"


def __virtual__():
    if "exportfs.add" in __salt__:
        return __virtualname__
    return (
        False,
        "The nfs_export state cannot be loaded: the exportfs execution module is not "
        "available (is the exportfs binary installed?)",
    )


def _apply(force=False):
    """Apply this run's changes with exportfs -ra.

    Returns (result, comment, state, applied): state is "idle" (nothing to
    apply), "applied" or "restored" (exportfs failed; the files were put
    back); applied is exportfs.apply_changes's return (None on failure).
    """
    try:
        applied = __salt__["exportfs.apply_changes"](force=force)
    except CommandExecutionError as err:
        restored = bool(getattr(err, "restored", None)) and not getattr(err, "skipped", None)
        return False, str(err), "restored" if restored else "applied", None
    if not applied["reloaded"]:
        return True, "", "idle", applied
    comment = "Applied with exportfs -ra"
    if applied["confirmed"]:
        comment += "; exportfs -v lists " + ", ".join(applied["confirmed"])
    comment += "."
    if applied["preexisting_errors"]:
        comment += (
            " exportfs reported errors that predate this change: "
            + "; ".join(applied["preexisting_errors"])
            + "."
        )
    if applied["problems"]:
        problems = " But " + "; ".join(applied["problems"]) + "."
        return False, comment + problems, "applied", applied
    return True, comment, "applied", applied


def _finish(ret, reload):
    """Reload now or leave it to nfs_export.reloaded, and say so."""
    if not reload:
        ret["comment"] += " exportfs -ra is left to nfs_export.reloaded."
        return ret
    ret["result"], comment, state, _ = _apply()
    ret["comment"] = f"{ret['comment']} {comment}".strip()
    if state == "restored":
        ret["changes"] = {}
    return ret


def present(  # noqa: PLR0917 (Salt calls it with keyword arguments)
    name,
    clients=None,
    hosts=None,
    options=None,
    exports="/etc/exports",
    reload=True,
    allow_world_root=False,
):
    """
    Ensure that ``name`` is exported to exactly the given clients.

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
        as ``/etc/exports.d/xen_nfsroot.exports`` works too). Other lines in
        it are left as they are; created when missing.

    reload
        ``True`` (default, as Salt 3007): apply a change with
        ``exportfs -ra`` now. ``False``: leave it to ``nfs_export.reloaded``
        so that a run costs one ``exportfs -ra`` however many exports change.

    allow_world_root
        Allow ``no_root_squash`` for world (``*``), wildcard or ``/0``
        clients, refused by default.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        outcome = __salt__["exportfs.add"](
            name,
            clients=clients,
            hosts=hosts,
            options=options,
            exports=exports or "/etc/exports",
            allow_world_root=allow_world_root,
            test=test,
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if not outcome["changed"]:
        hosts = ", ".join(client["hosts"] for client in outcome["new"])
        ret["comment"] = f"Export {name} for {hosts} is already present"
        return ret
    ret["changes"] = {"old": outcome["old"], "new": outcome["new"]}
    target = outcome["file"]
    if outcome["old"] is None:
        action = f"added export {name} for {outcome['new_text']} to {target}"
        if outcome["created"]:
            action += " (creating the file)"
    else:
        action = (
            f"updated export {name} in {target} to {outcome['new_text']} "
            f"(was {outcome['old_text']})"
        )
    if test:
        ret["result"] = None
        ret["comment"] = f"Would have {action}"
        __context__.setdefault(_CTX_PREDICTED, []).append(name)
        return ret
    ret["comment"] = action[0].upper() + action[1:] + "."
    return _finish(ret, reload)


def absent(name, exports="/etc/exports", reload=True):
    """
    Ensure that ``name`` is not exported by the exports file.

    Every line of that file exporting ``name`` is deleted; nothing else
    changes.

    name
        The exported directory.

    exports
        The exports file to manage (default ``/etc/exports``).

    reload
        As in :func:`present`.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        exports = exports or "/etc/exports"
        outcome = __salt__["exportfs.remove"](name, exports=exports, test=test)
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if not outcome["changed"]:
        ret["comment"] = f"Export {name} is already absent from {outcome['file']}"
        return ret
    ret["changes"] = {"old": outcome["old"], "new": None}
    action = f"removed export {name} ({outcome['old_text']}) from {outcome['file']}"
    if test:
        ret["result"] = None
        ret["comment"] = f"Would have {action}"
        __context__.setdefault(_CTX_PREDICTED, []).append(name)
        return ret
    ret["comment"] = action[0].upper() + action[1:] + "."
    return _finish(ret, reload)


def reloaded(name, force=False):
    """
    Apply the exports changed in this run with one ``exportfs -ra``.

    Does nothing when no ``nfs_export`` state changed an exports file in
    this run. If exportfs rejects the new files, they are restored to their
    contents before the run and the state fails with exportfs's message.
    After the reload, ``exportfs -v`` must list each changed export.

    name
        Any name, e.g. ``exports applied``.

    force
        Run ``exportfs -ra`` even when nothing changed in this run.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if __opts__.get("test"):
        predicted = __context__.get(_CTX_PREDICTED, [])
        if predicted or force:
            ret["result"] = None
            ret["comment"] = "Would have run exportfs -ra" + (
                f" to apply the changes to {', '.join(predicted)}" if predicted else ""
            )
        else:
            ret["comment"] = "No export changed in this run: exportfs -ra is not needed"
        return ret
    ret["result"], ret["comment"], state, applied = _apply(force=force)
    if state == "idle":
        ret["comment"] = "No export changed in this run: exportfs -ra is not needed"
    elif applied is not None:
        ret["changes"] = {"reloaded": applied["files"], "active": applied["confirmed"]}
    return ret


def mod_watch(name, sfun=None, **kwargs):
    """
    Run ``exportfs -ra`` when a watched state changed.

    With ``nfs_export.reloaded`` the exports are reloaded even if no exports
    file changed in this run (e.g. the exported directory was just created).
    """
    if sfun == "reloaded":
        return reloaded(name, force=True)
    if sfun in ("present", "absent"):
        allowed = {
            "present": ("clients", "hosts", "options", "exports", "reload", "allow_world_root"),
            "absent": ("exports", "reload"),
        }[sfun]
        arguments = {key: kwargs[key] for key in allowed if key in kwargs}
        ret = (present if sfun == "present" else absent)(name, **arguments)
        if ret["result"] and not ret["changes"] and not __opts__.get("test"):
            ret["result"], comment, _, _ = _apply(force=True)
            ret["comment"] = f"{ret['comment']}. {comment}"
        return ret
    return {
        "name": name,
        "changes": {},
        "result": False,
        "comment": f"nfs_export.{sfun} does not support watch",
    }
