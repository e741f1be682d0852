"""
A guest's root directory, populated once from a root filesystem archive.

.. code-block:: yaml

    /xen:
      domu_root.populated:
        - source: salt://roots/xenguest.tar.xz
        - source_hash: sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

    /xen:
      domu_root.confined: []

The archive is unpacked into a fresh private directory beside the root and
renamed into place only when the root does not exist: a root that exists is
never extracted into again, whatever it holds (its guest may be writing
there, and may have planted links for an extraction to follow). The root
directory itself is the record that it was populated; to populate it again,
remove it. Unsafe members (absolute paths, ``..``, members written through a
link, hard links out of the tree, device nodes) fail the state and leave
nothing behind. The work is done by ``domu_root.populate_root`` (the execution module).

``confined`` mounts the root onto itself ``nosuid,nodev`` and keeps that
mount in ``/etc/fstab``: the server's local users can then neither run the
guest's set-id programs nor open its device nodes, while the guest keeps
both (``domu_root.confine``). ``populated`` with ``confine: True`` mounts a
new root so before anyone but root can traverse it.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import mounts

__virtualname__ = "domu_root"


def __virtual__():
    if "domu_root.populate_root" in __salt__:
        return __virtualname__
    return (False, "domu_root: the domu_root execution module is not loaded")


def populated(name, source, source_hash=None, skip_verify=False, confine=False):
    """
    The guest root directory ``name`` exists; when it does not, it is created
    from the tar archive ``source``.

    name
        The guest's root directory on this server (``nfs_root``).
    source
        The archive: ``salt://``, ``http(s)://``, ``file://`` or a local path
        (gzip, bzip2 and xz compression are detected).
    source_hash
        ``ALGORITHM=HEX`` (or a bare hexadecimal digest); required for remote
        sources unless ``skip_verify`` is true.
    confine
        Unless a mount above it confines it already, mount a new root onto
        itself ``nosuid,nodev`` before anyone but root can traverse it
        (``confined`` then keeps the mount in the fstab).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        outcome = __salt__["domu_root.populate_root"](
            name, source, source_hash=source_hash, skip_verify=skip_verify,
            saltenv=globals().get("__env__", "base"), test=__opts__["test"], confine=confine,
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if not outcome["populated"]:
        ret["comment"] = f"{name} exists: not populated again from {source}"
        return ret
    confined = " and mounted it nosuid,nodev" if outcome.get("mounted") else ""
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"populated": {"source": source}}
        if outcome.get("mounted"):
            ret["changes"]["mounted"] = ",".join(mounts.FLAGS)
        ret["comment"] = f"Would have populated {name} from {source}{confined}"
        return ret
    ret["changes"] = {"populated": {"source": source, "members": outcome["members"]}}
    if outcome.get("mounted"):
        ret["changes"]["mounted"] = ",".join(mounts.FLAGS)
    ret["comment"] = (f"Populated {name} from {source} ({outcome['members']} members)"
                      f"{confined}")
    return ret


def confined(name, persist=True, config="/etc/fstab"):
    """
    The guest root ``name`` is mounted onto itself ``nosuid,nodev``, and (with
    ``persist``) that mount is in ``config``; a root that is a mount point of
    its own needs both flags on its own mount (the state says how).

    name
        The guest's root directory on this server (``nfs_root``).
    persist
        Keep the mount in ``config`` (``NAME NAME none bind,nosuid,nodev 0
        0``), unless another line there mounts something on ``name``.
    config
        The server's fstab.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        outcome = __salt__["domu_root.confine"](name, persist=persist, config=config,
                                                test=__opts__["test"])
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    flags = ",".join(mounts.FLAGS)
    if outcome.get("missing"):
        # Only in test mode: the root is populated (and mounted) by a state before this one.
        ret["result"] = None
        ret["comment"] = (f"{name} does not exist yet: a domu_root.populated state before "
                          f"this one creates it and mounts it {flags}")
        if outcome["fstab"]:
            ret["changes"]["fstab"] = outcome["fstab"]
        return ret
    if outcome["mounted"]:
        ret["changes"]["mounted"] = flags
    if outcome["fstab"]:
        ret["changes"]["fstab"] = outcome["fstab"]
    if not ret["changes"]:
        holder = outcome["mount_point"]
        ret["comment"] = (f"{name} is mounted {flags}" if holder == name
                          else f"{name} is on a {flags} mount ({holder})")
        return ret
    line = (f"{'added' if outcome['fstab']['entry']['old'] is None else 'set'} its line in "
            f"{config}" if outcome["fstab"] else "")
    if outcome["mounted"]:
        done = " and ".join(part for part in (f"mounted {name} onto itself {flags}", line)
                            if part)
        ret["comment"] = f"Would have {done}" if __opts__["test"] else _sentence(done)
    else:
        would = "would have " if __opts__["test"] else ""
        ret["comment"] = f"{name} is mounted {flags}; {would}{line}"
    if __opts__["test"]:
        ret["result"] = None
    return ret


def _sentence(text):
    return text[0].upper() + text[1:]
