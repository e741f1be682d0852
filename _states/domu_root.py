"""
A guest's root directory, populated once from a root filesystem archive.

.. code-block:: yaml

    /xen:
      domu_root.populated:
        - source: salt://roots/xenguest.tar.xz
        - source_hash: sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

The archive is unpacked into a fresh private directory beside the root and
renamed into place only when the root does not exist: a root that exists is
never extracted into again, whatever it holds (its guest may be writing
there, and may have planted links for an extraction to follow). The root
directory itself is the record that it was populated; to populate it again,
remove it. Unsafe members (absolute paths, ``..``, members written through a
link, hard links out of the tree, device nodes) fail the state and leave
nothing behind. The work is done by ``domu_root.populate_root`` (the execution module).
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "domu_root"


def __virtual__():
    if "domu_root.populate_root" in __salt__:
        return __virtualname__
    return (False, "domu_root: the domu_root execution module is not loaded")


def populated(name, source, source_hash=None, skip_verify=False):
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
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        outcome = __salt__["domu_root.populate_root"](
            name, source, source_hash=source_hash, skip_verify=skip_verify,
            saltenv=globals().get("__env__", "base"), test=__opts__["test"],
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if not outcome["populated"]:
        ret["comment"] = f"{name} exists: not populated again from {source}"
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"populated": {"source": source}}
        ret["comment"] = f"Would have populated {name} from {source}"
        return ret
    ret["changes"] = {"populated": {"source": source, "members": outcome["members"]}}
    ret["comment"] = f"Populated {name} from {source} ({outcome['members']} members)"
    return ret
