"""
A guest's root filesystem, populated once from an archive.

:func:`populate_root` unpacks a root filesystem archive into a fresh
directory beside the root and renames it into place only when the root does
not exist yet: the root directory itself is the record that it was
populated, and the guest cannot remove it. The archive is fetched through
Salt (``cp.cache_file``) when it is not a local file; the member filter and
the extraction are :mod:`xen_nfsroot_lib.root_archive`.

Every other file the formula reads or writes goes through the one safe file
routine, :mod:`xen_nfsroot_lib.files` (imported by the modules that write:
``domu_fstab``, ``exportfs``, ``xen_config``, ``guest_console``,
``xen_migrate``).

.. deprecated:: this module was ``nfsroot_files``, when it also held the file
   routine; ``nfsroot_files.populate_root`` still works (an alias) and will be
   removed in a later release: call ``domu_root.populate_root``.
"""

import os
import secrets
import shutil
import stat

from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import files, root_archive

__virtualname__ = "domu_root"
#: The module's old name, kept working for callers of nfsroot_files.populate_root.
__virtual_aliases__ = ("nfsroot_files",)


def __virtual__():
    return __virtualname__


def _local_path(source):
    """The path of a local source (a path or ``file://``), or None."""
    if source.startswith("/"):
        return source
    if source.startswith("file://"):
        return source[len("file://"):]
    return None


def _fetch(source, source_hash, saltenv):
    local = _local_path(source)
    if local is None:
        local = __salt__["cp.cache_file"](source, saltenv=saltenv)
        if not local:
            raise files.TreeError(f"cannot fetch {source}")
    return _checked(source, local, source_hash)


def _checked(source, local, source_hash):
    """The archive at local, once it is a file that matches source_hash."""
    if not os.path.isfile(local):
        raise files.TreeError(f"{source}: no such archive")
    if source_hash:
        root_archive.check_hash(local, source_hash)
    return local


def _root_entry(parent, base, root):
    """The kind of what stands at root now, or None when nothing does."""
    try:
        info = os.stat(base, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        raise files.TreeError(f"{root} is {files.describe(info.st_mode)}, not a directory",
                              refused=True)
    return "directory"


def _remove_stale_populations(parent, parent_path, base):
    prefix = f".{base}{files.TEMP_TAG}populate-"
    for entry in os.listdir(parent):
        if entry.startswith(prefix):
            shutil.rmtree(os.path.join(parent_path, entry), ignore_errors=True)


def populate_root(name, source, source_hash=None, skip_verify=False, saltenv="base",  # noqa: PLR0913,PLR0917 (Salt calls it with keywords)
                  test=False):
    """
    Create a guest's root directory from a tar archive, once.

    The archive (``salt://``, ``http(s)://``, ``file://`` or a local path;
    compression detected) is unpacked into a fresh private directory beside
    ``name`` on the same filesystem, every member checked first: an absolute
    path, a ``..`` component, a member that would be written through a link,
    a hard link leaving the tree, a device node or FIFO fails the whole
    population and leaves nothing behind. Modes, owners (numeric ids) and
    symbolic links are kept, as a root filesystem needs them. The directory
    is then renamed to ``name``, only if ``name`` does not exist: an existing
    root is never extracted into, whatever it holds, since its guest may
    already write there.

    name
        The guest's root directory (``nfs_root``); its parent must exist.
    source, source_hash, skip_verify
        The archive, its hash (``sha256=HEX`` or a bare hex digest; required
        for remote sources unless ``skip_verify``).
    test
        Only say whether it would populate (a local archive is checked
        too: a missing file or a wrong hash fails as the run would).

    Returns ``{"name": name, "populated": bool, "members": N}``
    (``populated`` False: the root exists already).

    CLI Example:

    .. code-block:: bash

        salt nfs1 domu_root.populate_root /xen salt://roots/xenguest.tar.xz
    """
    name = files.check_absolute(name, "name")
    if name == "/":
        raise SaltInvocationError("name: refusing to populate this machine's own root '/'")
    archive = root_archive.check_archive({"source": source, "source_hash": source_hash,
                                          "skip_verify": skip_verify}, "root_archive")
    parent_path, base = os.path.split(name)
    try:
        parent = os.open(parent_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise files.TreeError(f"cannot open {parent_path}: {err.strerror}") from None
    try:
        with files.locked(parent):
            if _root_entry(parent, base, name) is not None:
                return {"name": name, "populated": False, "members": 0}
            if test:
                # A local archive is checked as the run would: a missing
                # file or a wrong hash is predicted, not found later.
                if _local_path(source) is not None:
                    _checked(source, _local_path(source), archive["source_hash"])
                return {"name": name, "populated": True, "members": None}
            _remove_stale_populations(parent, parent_path, base)
            archive = _fetch(source, archive["source_hash"], saltenv)
            fresh = f".{base}{files.TEMP_TAG}populate-{secrets.token_hex(8)}"
            os.mkdir(fresh, 0o700, dir_fd=parent)
            destination = os.path.realpath(os.path.join(parent_path, fresh))
            try:
                count, root_mode = root_archive.extract(archive, destination)
                if not root_mode:
                    os.chmod(fresh, 0o755, dir_fd=parent)
                os.rename(fresh, base, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                shutil.rmtree(destination, ignore_errors=True)
                raise
            os.fsync(parent)
    finally:
        os.close(parent)
    return {"name": name, "populated": True, "members": count}
