"""
Migration trust between a guest's dom0s, for ``xl migrate`` over ssh.

On every dom0 that may send or receive a guest:

.. code-block:: yaml

    /etc/xen-nfsroot/migrate_key:
      xen_migrate.key: []

    /root/.ssh/authorized_keys:
      xen_migrate.trusted:
        - peers:
            dom0-b: 192.0.2.11
            dom0-c: {address: 192.0.2.12, port: 2222}
        - require:
          - xen_migrate: /etc/xen-nfsroot/migrate_key

``xen_migrate.key`` makes the dom0's ed25519 migration key and publishes its
public half, with the dom0's ssh host keys, to the Salt mine
(``xen_migrate.public_keys``). ``xen_migrate.trusted`` reads the peers' keys
from the mine (one ``mine.get``) and writes, on this dom0:

* for each peer, one ``authorized_keys`` entry
  ``restrict,from="ADDRESS",command="WRAPPER"``: the peer's key may run
  ``xl migrate-receive`` with the options xl passes, from that address, and
  nothing else (every other line of the file is kept byte for byte);
* the forced command ``WRAPPER`` (``xen_nfsroot_lib.trust.wrapper_text``);
* its own ``known_hosts`` with the peers' host keys, which
  ``xen_nfsroot_lib.trust.ssh_command`` (the ``ssh_command`` of
  ``xm.migrate``) makes ssh trust, and nothing else.

The files' texts are the library's plans (:mod:`xen_nfsroot_lib.trust`),
read and written with its safe file routine (:mod:`xen_nfsroot_lib.files`);
the key pair and the mine are the execution module's operations.

A peer whose keys are not in the mine yet (its ``xen_migrate.key`` state has
not run) is reported in the comment and left out, and the state still
succeeds: the first highstate of a set of dom0s publishes their keys, the
next one completes the trust. A peer that had an entry keeps it while the
mine does not hold its keys.

For the mine to stay filled between runs, add the mine function to the
dom0s' pillar or minion config::

    mine_functions:
      xen_migrate.public_keys: []
"""

import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import files, trust, values

__virtualname__ = "xen_migrate"


def __virtual__():
    if "xen_migrate.key_pair" in __salt__:
        return __virtualname__
    return (False, "xen_migrate: the xen_migrate execution module is not loaded")


def _ret(name):
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def _octal(mode):
    return None if mode is None else f"{mode:04o}"


def _words(line):
    return (line or "").split()[:2]


# ---------------------------------------------------------------------------
# The key pair
# ---------------------------------------------------------------------------


def _key_changes(path, pair, comment):
    """(changes, description of each change) for an existing key pair."""
    changes, done = {}, []
    if pair["mode"] != 0o600:
        changes["mode"] = {"old": _octal(pair["mode"]), "new": "0600"}
        done.append(f"the mode of {path} to 0600 (was {_octal(pair['mode'])})")
    derived = pair["derived"]
    if _words(pair["public"]) != _words(derived):
        new = derived if len(derived.split()) > 2 else f"{derived} {comment}"
        changes["public"] = {"old": pair["public"], "new": new}
        done.append(f"{path}.pub from the private key" if pair["public"] is None
                    else f"{path}.pub, which did not match the private key")
    return changes, done


def _publish(ret, path, test):
    if test:
        ret["comment"] += f" It would then be published to the mine ({trust.MINE_FUNCTION})."
        return
    sent = (__salt__["mine.send"](trust.MINE_FUNCTION) if path == trust.KEY
            else __salt__["mine.send"](trust.MINE_FUNCTION, key=path))
    if sent:
        ret["comment"] += f" Published to the mine ({trust.MINE_FUNCTION})."
    else:
        ret["result"] = False
        ret["comment"] += (f" But mine.send {trust.MINE_FUNCTION} failed: the peers will see "
                           "the key after the next mine update.")


def key(name, publish=True):
    """
    This dom0's migration key pair exists: an ed25519 key without
    passphrase at ``name`` (mode 0600, its directory created 0700) and its
    public half at ``name.pub``, commented ``xen-nfsroot-migrate@<minion
    id>``. A missing pair is created (``ssh-keygen``); an existing private
    key is never replaced: a wrong mode is set to 0600 and a missing or
    mismatched ``.pub`` is rewritten from it.

    name
        The private key's path (the formula's default:
        ``/etc/xen-nfsroot/migrate_key``).
    publish
        After a change, send the public keys to the mine
        (``mine.send xen_migrate.public_keys``), so the peers' next
        ``xen_migrate.trusted`` sees them.
    """
    ret = _ret(name)
    test = bool(__opts__.get("test"))
    try:
        path = trust.check_path(name, "name")
        values.check_switch(publish, "publish")
        comment = trust.key_comment(__opts__["id"])
        pair = __salt__["xen_migrate.key_pair"](path)
        if not pair["private"]:
            ret["changes"] = {"created": {"path": path, "type": "ssh-ed25519",
                                          "comment": comment}}
            if test:
                ret["comment"] = f"Would have created the ed25519 migration key {path} ({comment})."
            else:
                line = __salt__["xen_migrate.create_key"](path, comment)
                ret["comment"] = f"Created the ed25519 migration key {path}: {line}."
        else:
            ret["changes"], done = _key_changes(path, pair, comment)
            if not ret["changes"]:
                key_type, _ = _words(pair["derived"])
                ret["comment"] = (f"The migration key {path} is in place ({key_type}, "
                                  f"{' '.join(pair['public'].split()[2:]) or 'no comment'}).")
                return ret
            what = "; ".join(done)
            if test:
                ret["comment"] = f"Would have set {what}."
            else:
                __salt__["xen_migrate.repair_key"](
                    path, mode="mode" in ret["changes"],
                    public=ret["changes"].get("public", {}).get("new"))
                ret["comment"] = f"Set {what}."
        if publish:
            _publish(ret, path, test)
    except (CommandExecutionError, SaltInvocationError, OSError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if test:
        ret["result"] = None
    return ret


# ---------------------------------------------------------------------------
# The peers' trust
# ---------------------------------------------------------------------------


def _choose_path(value, default, field):
    """The path a True/False/path argument names (None: not managed)."""
    if value is True:
        return default
    if value is False or value is None:
        return None
    return trust.check_path(value, field)


def _peer_diff(old, new):
    """{"added", "updated", "removed"} peer lists between two {peer: value}."""
    diff = {
        "added": sorted(set(new) - set(old)),
        "updated": sorted(peer for peer in set(old) & set(new) if old[peer] != new[peer]),
        "removed": sorted(set(old) - set(new)),
    }
    return {kind: peers for kind, peers in diff.items() if peers}


def _mined(peers):
    """{peer: checked public keys} of the peers the mine holds."""
    if not peers:
        return {}
    mined = __salt__["mine.get"](tgt=list(peers), fun=trust.MINE_FUNCTION, tgt_type="list")
    if not isinstance(mined, dict):
        raise CommandExecutionError(f"mine.get {trust.MINE_FUNCTION}: {mined!r} is not a mapping "
                                    "of minion id to keys")
    return {peer: trust.check_mined(peer, mined[peer])
            for peer in peers if peer in mined}


def _plan_authorized(path, peers, published, wrapper):
    """(file plan or None, warnings) of authorized_keys."""
    current = _read_text(path)
    old = trust.authorized_peers(current)
    entries, warnings = {}, []
    for peer, where in peers.items():
        key_line = published.get(peer, {}).get("migrate_key")
        if key_line is not None:
            entries[peer] = {"key": key_line, "address": where["address"]}
            continue
        entries[peer] = None
        why = ("has published no keys in the mine" if peer not in published
               else "has no migration key in the mine yet")
        kept = (f"its entry in {path} is kept as it is" if peer in old
                else f"no entry for it in {path} yet")
        warnings.append(f"{peer} {why} (its xen_migrate.key state has not run): {kept}; "
                        "the next run after it has adds it")
    text = trust.plan_authorized(current or "", entries, wrapper)
    new = trust.authorized_peers(text)
    plan = {"path": path, "text": text, "current": current, "mode": trust.PRIVATE_MODE,
            "directory_mode": trust.PRIVATE_DIRECTORY_MODE, "diff": _peer_diff(old, new)}
    return plan, warnings


def _plan_known_hosts(path, peers, published):
    current = _read_text(path)
    old = trust.known_hosts_peers(current)
    wanted, warnings = {}, []
    for peer, where in peers.items():
        if peer in published:
            host_keys = published[peer]["host_keys"]
            if not host_keys:
                warnings.append(f"{peer} published no ssh host keys: {path} has none for it "
                                "and migrations to it fail host key checking")
        else:
            host_keys = old.get(peer, {}).get("host_keys", [])
        wanted[peer] = dict(where, host_keys=host_keys)
    text = trust.plan_known_hosts(wanted)
    new = trust.known_hosts_peers(text)
    plan = {"path": path, "text": text, "current": current, "mode": 0o644,
            "directory_mode": trust.PRIVATE_DIRECTORY_MODE, "diff": _peer_diff(old, new)}
    return plan, warnings


def _plan_wrapper(path):
    current = _read_text(path)
    plan = {"path": path, "text": trust.wrapper_text(), "current": current,
            "mode": trust.WRAPPER_MODE, "directory_mode": 0o755, "exact_mode": True, "diff": {}}
    mode = __salt__["xen_migrate.file_mode"](path)
    if current is not None and mode != trust.WRAPPER_MODE:
        plan["diff"]["mode"] = {"old": _octal(mode), "new": _octal(trust.WRAPPER_MODE)}
    if current is not None and current != plan["text"]:
        plan["diff"]["content"] = "rewritten"
    return plan


def _change(plan):
    """The changes entry of one file's plan, or None when it is as planned."""
    if plan["current"] is None and not plan["text"]:
        return None  # no authorized_keys, and no entry to put in one
    if plan["current"] is None:
        return dict({"path": plan["path"], "created": True}, **plan["diff"])
    if plan["text"] == plan["current"] and not plan["diff"].get("mode"):
        return None
    return dict({"path": plan["path"]}, **plan["diff"])


def _describe(change):
    parts = ["created"] if change.get("created") else []
    for kind in ("added", "updated", "removed"):
        if change.get(kind):
            parts.append(f"{kind} {', '.join(change[kind])}")
    if change.get("content") and not change.get("created"):
        parts.append("rewritten")
    if change.get("mode"):
        parts.append(f"mode {change['mode']['old']} -> {change['mode']['new']}")
    return f"{change['path']} ({', '.join(parts) or 'rewritten'})"




def _sentences(comment, warnings):
    if warnings:
        comment += " Warning: " + ". Warning: ".join(warnings) + "."
    return comment


def trusted(name, peers, known_hosts=True, wrapper=True):
    """
    This dom0 trusts its migration peers, and only them: each peer's
    migration key (from the mine) may run ``xl migrate-receive`` here, from
    the peer's address only, and this dom0's ssh trusts each peer's host keys
    when it sends a guest there.

    name
        The ``authorized_keys`` to manage (the formula's default:
        ``/root/.ssh/authorized_keys``; created 0600, its directory 0700,
        when missing). Its lines other than the peers' entries (comment
        ``xen-nfsroot-migrate@<peer>``) are kept byte for byte.
    peers
        The other dom0s: ``{minion id: address}``, or ``{minion id:
        {address: ADDRESS, port: PORT}}`` for a peer whose sshd listens on
        another port than 22. The address is the one the peer connects from
        (sshd's ``from=`` matches the client's IP address) and the one this
        dom0 connects to. A peer no longer listed loses its entry.
    known_hosts
        ``True``: write ``/etc/xen-nfsroot/known_hosts`` (the file
        ``trust.ssh_command`` names); a path: write that file instead;
        ``False``: leave it alone. The file is the formula's own: it holds
        the peers' host keys and nothing else.
    wrapper
        ``True``: install the forced command at
        ``/usr/local/sbin/xen-nfsroot-migrate-receive`` (mode 0755); a path:
        install it there (the entries name that path); ``False``: leave it
        alone (the entries name the default path).

    Every peer's mined keys are checked before anything is written: a key
    that is not a valid OpenSSH public key fails the state, names the peer
    and the value, and nothing changes.
    """
    ret = _ret(name)
    test = bool(__opts__.get("test"))
    try:
        path = trust.check_path(name, "name")
        checked = trust.check_peers(peers)
        hosts_path = _choose_path(known_hosts, trust.KNOWN_HOSTS, "known_hosts")
        wrapper_path = _choose_path(wrapper, trust.WRAPPER, "wrapper")
        published = _mined(checked)
        plans = []
        if wrapper_path:
            plans.append(("wrapper", _plan_wrapper(wrapper_path)))
        warnings = []
        if hosts_path:
            plan, more = _plan_known_hosts(hosts_path, checked, published)
            plans.append(("known_hosts", plan))
            warnings += more
        plan, more = _plan_authorized(path, checked, published, wrapper_path or trust.WRAPPER)
        plans.append(("authorized_keys", plan))
        warnings = more + warnings
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    who = ", ".join(sorted(checked)) or "no peer"
    pending = [(role, plan, _change(plan)) for role, plan in plans]
    pending = [(role, plan, change) for role, plan, change in pending if change]
    if warnings:
        ret["warnings"] = warnings
    if not pending:
        files = ", ".join(plan["path"] for _, plan in plans)
        ret["comment"] = _sentences(f"The migration trust of {who} is in place ({files}).",
                                    warnings)
        return ret
    described = "; ".join(_describe(change) for _, _, change in pending)
    if test:
        ret["changes"] = {role: change for role, _, change in pending}
        ret["result"] = None
        ret["comment"] = _sentences(f"Would have updated the migration trust of {who}: "
                                    f"{described}.", warnings)
        return ret
    for role, plan, change in pending:
        try:
            _write(plan)
        except (CommandExecutionError, SaltInvocationError, OSError) as err:
            ret["result"] = False
            done = "; ".join(_describe(c) for c in ret["changes"].values())
            ret["comment"] = (f"Could not write {plan['path']}: {err}"
                              + (f" (already written: {done})" if done else ""))
            return ret
        ret["changes"][role] = change
    ret["comment"] = _sentences(f"Updated the migration trust of {who}: {described}.", warnings)
    return ret


# ---------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------


def _read_text(path):
    data = files.read(path)
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _make_directory(directory, mode):
    """Create a missing directory with mode (its missing parents 0755); an
    existing one is left as it is."""
    if os.path.isdir(directory):
        return
    os.makedirs(os.path.dirname(directory), mode=0o755, exist_ok=True)
    try:
        os.mkdir(directory, mode)
    except FileExistsError:
        return
    os.chmod(directory, mode)


def _write(plan):
    """Write one file of the plan with the library's safe file routine: only
    if it still holds what it held when it was read; its directory created
    with the plan's mode when missing; an existing file keeps its mode unless
    the plan's is exact (the wrapper must be executable)."""
    path = plan["path"]
    _make_directory(os.path.dirname(path), plan["directory_mode"])
    files.write(path, plan["text"], mode=plan["mode"],
                previous=(plan["current"] or "").encode("utf-8", "surrogateescape"))
    if plan.get("exact_mode") and __salt__["xen_migrate.file_mode"](path) != plan["mode"]:
        os.chmod(path, plan["mode"])
