"""
NFS server exports: ``/etc/exports``, ``/etc/exports.d/*.exports`` and ``exportfs``.

The operations on the live system: exports files read, edited and written
(through the formula's one file routine: atomic, mode and owner kept, a
compare and swap against the bytes an edit started from, so concurrent
writers lose nothing), ``exportfs`` run, and the server's records of who
has an export mounted read. The exports(5) format (lossless: every byte not
edited is written back unchanged), the options and their validation, and
the readers of exportfs's output are in the library
(``xen_nfsroot_lib.exports``, ``export_options``, ``export_table``).

Changes are applied with one ``exportfs -ra`` (:func:`reload`, which puts
back the files a run changed if exportfs rejects them); the process exit
status is trusted, never the emptiness of stderr (``exportfs`` prints
warnings when it succeeds). :func:`check_active` compares an export with the
server's live table (``exportfs -v``, once per run, indexed once).
"""

import contextlib
import logging
import os
import random
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import export_options, export_table, files
from xen_nfsroot_lib import exports as exports_format

log = logging.getLogger(__name__)

__virtualname__ = "exportfs"

__all__ = [
    "list_configured", "list_active", "add", "remove", "reload", "check_active", "unexport",
    "mounts", "mounted_by", "list_exports", "add_export", "del_export", "reload_exports",
]

# __context__ keys: parsed files, the drop-ins, the live table (``exportfs -v``,
# indexed), the files changed in this run with their bytes before (rollback).
_CTX_FILES = "exportfs.files"
_CTX_DEFAULT_FILES = "exportfs.default_files"
_CTX_ACTIVE = "exportfs.active"
_CTX_CHANGED = "exportfs.changed"
# Edits retried when another writer changes the file (waits growing, at random).
_EDIT_ATTEMPTS = 50


def __virtual__():
    if salt.utils.path.which("exportfs"):
        return __virtualname__
    return (
        False,
        "The exportfs execution module cannot be loaded: the exportfs binary "
        "(package nfs-kernel-server or nfs-utils) is not in the path",
    )


# ---------------------------------------------------------------------------
# Files on disk: cache, lock, atomic write
# ---------------------------------------------------------------------------


def _default_files():
    """The files ``exportfs -a`` reads: /etc/exports, then the drop-ins
    (listed again only when the drop-in directory changed in this run)."""
    directory = exports_format.EXPORTS_D
    key = _signature(directory)
    cached = __context__.get(_CTX_DEFAULT_FILES)
    if key is not None and cached is not None and cached[0] == key:
        return list(cached[1])
    found = [exports_format.DEFAULT_EXPORTS]
    with contextlib.suppress(OSError):
        names = [name for name in os.listdir(directory)
                 if os.path.isfile(os.path.join(directory, name))]
        found += [os.path.join(directory, name) for name in exports_format.drop_ins(names)]
    __context__[_CTX_DEFAULT_FILES] = (key, tuple(found))
    return found


def _read(filename):
    """(model, signature, bytes) of a file read now; a missing file is empty."""
    try:
        with open(filename, "rb") as handle:
            info = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return exports_format.ExportsFile.parse(""), None, b""
    except OSError as err:
        raise CommandExecutionError(f"cannot read {filename}: {err}") from err
    signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    model = exports_format.ExportsFile.parse(data.decode("utf-8", "surrogateescape"))
    return model, signature, data


def _signature(filename):
    try:
        info = os.stat(filename)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _load(filename):
    """The parsed file, from __context__ when the file has not changed."""
    cache = __context__.setdefault(_CTX_FILES, {})
    cached = cache.get(filename)
    if cached is not None and cached[1] == _signature(filename):
        return cached[0]
    cache[filename] = _read(filename)
    return cache[filename][0]


def _write(filename, data, previous=None):
    """Replace an exports file through the formula's one write routine:
    atomic, mode and owner kept, a new file 0644. The directory's fsync is
    left to reload(), once per run (a run may rewrite one file once per
    state). previous: the bytes it must still hold."""
    files.write(filename, data, previous=previous, sync_directory=False, makedirs=True)
    __context__.pop(_CTX_DEFAULT_FILES, None)  # a new drop-in, within the clock's tick


def _edit(filename, path, change):
    """Apply change(model) -> bool to filename; write it back if changed.

    The write is a compare and swap against the bytes the model was parsed
    from: if another writer changed the file meanwhile, it is read again and
    the change applied again. Returns (changed, clients of path before,
    created). The file's bytes before its first change in this run are
    recorded, so that reload() can restore them if exportfs rejects the
    change.
    """
    cache = __context__.setdefault(_CTX_FILES, {})
    changed = __context__.setdefault(_CTX_CHANGED, {"files": {}})
    for attempt in range(_EDIT_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.002 * attempt))
        # Taken out of the cache while it is edited: a concurrent edit in
        # this run (a thread) parses its own copy.
        cached = cache.pop(filename, None)
        signature = _signature(filename)
        if cached is not None and cached[1] == signature:
            model, _, before = cached
        else:
            model, signature, before = _read(filename)
        old = model.clients(path)
        # The file's bytes as read (the model renders them back exactly):
        # a state that changes nothing renders nothing.
        if not change(model):
            cache[filename] = (model, signature, before)
            return False, old, False
        data = model.render().encode("utf-8", "surrogateescape")
        try:
            _write(filename, data, previous=before)
        except CommandExecutionError as err:
            if getattr(err, "conflict", False):
                continue
            raise
        record = changed["files"].setdefault(
            filename, {"before": before if signature is not None else None}
        )
        record["after"] = data
        cache[filename] = (model, _signature(filename), data)
        return True, old, signature is None
    raise CommandExecutionError(
        f"{filename} kept changing while it was edited ({_EDIT_ATTEMPTS} attempts)"
    )


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def list_configured(exports=None):
    """
    List the exports configured in exports(5) files.

    exports
        A file or a list of files. Default: ``/etc/exports`` and then
        ``/etc/exports.d/*.exports`` (dot-files skipped, version order), the
        files ``exportfs -a`` reads. Missing files have no exports.

    Returns ``{path: [{"hosts": HOST, "options": [...], "file": FILE,
    "line": N}, ...]}``: one item per client, in file order, options as
    exportfs applies them (``-defaults`` of the line first). A client
    without a name (``(rw)``, e.g. after a stray space) or a path without
    clients is reported with hosts ``*`` and a ``"warning"`` key saying so.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.list_configured /etc/exports
    """
    if exports is None:
        filenames = _default_files()
    elif isinstance(exports, str):
        filenames = [exports_format.check_exports_file(exports)]
    else:
        filenames = [exports_format.check_exports_file(name) for name in exports]
    listing = {}
    for filename in filenames:
        for path, hosts, options, problem, line in _load(filename).exports():
            client = {"hosts": hosts, "options": options, "file": filename, "line": line}
            if problem:
                client["warning"] = problem
            listing.setdefault(path, []).append(client)
    return listing


def _exportfs(*args):
    """Run exportfs with args (no shell): the cmd.run_all result."""
    binary = salt.utils.path.which("exportfs") or "exportfs"
    return __salt__["cmd.run_all"](
        [binary, *args], python_shell=False, ignore_retcode=True, output_loglevel="debug"
    )


def _error(text, result, restored=(), skipped=()):
    """CommandExecutionError whose message is text alone.

    The command result and the files restored (or not) by a rollback ride
    along as attributes: ``info`` would append them to the message.
    """
    err = CommandExecutionError(text)
    err.result = result
    err.restored = list(restored)
    err.skipped = list(skipped)
    return err


def _failed(command, result):
    message = (result.get("stderr") or result.get("stdout") or "").strip()
    return _error(f"{command} failed with exit code {result.get('retcode')}: {message}", result)


def list_active():
    """
    List the exports the NFS server currently has, from ``exportfs -v``.

    ``exportfs -v`` runs once per Salt run (cached in ``__context__``; a
    reload through this module clears the cache).

    Returns ``{path: [{"hosts": HOST, "options": [...]}, ...]}``, options
    as exportfs prints them (``<world>`` is reported as ``*``).

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.list_active
    """
    return _live_table().listing


def _live_table():
    """The server's export table (``exportfs -v``), read and indexed once per
    run: every export checked in the run is a look-up in it."""
    if _CTX_ACTIVE not in __context__:
        result = _exportfs("-v")
        if result["retcode"] != 0:
            raise _failed("exportfs -v", result)
        __context__[_CTX_ACTIVE] = export_table.ExportTable.parse(result["stdout"])
    return __context__[_CTX_ACTIVE]


_describe = exports_format.describe_clients


def add(  # noqa: PLR0913,PLR0917 (Salt calls it with keyword arguments)
    path,
    clients=None,
    exports=exports_format.DEFAULT_EXPORTS,
    hosts=None,
    options=None,
    allow_world_root=False,
    test=False,
):
    """
    Make ``path`` exported to exactly ``clients`` in one exports file.

    Every client and option is validated (``xen_nfsroot_lib.export_options``)
    before the file is touched. When the file already exports ``path`` to
    these clients (options compared as normalised sets) nothing is written.
    Otherwise the first line of ``path`` is rewritten (other lines of
    ``path`` in that file are removed) or a new line is appended; all other
    bytes stay as they were. A missing file (or ``/etc/exports.d``) is
    created (0644). The change is not applied: call :func:`reload`.

    path
        The exported directory.

    clients
        ``[{"hosts": HOST, "options": [OPTION, ...]}, ...]``; or use
        ``hosts`` and ``options`` for one client.

    exports
        The file to edit (default ``/etc/exports``; a drop-in such as
        ``/etc/exports.d/xen-nfsroot.exports`` works too).

    allow_world_root
        Allow ``no_root_squash`` for world or wildcard clients.

    test
        Only say what would change.

    Returns ``{"path", "file", "changed": bool, "created": bool,
    "old": [clients] or None, "new": [clients], "old_text": str or None,
    "new_text": str}`` (``*_text``: the clients in exports(5) form).

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.add /xen hosts=192.0.2.10 options='[rw, no_root_squash, async]'
    """
    wanted = export_options.validate(
        path, clients=clients, hosts=hosts, options=options, allow_world_root=allow_world_root
    )
    filename = exports_format.check_exports_file(exports)

    if test:
        model = _load(filename)
        old = model.clients(path)
        changed = model.differs(path, wanted)
        created = _signature(filename) is None
    else:
        changed, old, created = _edit(filename, path, lambda model: model.set_export(path, wanted))
    return {
        "path": path,
        "file": filename,
        "changed": changed,
        "created": bool(changed and created),
        "old": old,
        "new": wanted,
        "old_text": _describe(old),
        "new_text": _describe(wanted),
    }


def remove(path, exports=exports_format.DEFAULT_EXPORTS, test=False):
    """
    Delete every line exporting ``path`` from one exports file.

    Only those lines change; comments and other exports stay byte for
    byte. The change is not applied: call :func:`reload`.

    Returns ``{"path", "file", "changed": bool, "old": [clients] or None,
    "old_text": str or None}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.remove /xen
    """
    export_options.check_path(path)
    filename = exports_format.check_exports_file(exports)
    if test or _signature(filename) is None:
        old = _load(filename).clients(path)
        changed = old is not None
    else:
        changed, old, _ = _edit(filename, path, lambda model: model.remove_export(path))
    return {
        "path": path,
        "file": filename,
        "changed": changed,
        "old": old,
        "old_text": _describe(old),
    }


def _restore(changed):
    """Put the files changed in this run ({file: {before, after}}) back as
    they were before it.

    A file somebody else changed since is left alone. Returns (restored,
    skipped) file lists.
    """
    restored, skipped = [], []
    for filename, record in changed.items():
        real = os.path.realpath(filename)
        try:
            if record["before"] is not None:
                _write(filename, record["before"], previous=record["after"])
            elif files.read(real) == record["after"]:
                files.remove(real)
            else:
                skipped.append(filename)
                continue
        except CommandExecutionError:
            skipped.append(filename)
            continue
        __context__.get(_CTX_FILES, {}).pop(filename, None)
        restored.append(filename)
    return restored, skipped


def _put_back(changed):
    """Write the changed files again after a rollback."""
    for filename, record in changed.items():
        _write(filename, record["after"])
        __context__.get(_CTX_FILES, {}).pop(filename, None)


def _rejected(result, changed):
    """exportfs -ra failed after this run changed files: restore them and
    judge whether the errors predate the run. Returns the result of a final,
    successful exportfs -ra and the errors that predate the run, or raises."""
    restored, skipped = _restore(changed)
    previous = _exportfs("-ra")
    old_errors = export_table.errors(previous["stderr"]) if previous["retcode"] != 0 else None
    text = export_table.rejection(result, old_errors, restored, skipped)
    if text is not None:
        log.warning("%s", text)
        raise _error(text, result, restored, skipped)
    # The old files fail the same way: the errors predate this run.
    log.info("exportfs -ra errors that predate this run: %s", old_errors)
    _put_back(changed)
    return _exportfs("-ra"), old_errors


def reload():
    """
    Apply the exports files with ``exportfs -ra``.

    The exit status decides: non-zero raises an error carrying exportfs's
    messages (warnings on stderr with exit status 0 are a success). When
    the same Salt run changed exports files through :func:`add` or
    :func:`remove` and exportfs rejects them, those files are restored to
    their bytes before the run and ``exportfs -ra`` runs again: if the old
    files fail with the same errors (errors that predate the run, e.g. an
    unrelated line naming a missing directory), the changes are written back
    and applied; otherwise the files stay restored and the error quotes
    exportfs's new messages.

    Returns ``{"retcode": 0, "stdout": str, "stderr": str, "files": [files
    this run changed], "preexisting_errors": [str]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.reload
    """
    changed = __context__.get(_CTX_CHANGED, {}).get("files", {})
    for directory in sorted({os.path.dirname(os.path.realpath(name)) for name in changed}):
        files.sync(directory)
    result = _exportfs("-ra")
    __context__.pop(_CTX_ACTIVE, None)
    preexisting = []
    if result["retcode"] != 0:
        if not changed:
            raise _failed("exportfs -ra", result)
        result, preexisting = _rejected(result, changed)
        __context__.pop(_CTX_ACTIVE, None)
    __context__.pop(_CTX_CHANGED, None)
    return {
        "retcode": 0,
        "stdout": result["stdout"],
        "stderr": result["stderr"],
        "files": sorted(changed),
        "preexisting_errors": preexisting,
    }


def _listed(path):
    """The clients the server exports path to now (or the directory path
    resolves to, as exportfs -v lists it)."""
    table = _live_table()
    return table.clients(path) or table.clients(os.path.realpath(exports_format.path_key(path)))


def check_active(path, clients=None, exports=None):
    """
    Compare one export with what the NFS server exports now (``exportfs -v``,
    once per run).

    path
        The exported directory.
    clients
        The clients it should be exported to (``[{"hosts", "options"}]``,
        options compared as normalised sets); ``None``: it should not be
        exported, unless an exports file other than ``exports`` exports it.
    exports
        The exports file this export lives in; a file ``exportfs -a`` does
        not read is reported, since no reload can make its exports active.

    Returns ``{"active": bool, "confirmed": [str], "problems": [str]}``:
    ``active`` is True when the server exports exactly what was asked.

    CLI Example:

    .. code-block:: bash

        salt nfs1 exportfs.check_active /xen '[{hosts: 192.0.2.10, options: [rw]}]'
    """
    export_options.check_path(path, "path")
    key = exports_format.path_key(path)
    if exports is not None and exports_format.check_exports_file(exports) not in _default_files():
        problem = f"{key} not checked: exportfs does not read {exports}"
        return {"active": False, "confirmed": [], "problems": [problem]}
    listed = _listed(path)
    if clients is None:
        if not listed:
            return {"active": True, "confirmed": [f"{key} not exported"], "problems": []}
        others = [name for name in _default_files() if name != exports]
        if key in {exports_format.path_key(p) for p in list_configured(others)}:
            return {"active": True, "confirmed": [f"{key} exported by another exports file"],
                    "problems": []}
        problem = f"exportfs -v still lists {key} for {_describe(listed)}"
        return {"active": False, "confirmed": [], "problems": [problem]}
    wanted = export_options.validate(path, clients=clients, allow_world_root=True)
    confirmed, problems = export_table.compare(key, wanted, listed)
    return {"active": not problems, "confirmed": confirmed, "problems": problems}


def unexport(path, host):
    """
    Withdraw one export from the NFS server now: ``exportfs -u host:path``.

    The exports files are not changed (the next ``exportfs -ra`` exports it
    again if they still hold it).

    Returns ``{"retcode": 0, "stdout": str, "stderr": str}``; raises when
    exportfs fails (e.g. ``Could not find 'host:/path' to unexport.``).

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.unexport /xen 192.0.2.10
    """
    export_options.check_path(path, "path")
    names = export_options.split_hosts("host", host)
    if len(names) != 1:
        raise SaltInvocationError(f"host: give one client, not {host!r}")
    result = _exportfs("-u", f"{names[0]}:{path}")
    __context__.pop(_CTX_ACTIVE, None)
    if result["retcode"] != 0:
        raise _failed(f"exportfs -u {names[0]}:{path}", result)
    return {"retcode": 0, "stdout": result["stdout"], "stderr": result["stderr"]}


# ---------------------------------------------------------------------------
# Who has an export mounted
# ---------------------------------------------------------------------------


def _rmtab(path):
    """(client, exported path) of each NFSv3 mount rpc.mountd recorded, or
    None when there is no rmtab."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    return export_table.parse_rmtab(text)


def _nfsv4_clients(directory):
    """The addresses of the NFSv4 clients nfsd knows (kernels >= 5.3), or
    None when it does not say."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    addresses = []
    for name in names:
        with contextlib.suppress(OSError):
            with open(os.path.join(directory, name, "info"), encoding="utf-8",
                      errors="replace") as handle:
                address = export_table.nfsd_client_address(handle.read())
            if address:
                addresses.append(address)
    return addresses


def mounts():
    """
    Who has what mounted from this NFS server: NFSv3 mounts as ``rpc.mountd``
    records them (``/var/lib/nfs/rmtab``: ``client:path:count``) and the
    NFSv4 clients nfsd knows (``/proc/fs/nfsd/clients/*/info``, kernels 5.3
    and later; NFSv4 has no mount protocol, so which export each one uses is
    not known).

    Returns ``{"v3": [{"client", "path"}], "v4": [address], "sources":
    [what could be read]}``.

    CLI Example:

    .. code-block:: bash

        salt nfs1 exportfs.mounts
    """
    rmtab, nfsd_clients = export_table.RMTAB, export_table.NFSD_CLIENTS
    v3 = _rmtab(rmtab)
    v4 = _nfsv4_clients(nfsd_clients)
    sources = [name for name, found in ((rmtab, v3), (nfsd_clients, v4)) if found is not None]
    return {"v3": v3 or [], "v4": v4 or [], "sources": sources}


def mounted_by(path, clients):
    """
    Whether one of ``clients`` (an export's hosts: addresses, networks,
    wildcards) has ``path`` mounted now: ``{"mounted": True | False | None,
    "by": [what says so], "sources": [...]}``; None when the server cannot
    tell (neither rmtab nor nfsd's client list is there).

    CLI Example:

    .. code-block:: bash

        salt nfs1 exportfs.mounted_by /xen '[192.0.2.10]'
    """
    export_options.check_path(path, "path")
    if isinstance(clients, str):
        clients = [clients]
    found = mounts()
    by = export_table.mounted_by(path, clients, found["v3"], found["v4"],
                                 rmtab=export_table.RMTAB)
    mounted = bool(by) if found["sources"] else None
    return {"mounted": mounted, "by": by, "sources": found["sources"]}


# ---------------------------------------------------------------------------
# Salt nfs3 compatible names
# ---------------------------------------------------------------------------


def list_exports(exports=exports_format.DEFAULT_EXPORTS):
    """
    List the exports of one file, like Salt's ``nfs3.list_exports``.

    Returns ``{path: [{"hosts": HOST, "options": [...]}, ...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.list_exports
    """
    return {
        path: [{"hosts": client["hosts"], "options": client["options"]} for client in clients]
        for path, clients in list_configured(exports).items()
    }


def add_export(exports=exports_format.DEFAULT_EXPORTS, path=None, hosts=None, options=None,
               allow_world_root=False):
    """
    Add one client to an export, like Salt's ``nfs3.add_export``.

    The client is added to the clients ``path`` already has in ``exports``
    (replacing the options of the same host); other lines stay unchanged.
    As in :func:`add`, a world or wildcard client with ``no_root_squash``
    (new or already there) is refused unless ``allow_world_root``.

    Returns the added client: ``{"hosts": HOST, "options": [...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.add_export path=/srv/test hosts=127.0.0.1 options='[rw]'
    """
    export_options.check_path(path, "path")
    new = export_options.validate(path, hosts=hosts, options=options,
                                  allow_world_root=allow_world_root)
    filename = exports_format.check_exports_file(exports)
    current = _load(filename).clients(path) or []
    names = {client["hosts"] for client in new}
    kept = [
        {"hosts": client["hosts"], "options": client["options"]}
        for client in current
        if client["hosts"] not in names
    ]
    add(path, kept + new, exports=filename, allow_world_root=allow_world_root)
    return new[0] if len(new) == 1 else new


def del_export(exports=exports_format.DEFAULT_EXPORTS, path=None):
    """
    Remove an export, like Salt's ``nfs3.del_export``.

    Returns the remaining exports of the file, as :func:`list_exports`.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.del_export path=/media/storage
    """
    remove(path, exports=exports)
    return list_exports(exports)


def reload_exports():
    """
    Apply the exports files, like Salt's ``nfs3.reload_exports``.

    Unlike ``nfs3``, success is judged by exportfs's exit status.

    Returns ``{"result": bool, "stdout": str, "stderr": str}``.

    CLI Example:

    .. code-block:: bash

        salt '*' exportfs.reload_exports
    """
    try:
        result = reload()
    except CommandExecutionError as err:
        stdout = getattr(err, "result", {}).get("stdout", "")
        return {"result": False, "stdout": stdout, "stderr": str(err)}
    return {"result": True, "stdout": result["stdout"], "stderr": result["stderr"]}
