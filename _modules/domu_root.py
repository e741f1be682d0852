"""
A guest's root filesystem, populated once from an archive.

:func:`populate_root` unpacks a root filesystem archive into a fresh
directory beside the root and renames it into place only when the root does
not exist yet: the root directory itself is the record that it was
populated, and the guest cannot remove it. The archive is fetched through
Salt (``cp.cache_file``) when it is not a local file; the member filter and
the extraction are :mod:`xen_nfsroot_lib.root_archive`.

:func:`confine` mounts a root onto itself ``nosuid,nodev`` (and keeps the
mount in the server's fstab), so that the server's local users cannot run the
guest's set-id programs or open its device nodes; the rules are
:mod:`xen_nfsroot_lib.mounts`. A root populated with ``confine`` is mounted so
before anyone but root can traverse it.

Every other file the formula reads or writes goes through the one safe file
routine, :mod:`xen_nfsroot_lib.files` (imported by the modules that write:
``domu_fstab``, ``exportfs``, ``xen_config``, ``guest_console``,
``xen_migrate``).

.. deprecated:: this module was ``nfsroot_files``, when it also held the file
   routine; ``nfsroot_files.populate_root`` still works (an alias) and will be
   removed in a later release: call ``domu_root.populate_root``.
"""

import ctypes
import os
import secrets
import shutil
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import files, fstab, mounts, root_archive

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
                  test=False, confine=False):
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
    confine
        Unless a mount above it confines it already, mount the new root onto
        itself ``nosuid,nodev`` (:func:`confine`, without its fstab line)
        while only root can traverse it, then give it the archive's mode.
        When the mount fails, the new root is removed again and the error
        raised.

    Returns ``{"name": name, "populated": bool, "members": N, "mounted":
    bool}`` (``populated`` False: the root exists already; ``mounted``: the
    new root was mounted ``nosuid,nodev``).

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
                return {"name": name, "populated": False, "members": 0, "mounted": False}
            bind = confine and mounts.plan(_live_mounts(), name).action == "mount"
            if test:
                # A local archive is checked as the run would: a missing
                # file or a wrong hash is predicted, not found later.
                if _local_path(source) is not None:
                    _checked(source, _local_path(source), archive["source_hash"])
                return {"name": name, "populated": True, "members": None, "mounted": bind}
            _remove_stale_populations(parent, parent_path, base)
            archive = _fetch(source, archive["source_hash"], saltenv)
            fresh = f".{base}{files.TEMP_TAG}populate-{secrets.token_hex(8)}"
            os.mkdir(fresh, 0o700, dir_fd=parent)
            destination = os.path.realpath(os.path.join(parent_path, fresh))
            try:
                count, root_mode = root_archive.extract(archive, destination)
                mode = stat.S_IMODE(os.stat(fresh, dir_fd=parent).st_mode) if root_mode else 0o755
                if bind:
                    os.chmod(fresh, 0o700, dir_fd=parent)
                os.rename(fresh, base, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                shutil.rmtree(destination, ignore_errors=True)
                raise
            if bind:
                try:
                    _mount(name)
                except BaseException:
                    os.rename(base, fresh, src_dir_fd=parent, dst_dir_fd=parent)
                    shutil.rmtree(destination, ignore_errors=True)
                    raise
            os.chmod(base, mode, dir_fd=parent)
            os.fsync(parent)
    finally:
        os.close(parent)
    return {"name": name, "populated": True, "members": count, "mounted": bind}


# ---------------------------------------------------------------------------
# Confinement: the root mounted onto itself nosuid,nodev
# ---------------------------------------------------------------------------


def _live_mounts():
    """The live mounts indexed by mount point, read once per run."""
    if "domu_root.mounts" not in __context__:
        with open(mounts.MOUNTINFO, encoding="utf-8", errors="surrogateescape") as handle:
            __context__["domu_root.mounts"] = mounts.index(mounts.parse(handle.read()))
    return __context__["domu_root.mounts"]


def _libc():
    """The C library's mount(2) and umount2(2), with errno kept."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p)
    libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
    return libc


def _syscall(call, *args):
    """One mount(2) or umount2(2); OSError with its errno when it fails."""
    if call(*args) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _mount(name):
    """Bind-mount the root onto itself, then give the mount nosuid,nodev:
    mount(2) itself, as ``mount --bind -o nosuid,nodev NAME NAME`` calls it,
    so that a run confines any number of roots without a process each. A
    bind mount the flags could not be given is undone."""
    mounts.check_root(name)
    libc, path = _libc(), os.fsencode(name)
    bind, remount = mounts.BIND_CALLS
    try:
        _syscall(libc.mount, path, path, None, bind, None)
    except OSError as err:
        raise CommandExecutionError(f"the bind mount of {name} onto itself failed: "
                                    f"{err.strerror}") from None
    try:
        _syscall(libc.mount, None, path, None, remount, None)
    except OSError as err:
        undone = "undone"
        try:
            _syscall(libc.umount2, path, 0)
        except OSError as undo:
            undone = f"NOT undone ({undo.strerror}): umount {name}"
        raise CommandExecutionError(
            f"the bind mount of {name} could not be made nosuid,nodev: {err.strerror}; "
            f"the bind mount was {undone}") from None
    __context__["domu_root.mounts"] = mounts.confined(_live_mounts(), name)


def _fstab_index(config, data):
    """The run's index of ``config`` (:class:`~xen_nfsroot_lib.fstab.MountIndex`),
    made again only when the file's bytes are not those it indexed."""
    key = ("domu_root.fstab", config)
    cached = __context__.get(key)
    if cached is None or cached[0] != data:
        cached = (data, fstab.MountIndex(data.decode("utf-8", "surrogateescape")))
        __context__[key] = cached
    return cached[1]


def _persist(name, config, test):
    """The fstab line of the bind mount in ``config`` (the formula's line,
    found by mount point and device; every other line kept as it is). None
    is added where another line mounts something on the root: a second line
    for one mount point is one too many for systemd's fstab generator. The
    file is read for each root, but parsed once per run while only this
    state changes it (an appended line joins the index); written atomically,
    against the bytes read."""
    wanted = {"device": name, "name": name, "fstype": mounts.BIND_FSTYPE,
              "opts": ",".join(mounts.BIND_OPTIONS), "dump": 0, "pass_num": 0}
    key = ("domu_root.fstab", config)

    def change(data):
        index = _fstab_index(config, data or b"")
        if index.others_on(name, name) or index.holds(wanted):
            return None, ({}, None)
        if test:
            return None, (fstab.plan_entry(index.text, name, name, wanted["fstype"],
                                           wanted["opts"], stacked=True)[1], None)
        # index.append changes the run's index in place: it is dropped now
        # and kept again only once the file holds the line (below).
        __context__.pop(key, None)
        new_text, changes = index.append(wanted) or fstab.plan_entry(
            index.text, name, name, wanted["fstype"], wanted["opts"], stacked=True)
        new_data = new_text.encode("utf-8", "surrogateescape")
        return new_data, (changes, (new_data, index if index.text == new_text
                                    else fstab.MountIndex(new_text)))

    changes, indexed = files.edit(config, change)
    if indexed is not None:
        __context__[key] = indexed
    return changes


def confine(name, persist=True, config="/etc/fstab", test=False):
    """
    Mount the guest root ``name`` onto itself ``nosuid,nodev`` on this NFS
    server, so that its local users can neither run the guest's set-id
    programs nor open its device nodes, while the guest, whose own NFS mount
    is not ``nosuid``, keeps both. The live mounts are read once per run
    (``/proc/self/mountinfo``); the mount is made with mount(2), as ``mount
    --bind -o nosuid,nodev NAME NAME`` makes it, without a process per root.

    A root held by a mount that has both flags (its own, or one of a
    directory above it) is left as it is. A root that is a mount point of
    its own (a dedicated file system) without them is refused with the fix,
    since that mount's fstab line is the admin's.

    persist
        Keep the bind mount in ``config`` (``NAME NAME none bind,nosuid,nodev
        0 0``, appended after every other line, so that it mounts after what
        holds the root), written atomically, every other line kept; not
        where another line of ``config`` mounts something on ``name``.
    test
        Only say what would be done.

    Returns ``{"name": name, "mounted": bool, "fstab": changes,
    "mount_point": path}`` (``mounted``: a mount was or would be made;
    ``mount_point``: where the mount that confines the root is), plus ``"missing": True``
    when ``test`` is true and ``name`` does not exist yet.

    CLI Example:

    .. code-block:: bash

        salt nfs1 domu_root.confine /xen test=True
    """
    mounts.check_root(name)
    files.check_absolute(config, "config")
    needed = mounts.plan(_live_mounts(), name)
    if needed.action == "refuse":
        raise mounts.refusal(name, needed.missing)
    if needed.action == "mount":
        try:
            info = os.stat(name, follow_symlinks=False)
        except FileNotFoundError:
            if test:
                return {"name": name, "mounted": False, "missing": True, "mount_point": name,
                        "fstab": _persist(name, config, test) if persist else {}}
            raise CommandExecutionError(f"{name} does not exist") from None
        if not stat.S_ISDIR(info.st_mode):
            raise files.TreeError(f"{name} is {files.describe(info.st_mode)}, not a directory",
                                  refused=True)
        if not test:
            _mount(name)
    # A mount above the root that confines it is someone else's: no line for it.
    own = needed.action == "mount" or needed.mount_point == name
    changes = _persist(name, config, test) if persist and own else {}
    return {"name": name, "mounted": needed.action == "mount", "fstab": changes,
            "mount_point": name if own else needed.mount_point}
