"""The guest's ``/etc/fstab`` inside an exported root tree (fstab(5)): its
entries, the NFS root line, one entry present or commented out.

The line model, the validation and the edits are
:mod:`xen_nfsroot_lib.fstab` (lossless: every line the formula does not own
comes out byte for byte; a line switched off is commented out behind
``#xen-nfsroot# ``, never deleted). This module reads the file, plans the
edit, and writes it back.

The file lives in the guest's own tree, which the guest may change while the
server edits it: it is read and written only through
:mod:`xen_nfsroot_lib.files` (directory descriptors, ``O_NOFOLLOW``, atomic
replacement keeping mode and owner, a compare-and-swap against the bytes
read, the edit retried when the guest changed the file meanwhile). A symbolic
link, a hard link, a FIFO or device where ``etc/`` or ``etc/fstab`` should be
is refused.
"""

from salt.exceptions import CommandExecutionError

from xen_nfsroot_lib import files, fstab, values

__virtualname__ = "domu_fstab"


def __virtual__():
    return __virtualname__


FSTAB = "etc/fstab"


def _tree_error(field, root, err):
    message = str(err)
    if message == f"{root.rstrip('/')}/etc does not exist":
        message += ": not a guest root filesystem (it needs an etc/ directory)"
    return values.invalid(field, root, message)


def _read(field, root):
    """The guest fstab's text (undecodable bytes kept as surrogates) and its
    bytes, or (None, None) when it does not exist."""
    values.check_absolute_path(root, field)
    try:
        data = files.read(FSTAB, root=root)
    except CommandExecutionError as err:
        raise _tree_error(field, root, err) from None
    if data is None:
        return None, None
    return data.decode("utf-8", "surrogateescape"), data


def _apply(field, root, plan, test):
    """Read, plan, write back (:func:`files.edit`: planned again when the guest
    changes the file meanwhile)."""
    def change(data):
        text = None if data is None else data.decode("utf-8", "surrogateescape")
        new_text, changes = plan("" if text is None else text)
        if changes and text is None:
            changes["created"] = f"{root.rstrip('/')}/{FSTAB}"
        if not changes or test:
            return None, changes
        return new_text.encode("utf-8", "surrogateescape"), changes

    values.check_absolute_path(root, field)
    try:
        return files.edit(FSTAB, change, root=root)
    except CommandExecutionError as err:
        if getattr(err, "kept_changing", False):
            raise
        raise _tree_error(field, root, err) from None


def entries(root):
    """
    The active entries of the guest's ``etc/fstab`` under ``root`` (a list of
    dicts with ``device``, ``name``, ``fstype``, ``opts``, ``dump``,
    ``pass_num``; empty when the file does not exist).

    CLI Example:

    .. code-block:: bash

        salt nfs1 domu_fstab.entries /xen
    """
    text, _ = _read("root", root)
    return [
        {key: value for key, value in line.items() if key not in ("kind", "raw")}
        for line in fstab.parse(text or "")
        if line["kind"] == "entry"
    ]


def set_nfs_root(  # noqa: PLR0913,PLR0917 (Salt calls it by name or CLI position)
    name, fstype="nfs", opts="defaults", dump=0, pass_num=0, disable=None, test=False,
):
    """
    Make the guest whose root directory is ``name`` mount its root from
    ``/dev/nfs`` and comment out its local-disk lines (or exactly the entries
    whose device or mount point is in ``disable``), in ``<name>/etc/fstab``;
    see :func:`xen_nfsroot_lib.fstab.plan_nfs_root` for the policy. A missing
    ``etc/fstab`` is created; a ``name`` without ``etc/`` is refused. Nothing
    is written when ``test`` is true or nothing changes.

    Returns the changes (``root``, ``disabled``, and ``created`` with the
    file's path when it was created); empty when the file already complies.

    CLI Example:

    .. code-block:: bash

        salt nfs1 domu_fstab.set_nfs_root /xen disable='[/dev/sdb2]' test=True
    """
    opts = fstab.check_entry(fstype, opts, dump, pass_num)
    disable = fstab.check_disable(disable)
    return _apply(
        "name",
        name,
        lambda text: fstab.plan_nfs_root(text, fstype, opts, dump, pass_num, disable),
        test,
    )


def set_entry(  # noqa: PLR0913,PLR0917 (Salt calls it by name or CLI position)
    name, root, device, fstype, opts="defaults", dump=0, pass_num=0, test=False,
):
    """
    Make the entry for mount point ``name`` in the fstab of the guest whose root
    directory is ``root`` read ``device name fstype opts dump pass_num``; see
    :func:`xen_nfsroot_lib.fstab.plan_entry`. A missing ``etc/fstab`` is
    created. Nothing is written when ``test`` is true or nothing changes.

    Returns the changes (``entry``, ``disabled``, ``created``); empty when the
    entry is already present.

    CLI Example:

    .. code-block:: bash

        salt nfs1 domu_fstab.set_entry /home /xen srv:/home nfs opts=vers=3
    """
    fstab.check_mount_point(name)
    fstab.check_device(device)
    opts = fstab.check_entry(fstype, opts, dump, pass_num)
    return _apply(
        "root",
        root,
        lambda text: fstab.plan_entry(text, name, device, fstype, opts, dump, pass_num),
        test,
    )


def rm_entry(name, root, device=None, test=False):
    """
    Comment out (never delete) the entries for mount point ``name`` (and, when
    given, ``device``) in the fstab of the guest whose root directory is
    ``root``; see :func:`xen_nfsroot_lib.fstab.plan_absent`. Nothing is
    written when ``test`` is true or nothing changes.

    Returns the changes (``disabled``); empty when no such entry is active.

    CLI Example:

    .. code-block:: bash

        salt nfs1 domu_fstab.rm_entry swap /xen device=/dev/sdb2
    """
    fstab.check_mount_point(name)
    if device is not None:
        fstab.check_device(device)
    return _apply("root", root, lambda text: fstab.plan_absent(text, name, device), test)
