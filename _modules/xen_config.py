"""
A Xen guest's config file on the dom0: read, written, removed.

The file is in either format: xl.cfg(5), or the xm config of Xen <= 4.4 (a
Python file of literal assignments, read without running it). What a guest's
config holds (its settings, their defaults and validators, the text of
either format) is pure code in the library: :mod:`xen_nfsroot_lib.guest_config`
(``GUEST_SETTINGS``, ``render_config``, ``config_path``) over the two formats
:mod:`xen_nfsroot_lib.xl_config` and :mod:`xen_nfsroot_lib.xm_config`.

Files are written by the formula's one file routine,
:mod:`xen_nfsroot_lib.files` (atomic, mode and owner kept, new files 0644
like Xen's own examples).
"""

import salt.utils.files
from salt.exceptions import CommandExecutionError

from xen_nfsroot_lib import files, guest_config
from xen_nfsroot_lib.xl_config import XenConfigError

__virtualname__ = "xen_config"


def __virtual__():
    return __virtualname__


def read_config(path, toolstack=None):
    """
    Read a guest config file of either format into a dict of settings.

    xl.cfg(5) files are parsed by its grammar; xm files by reading literal
    assignments (never executed). ``toolstack`` (``xl``/``xm``) forces one
    format. Raises ``CommandExecutionError`` naming the file and line.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_config.read_config /etc/xen/XenGuest.cfg
    """
    try:
        with salt.utils.files.fopen(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise CommandExecutionError(f"Cannot read {path}: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CommandExecutionError(f"{path}: not UTF-8 text ({err})") from None
    try:
        return guest_config.parse_config(text, source=path, toolstack=toolstack)
    except XenConfigError as err:
        raise CommandExecutionError(str(err)) from None


def write_config(path, text):
    """
    Write a config file if its content differs; return True if written.

    Through the formula's file routine: atomic, durable, mode and owner kept; a
    new file is 0644 (Xen's own example configs are world-readable) and its
    directory is created (0755) if missing.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_config.write_config /etc/xen/XenGuest.cfg 'name = "XenGuest"'
    """
    data = text.encode("utf-8")
    if files.read(path) == data:
        return False
    files.write(path, data, mode=0o644, makedirs=True)
    return True


def remove_config(path):
    """
    Remove a config file; return True if it existed.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_config.remove_config /etc/xen/XenGuest.cfg
    """
    return files.remove(path)
