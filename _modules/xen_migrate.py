"""
Migration trust between a guest's dom0s, on the live system: this dom0's
migration key pair (made with ``ssh-keygen``, repaired, read back) and its
publication through the Salt mine (:func:`public_keys`), the keys that let
``xl migrate`` reach another dom0 over ssh.

The trust's paths, the checks of key lines and peers, the ssh command line,
the ``authorized_keys`` and ``known_hosts`` plans and the forced command are
pure code in the library (:mod:`xen_nfsroot_lib.trust`,
:mod:`xen_nfsroot_lib.ssh_keys`); the state ``xen_migrate.trusted`` writes
them.
"""

import glob
import os
import secrets
import stat

import salt.utils.path
from salt.exceptions import CommandExecutionError

from xen_nfsroot_lib import files, ssh_keys, trust, values

__virtualname__ = "xen_migrate"


def __virtual__():
    return __virtualname__


# ---------------------------------------------------------------------------
# The mine function
# ---------------------------------------------------------------------------


def _public_line(path):
    """The checked public key line of a .pub file, or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return None
    return ssh_keys.public_line(first)


def public_keys(key=trust.KEY, host_keys=trust.HOST_KEYS):
    """
    What this dom0 publishes to its peers through the Salt mine:
    ``{"migrate_key": "ssh-ed25519 AAAA... xen-nfsroot-migrate@ID" or None,
    "host_keys": ["ssh-ed25519 AAAA... root@host", ...]}``: its migration
    key's public half (None until the key exists) and its ssh host keys
    (the ``/etc/ssh/ssh_host_*_key.pub`` files). Lines that are not valid
    public keys are left out.

    As a mine function (minion config or pillar)::

        mine_functions:
          xen_migrate.public_keys: []

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.public_keys
    """
    migrate_key = _public_line(f"{key}.pub") if os.path.isfile(key) else None
    lines = []
    for path in sorted(glob.glob(host_keys)):
        line = _public_line(path)
        if line is not None and line not in lines:
            lines.append(line)
    return {"migrate_key": migrate_key, "host_keys": lines}


# ---------------------------------------------------------------------------
# The key pair and the files
# ---------------------------------------------------------------------------


def _ssh_keygen():
    found = salt.utils.path.which("ssh-keygen")
    if not found:
        raise CommandExecutionError("ssh-keygen is not installed (Debian: openssh-client)")
    return found


def _mode(path):
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


def _private_public(path):
    """The public key line held in an OpenSSH private key file
    (:func:`ssh_keys.private_public`)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 20)
    except OSError:
        raise ssh_keys.not_a_private_key(path) from None
    return ssh_keys.private_public(data, path)


def key_pair(path=trust.KEY):
    """
    The state of a migration key pair: ``{"private": bool, "mode": int or
    None, "public": line or None, "derived": line or None}``: whether the
    private key exists, its mode, the ``.pub`` file's line, and the public
    key the private key file holds (None without it). A private key that is
    not an OpenSSH private key, is damaged or has a passphrase is an error.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.key_pair
    """
    path = trust.check_path(path, "key")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise CommandExecutionError(f"{path} is not a regular file")
    mode = _mode(path)
    public = None
    if os.path.isfile(f"{path}.pub"):
        with open(f"{path}.pub", encoding="utf-8", errors="replace") as handle:
            public = handle.readline().strip() or None
    derived = _private_public(path) if mode is not None else None
    return {"private": mode is not None, "mode": mode, "public": public, "derived": derived}


def _make_directory(directory, mode):
    if os.path.isdir(directory):
        return False
    os.makedirs(os.path.dirname(directory), mode=0o755, exist_ok=True)
    try:
        os.mkdir(directory, mode)
    except FileExistsError:
        return False
    os.chmod(directory, mode)
    return True


def create_key(path=trust.KEY, comment=None):
    """
    Create the migration key pair: ``ssh-keygen -t ed25519 -N '' -C COMMENT
    -f PATH`` (comment ``xen-nfsroot-migrate@<minion id>``), its directory
    created 0700 when missing. The pair is made under temporary names in
    that directory and renamed into place, the private key last: a key that
    exists is complete. An existing private key is never replaced. Returns
    the public key line.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.create_key
    """
    path = trust.check_path(path, "key")
    comment = ssh_keys.check_comment(
        trust.key_comment(__opts__["id"]) if comment is None else comment, empty=False)
    if os.path.lexists(path):
        raise CommandExecutionError(f"{path} exists: refusing to replace a private key")
    directory, name = os.path.split(path)
    _make_directory(directory, trust.PRIVATE_DIRECTORY_MODE)
    prefix = f".{name}.xen-nfsroot-"
    for entry in os.listdir(directory):
        if entry.startswith(prefix):
            os.unlink(os.path.join(directory, entry))
    temporary = os.path.join(directory, f"{prefix}{secrets.token_hex(8)}")
    command = [_ssh_keygen(), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", temporary]
    ret = __salt__["cmd.run_all"](command, python_shell=False, ignore_retcode=True)
    try:
        if ret["retcode"] != 0:
            raise CommandExecutionError(
                f"ssh-keygen failed (exit status {ret['retcode']}): "
                f"{(ret.get('stderr') or ret.get('stdout') or '').strip()}")
        line = _public_line(f"{temporary}.pub")
        if line is None:
            raise CommandExecutionError(f"ssh-keygen wrote no public key to {temporary}.pub")
        os.chmod(temporary, trust.PRIVATE_MODE)
        os.rename(f"{temporary}.pub", f"{path}.pub")
        os.rename(temporary, path)
    finally:
        for leftover in (temporary, f"{temporary}.pub"):
            if os.path.lexists(leftover):
                os.unlink(leftover)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return line


def repair_key(path=trust.KEY, mode=True, public=None):
    """
    Repair an existing key pair: with ``mode``, set the private key's mode
    to 0600; with ``public`` (a key line, e.g. what ``ssh-keygen -y -f
    KEY`` prints), write it as the ``.pub`` file. Returns True. (The state
    ``xen_migrate.key`` calls it with what it found wrong; the example below
    asks for nothing, so it runs whether or not a key exists.)

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.repair_key mode=False
    """
    path = trust.check_path(path, "key")
    values.check_switch(mode, "mode")
    if mode:
        os.chmod(path, trust.PRIVATE_MODE)
    if public is not None:
        line = ssh_keys.check_key_line(public, "public")
        files.write(f"{path}.pub", line + "\n", mode=0o644)
    return True


def file_mode(path):
    """
    The permission bits of a file (None when it does not exist).

    CLI Example:

    .. code-block:: bash

        salt dom0-b xen_migrate.file_mode /usr/local/sbin/xen-nfsroot-migrate-receive
    """
    return _mode(trust.check_path(path, "path"))
