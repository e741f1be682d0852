"""
Every file the formula reads or writes, through one routine with one policy.

A guest's root tree is hostile ground: it is exported ``rw,no_root_squash``,
so the guest's root user owns every byte and every directory entry under
``nfs_root`` and can change them while the server works in it, as root.
With ``root`` given, a path is taken relative to that root and reached one
component at a time through directory descriptors opened with
``O_DIRECTORY|O_NOFOLLOW``; a file is opened with ``O_NOFOLLOW|O_NONBLOCK``
relative to its directory's descriptor and checked with ``fstat`` on the open
descriptor, never by a path looked up again after a check. Whatever the guest
does meanwhile, nothing outside its tree is read, written, chmod-ed or
renamed:

* a symbolic link, a file with more than one hard link (the other name may
  lie outside the tree), a FIFO, a device, a socket or a directory where a
  file is expected is refused, with the reason;
* a write goes to a new temporary file (``O_CREAT|O_EXCL|O_NOFOLLOW``
  relative to the directory descriptor), whose owner and mode are set with
  ``fchown``/``fchmod`` on its descriptor, is ``fsync``-ed, then renamed over
  the file within the same directory descriptor: the rename replaces a
  directory entry and never writes through a link the guest planted.

Without ``root`` the path names one of the server's or the dom0's own files
(``/etc/exports.d/xen-nfsroot.exports``, ``/etc/xen/NAME.cfg``); it is
resolved once (an administrator's symlink is followed) and then written by
the same routine.

The write policy: temporary file in the file's own directory, ``fsync`` of
the file and (unless the caller batches it) of the directory, the mode and
owner of the file it replaces kept, a new file created with the mode the
caller states and the owner and group of its directory. Writers of one
directory are serialised by an exclusive ``flock`` on that directory's
descriptor; under that lock, temporary files left by a killed run are
removed. ``previous`` makes a write conditional on the file's content
(compare and swap), for callers that read, edit and write back.
"""

import contextlib
import errno
import fcntl
import os
import secrets
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import values

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Marks the formula's temporary files: ``.<name>.xen-nfsroot-<random>.tmp``.
TEMP_TAG = ".xen-nfsroot-"
#: Largest file read (fstabs, exports files, configs are small).
MAX_READ = 64 * 1024 * 1024
#: Kinds of directory entries, for messages.
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class TreeError(CommandExecutionError):
    """An operation refused or failed; ``refused`` is True when the tree
    held something the formula does not follow or write through, and
    ``conflict`` True when ``previous`` no longer matched."""

    def __init__(self, message, refused=False, conflict=False, missing=False):
        super().__init__(message)
        self.refused = refused
        self.conflict = conflict
        self.missing = missing


# ---------------------------------------------------------------------------
# Paths and directory descriptors
# ---------------------------------------------------------------------------


def describe(mode):
    """What a directory entry of this ``st_mode`` is, for messages
    (``a symbolic link``, ``a FIFO``, ...)."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def check_absolute(path, field="path"):
    """An absolute, normalised path of this machine (a trailing ``/`` is
    allowed), returned without its trailing ``/``."""
    values.check_absolute_path(path, field)
    if os.path.normpath(path) != (path.rstrip("/") or "/"):
        raise values.invalid(field, path, "must be a normalised absolute path")
    return path.rstrip("/") or "/"


def _components(path):
    """The components of a path inside a tree ('etc/fstab' -> ['etc', 'fstab'])."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\0" in path:
        raise values.invalid("path", path, "is not a relative path inside the tree")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise values.invalid("path", path, "must not hold '', '.' or '..' components")
    return parts


def _open_root(root):
    """A descriptor of a guest root directory (itself not a symlink), checked
    not to be this machine's own root."""
    root = check_absolute(root, "root")
    try:
        fd = os.open(root, _DIRECTORY)
    except FileNotFoundError:
        raise TreeError(f"{root}: no such directory") from None
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise TreeError(f"{root} is not a directory (a symbolic link or a file)",
                            refused=True) from None
        raise TreeError(f"cannot open {root}: {err.strerror}") from None
    info = os.fstat(fd)
    own = os.stat("/")
    if (info.st_dev, info.st_ino) == (own.st_dev, own.st_ino):
        os.close(fd)
        raise TreeError(f"{root} is this machine's own root, not a guest's root directory",
                        refused=True)
    return fd


def _open_subdirectory(parent, name, shown):
    try:
        return os.open(name, _DIRECTORY, dir_fd=parent)
    except FileNotFoundError:
        raise TreeError(f"{shown} does not exist") from None
    except OSError as err:
        if err.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise TreeError(f"cannot open {shown}: {err.strerror}") from None
    kind = describe(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    raise TreeError(f"{shown} is {kind}, not a directory: refusing to follow it", refused=True)


@contextlib.contextmanager
def _directory(path, root=None, makedirs=False):
    """Yield (directory descriptor, file name, path for messages) of path.

    With root: path is relative to root and every directory on the way is
    opened with O_NOFOLLOW. Without: path is absolute, resolved once.
    """
    if root is None:
        path = check_absolute(path, "path")
        real = os.path.realpath(path)
        directory, name = os.path.split(real)
        if makedirs:
            try:
                os.makedirs(directory, mode=0o755, exist_ok=True)
            except OSError as err:
                raise TreeError(f"cannot create {directory}: {err.strerror}") from None
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TreeError(f"{directory} does not exist", missing=True) from None
        except OSError as err:
            raise TreeError(f"cannot open {directory}: {err.strerror}") from None
        try:
            yield fd, name, path
        finally:
            os.close(fd)
        return
    parts = _components(path)
    fd = _open_root(root)
    shown = root.rstrip("/")
    try:
        for part in parts[:-1]:
            shown = f"{shown}/{part}"
            child = _open_subdirectory(fd, part, shown)
            os.close(fd)
            fd = child
        yield fd, parts[-1], f"{shown}/{parts[-1]}"
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(fd):
    """Hold an exclusive ``flock`` on a directory descriptor: writers of one
    directory are serialised."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _open_file(fd, name, shown):
    """(descriptor, fstat) of a regular file with one link, or (None, None)."""
    try:
        before = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(before.st_mode):
        raise TreeError(f"{shown} is {describe(before.st_mode)}: refusing to follow or read it",
                        refused=True)
    try:
        handle = os.open(name, _READ, dir_fd=fd)
    except FileNotFoundError:
        return None, None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise TreeError(f"{shown} became a symbolic link: refusing to follow it",
                            refused=True) from None
        raise TreeError(f"cannot read {shown}: {err.strerror}") from None
    info = os.fstat(handle)
    problem = None
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (
            before.st_dev, before.st_ino):
        problem = f"{shown} was replaced while it was opened: refusing to read it"
    elif info.st_nlink > 1:
        problem = (f"{shown} has {info.st_nlink} hard links (another name may lie outside "
                   "the tree): refusing to read or replace it")
    if problem:
        os.close(handle)
        raise TreeError(problem, refused=True)
    return handle, info


def _read_all(handle, shown):
    chunks = []
    size = 0
    while True:
        chunk = os.read(handle, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_READ:
            raise TreeError(f"{shown} is larger than {MAX_READ} bytes", refused=True)
        chunks.append(chunk)


def _read_at(fd, name, shown):
    """(bytes, fstat) of a file in the directory fd, or (None, None)."""
    handle, info = _open_file(fd, name, shown)
    if handle is None:
        return None, None
    try:
        return _read_all(handle, shown), info
    finally:
        os.close(handle)


def read(path, root=None):
    """
    Read a file: its bytes, or ``None`` when it does not exist.

    path
        With ``root``: the file's path inside that guest root tree (e.g.
        ``etc/fstab``), reached without following any symbolic link. Without:
        an absolute path of one of this machine's own files.
    root
        A guest's root directory on this server (``nfs_root``).

    A symbolic link, a file with several hard links, a FIFO, device, socket
    or directory is refused with an error saying which. One of this
    machine's own files in a directory that does not exist is missing too.
    """
    try:
        with _directory(path, root) as (fd, name, shown):
            data, _ = _read_at(fd, name, shown)
    except TreeError as err:
        if err.missing and root is None:
            return None
        raise
    return data


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _remove_stale(fd, name):
    """Remove temporary files of name left by a killed run (under the lock)."""
    prefix = f".{name}{TEMP_TAG}"
    for entry in os.listdir(fd):
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=fd)


def _create_temporary(fd, name, shown):
    for _ in range(100):
        temporary = f".{name}{TEMP_TAG}{secrets.token_hex(8)}.tmp"
        try:
            return temporary, os.open(temporary, _CREATE, 0o600, dir_fd=fd)
        except FileExistsError:
            continue
        except OSError as err:
            raise TreeError(f"cannot write {shown}: {err.strerror}") from None
    raise TreeError(f"cannot write {shown}: no free temporary name")


def _target_attributes(fd, name, shown, mode):
    """(mode, uid, gid, existed) for the file about to be replaced or created."""
    try:
        current = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        directory = os.fstat(fd)
        return mode, directory.st_uid, directory.st_gid, False
    if not stat.S_ISREG(current.st_mode):
        raise TreeError(f"{shown} is {describe(current.st_mode)}: refusing to replace it",
                        refused=True)
    if current.st_nlink > 1:
        raise TreeError(f"{shown} has {current.st_nlink} hard links (another name may lie "
                        "outside the tree): refusing to replace it", refused=True)
    return stat.S_IMODE(current.st_mode), current.st_uid, current.st_gid, True


def _write_temporary(handle, data, uid, gid, mode):
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view):]
    if os.geteuid() == 0:
        os.fchown(handle, uid, gid)
    os.fchmod(handle, mode)  # after fchown, which clears set-id bits
    os.fsync(handle)
    return os.fstat(handle)


def _check_previous(fd, name, shown, previous):
    if previous is None:
        return
    current, _ = _read_at(fd, name, shown)
    if (current or b"") != _as_bytes(previous):
        raise TreeError(f"{shown} changed since it was read", conflict=True)


def _as_bytes(data):
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    raise SaltInvocationError(f"data: expected bytes or text, got {type(data).__name__}")


def write(path, data, root=None, mode=0o644, previous=None, sync_directory=True,  # noqa: PLR0913,PLR0917 (callers pass keywords)
          makedirs=False):
    """
    Replace a file atomically with ``data``, keeping its mode and owner.

    path, root
        As for :func:`read`: inside a guest root tree (``root`` given,
        nothing followed) or one of this machine's own files.
    data
        The new content (bytes, or text written as UTF-8).
    mode
        The mode of a file that does not exist yet (default 0644; it gets
        the owner and group of its directory). An existing file keeps its own.
    previous
        When given, write only if the file still holds exactly these bytes
        (a missing file counts as empty); otherwise fail with a conflict, so
        a caller that read, edited and writes back loses no concurrent change.
    sync_directory
        ``fsync`` the directory after the rename (default). A caller writing
        one file many times in a run may leave it to a final :func:`sync`.
    makedirs
        Create a missing directory (0755) for one of this machine's own
        files (never inside a guest tree).

    Returns ``{"path": path, "created": bool}``. A symbolic link, hard link,
    FIFO, device or directory in the way is refused and nothing is written.
    """
    data = _as_bytes(data)
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
        raise values.invalid("mode", mode, "is not a file mode")
    with _directory(path, root, makedirs=makedirs and root is None) as (fd, name, shown), \
            locked(fd):
        _remove_stale(fd, name)
        _check_previous(fd, name, shown, previous)
        new_mode, uid, gid, existed = _target_attributes(fd, name, shown, mode)
        temporary, handle = _create_temporary(fd, name, shown)
        try:
            try:
                written = _write_temporary(handle, data, uid, gid, new_mode)
            finally:
                os.close(handle)
            os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=fd)
            raise TreeError(f"cannot write {shown}: {err.strerror}") from None
        placed = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if (placed.st_dev, placed.st_ino) != (written.st_dev, written.st_ino):
            raise TreeError(f"{shown} was replaced by someone else while it was written",
                            refused=True)
        if sync_directory:
            os.fsync(fd)
    return {"path": shown, "created": not existed}


#: How often :func:`edit` reads and plans again when another writer changed
#: the file between its read and its write.
EDIT_ATTEMPTS = 3


def edit(path, change, root=None, attempts=EDIT_ATTEMPTS):
    """
    Read a file, change it, write it back against the bytes read: the one
    read-plan-write loop of the files the formula edits while someone else
    may (a guest's ``etc/fstab``, the server's ``/etc/fstab``).

    path, root
        As for :func:`read`.
    change
        ``change(data) -> (new data or None, result)``: ``data`` the file's
        bytes (None when it does not exist); a new data of None writes
        nothing. Called again on the bytes read again when the file changed
        between the read and the write (a conflict), at most ``attempts``
        times in all.

    Returns the last ``result``; after ``attempts`` conflicts, a
    ``CommandExecutionError`` saying the file kept changing (its
    ``kept_changing`` true; nothing written).
    """
    for _ in range(attempts):
        data = read(path, root)
        new, result = change(data)
        if new is None:
            return result
        try:
            write(path, new, root=root, previous=data or b"")
        except CommandExecutionError as err:
            if getattr(err, "conflict", False):
                continue
            raise
        return result
    shown = path if root is None else f"{root.rstrip('/')}/{path}"
    error = CommandExecutionError(
        f"{shown} kept changing while it was edited ({attempts} attempts): try again when "
        "whoever else writes it leaves it alone")
    error.kept_changing = True
    raise error


def sync(directory):
    """
    ``fsync`` a directory of this machine, making the renames of earlier
    writes into it (``sync_directory=False``) durable.
    """
    directory = check_absolute(directory, "directory")
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise TreeError(f"cannot open {directory}: {err.strerror}") from None
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def remove(path, root=None):
    """
    Remove a file (never following a link: a link itself is removed).

    Returns True if it existed.
    """
    try:
        with _directory(path, root) as (fd, name, shown), locked(fd):
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                return False
            except OSError as err:
                raise TreeError(f"cannot remove {shown}: {err.strerror}") from None
            os.fsync(fd)
    except TreeError as err:
        if err.missing and root is None:
            return False
        raise
    return True


