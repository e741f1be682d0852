"""The guest's ``/etc/fstab`` inside the root tree an NFS server exports.

.. code-block:: yaml

    /xen:
      domu_fstab.nfs_root:
        - opts: defaults
        - disable: [/dev/sdb2]     # default: every local-disk line

    /home in XenGuest:
      domu_fstab.present:
        - name: /home
        - root: /xen
        - device: 192.0.2.1:/home
        - fstype: nfs

Lines are never deleted: a line switched off is commented out with the prefix
``#xen-nfsroot# `` followed by its exact text, so it can be restored. The disk
root line is commented out and the ``/dev/nfs`` line placed right below it.
Every line the state does not own is kept byte for byte; files are replaced
atomically and keep their mode and owner. The work is done by the
``domu_fstab`` execution module, on the line model of
:mod:`xen_nfsroot_lib.fstab`.
"""

import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import fstab

__virtualname__ = "domu_fstab"


def __virtual__():
    if "domu_fstab.set_nfs_root" in __salt__:
        return __virtualname__
    return (False, "domu_fstab: the domu_fstab execution module is not loaded")


def _plural(count, singular, plural):
    return f"{count} {singular if count == 1 else plural}"


def _mounts(lines):
    """'device mount-point' of each line, for comments."""
    return ", ".join(" ".join(line.split()[:2]) for line in lines)


def _capitalize(text):
    return text[:1].upper() + text[1:]


def _report(ret, changes, parts, path, kind):
    """The state's changes and comment: what changed (parts), then the lines
    commented out (of this kind, singular and plural)."""
    disabled = changes.get("disabled", [])
    if disabled:
        where = "" if parts else f" in {path}"
        parts.append(
            f"commented out {_plural(len(disabled), *kind)}{where}: {_mounts(disabled)}"
        )
    ret["changes"] = changes
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "Would have " + " and ".join(parts)
    else:
        ret["comment"] = _capitalize(" and ".join(parts))
    return ret


def _failed(ret, err):
    ret["result"] = False
    ret["comment"] = str(err)
    return ret


def nfs_root(  # noqa: PLR0913,PLR0917 (Salt calls states with keywords)
    name, fstype="nfs", opts="defaults", dump=0, pass_num=0, disable=None,
):
    """
    Make the guest whose root directory on this server is ``name`` (e.g.
    ``/xen``) mount ``/`` from ``/dev/nfs``, in ``<name>/etc/fstab``.

    name
        The guest's root directory; it must hold an ``etc/`` directory.
        ``etc/fstab`` is created when missing.
    fstype, opts, dump, pass_num
        The rest of the root line: ``/dev/nfs / <fstype> <opts> <dump> <pass_num>``.
    disable
        Devices or mount points whose lines are commented out. Default (None):
        every local-disk line (``/dev/...`` other than ``/dev/nfs``, ``UUID=``,
        ``LABEL=``, ``PARTUUID=``, ``PARTLABEL=``, ``ID=``; not pseudo, network or
        bind mounts). ``[]`` comments out none.

    The old disk root line is commented out and the new line placed right
    below it; a ``/dev/nfs`` root line with other settings is updated in place.
    ``changes``: ``root`` (``old``/``new`` root line), ``disabled`` (lines
    commented out), ``created`` (path, when the file was created).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        changes = __salt__["domu_fstab.set_nfs_root"](
            name,
            fstype=fstype,
            opts=opts,
            dump=dump,
            pass_num=pass_num,
            disable=disable,
            test=__opts__["test"],
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)

    path = os.path.join(name, "etc", "fstab")
    if disable is None:
        kind, kinds = "local-disk line", "local-disk lines"
    else:
        kind, kinds = "line listed in disable", "lines listed in disable"
    if not changes:
        options = ",".join(opts) if isinstance(opts, (list, tuple)) else opts
        ret["comment"] = (
            f"{path} already mounts / from /dev/nfs "
            f"(/dev/nfs / {fstype} {options} {dump} {pass_num}) and has no active {kind}"
        )
        return ret

    parts = []
    root = changes.get("root")
    if "created" in changes:
        parts.append(f"created {path} with the root line {root['new']}")
    elif root and root["old"] is None:
        parts.append(f"added the root line {root['new']} to {path}")
    elif root and root["old"].split()[0] == fstab.NFS_ROOT_DEVICE:
        parts.append(f"set the root line of {path} to {root['new']} (was: {root['old']})")
    elif root:
        parts.append(
            f"set the root line of {path} to {root['new']} "
            f"(old root line commented out: {root['old']})"
        )
    return _report(ret, changes, parts, path, (kind, kinds))


def present(  # noqa: PLR0913,PLR0917 (Salt calls states with keywords)
    name, root, device, fstype, opts="defaults", dump=0, pass_num=0,
):
    """
    Make one entry of a guest's fstab read ``device name fstype opts dump pass_num``.

    name
        Mount point (absolute path, or ``swap``/``none`` for swap areas).
    root
        The guest's root directory on this server (holding ``etc/``).
    device, fstype, opts, dump, pass_num
        The entry's other fields.

    The entry is matched by mount point (by mount point and device for ``swap``
    and ``none``): a different one is rewritten in place, duplicates are
    commented out; a line this formula commented out that holds exactly this
    entry is restored; otherwise the entry is appended. ``changes``: ``entry``
    (``old``/``new`` line), ``disabled``, ``created``.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        changes = __salt__["domu_fstab.set_entry"](
            name,
            root,
            device,
            fstype,
            opts=opts,
            dump=dump,
            pass_num=pass_num,
            test=__opts__["test"],
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)

    path = os.path.join(root, "etc", "fstab")
    if not changes:
        ret["comment"] = f"Entry for {name} in {path} is already present"
        return ret

    entry = changes.get("entry")
    parts = []
    if "created" in changes:
        parts.append(f"created {path} with the entry {entry['new']}")
    elif entry and entry["old"] is None:
        parts.append(f"added the entry {entry['new']} to {path}")
    elif entry and entry["old"].startswith("#"):
        parts.append(f"restored the commented-out entry {entry['new']} in {path}")
    elif entry:
        parts.append(
            f"changed the entry for {name} in {path} to {entry['new']} (was: {entry['old']})"
        )
    return _report(ret, changes, parts, path, ("duplicate line", "duplicate lines"))


def absent(name, root, device=None):
    """
    Comment out (never delete) the entries for mount point ``name`` (and, when
    given, from ``device``) in the fstab of the guest whose root directory is
    ``root``. ``changes``: ``disabled`` (the lines commented out).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        changes = __salt__["domu_fstab.rm_entry"](
            name, root, device=device, test=__opts__["test"]
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)

    path = os.path.join(root, "etc", "fstab")
    which = name if device is None else f"{device} on {name}"
    if not changes:
        ret["comment"] = f"No active entry for {which} in {path}"
        return ret
    disabled = changes["disabled"]
    count = _plural(len(disabled), "line", "lines")
    text = f"commented out {count} for {which} in {path}: " + "; ".join(disabled)
    ret["changes"] = changes
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "Would have " + text
    else:
        ret["comment"] = _capitalize(text)
    return ret
