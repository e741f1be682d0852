"""
Migration trust between a guest's dom0s: the ssh keys, ``authorized_keys``
entries and ``known_hosts`` that let ``xl migrate`` reach another dom0, and
nothing else.

``xl migrate -s SSH NAME HOST`` runs on the source dom0, through ``sh -c``::

    exec SSH HOST xl[ -t][ -T][ -v...] migrate-receive[ -e][ -d][ -p]

(Xen's ``tools/xl/xl_migrate.c``, ``main_migrate``: ``-t`` when stderr is a
terminal, ``-T`` with timestamps, ``-v`` to ``-vvvv`` with more verbosity;
``-e`` when the source does not daemonize, ``-d`` with ``--debug``, ``-p``
to pause the guest after the move.) The formula's trust has three parts:

* each dom0 holds one ed25519 key pair (:data:`KEY`, ``0600`` in a ``0700``
  directory) whose comment is ``xen-nfsroot-migrate@<minion id>``, and
  publishes its public half and its own ssh host keys through the Salt mine
  (:func:`public_keys`);
* each receiving dom0 adds, for each peer, one line to root's
  ``authorized_keys`` (:func:`authorized_line`):
  ``restrict,from="PEER ADDRESS",command="WRAPPER"``: no pty, no port,
  agent or X11 forwarding, only from that address, and only the forced
  command :data:`WRAPPER` (:func:`wrapper_text`), which runs ``xl
  migrate-receive`` with the options xl passes and refuses anything else;
* each sending dom0 trusts exactly its peers' host keys, in a
  ``known_hosts`` of its own (:data:`KNOWN_HOSTS`, :func:`plan_known_hosts`),
  and ``ssh_command`` (:func:`ssh_command`) makes ssh use that key and that
  file only, never prompting (``BatchMode``) and never accepting an unknown
  host key.

No password and no unrestricted root key: a stolen migration key can start
``xl migrate-receive`` on a peer (receive a domain) and do nothing else.

The peers' entries in ``authorized_keys`` are the lines whose comment starts
with ``xen-nfsroot-migrate@``; every other line is kept byte for byte
(:func:`plan_authorized`). The comment of an entry names the peer the master
said the key came from (the mine is keyed by minion id), not what the key's
own comment claims.
"""

import base64
import binascii
import glob
import ipaddress
import os
import re
import secrets
import stat

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "xen_migrate"

#: The dom0's migration key (private half; the public half is KEY + ".pub").
KEY = "/etc/xen-nfsroot/migrate_key"
#: The host keys of this dom0's peers, and nothing else.
KNOWN_HOSTS = "/etc/xen-nfsroot/known_hosts"
#: The forced command of the peers' keys.
WRAPPER = "/usr/local/sbin/xen-nfsroot-migrate-receive"
#: Root's authorized keys, where the peers' entries go.
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
#: This dom0's own ssh host keys (public halves), published to its peers.
HOST_KEYS = "/etc/ssh/ssh_host_*_key.pub"
#: The comment of every key and authorized_keys entry the formula owns.
COMMENT_PREFIX = "xen-nfsroot-migrate@"
#: Public key types accepted in the mine, authorized_keys and known_hosts.
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
#: The options ``xl migrate`` may put before and after ``migrate-receive``.
XL_GLOBAL_OPTIONS = ("-t", "-T", "-v", "-vv", "-vvv", "-vvvv")
XL_RECEIVE_OPTIONS = ("-e", "-d", "-p")
#: A mode a missing key, authorized_keys or directory is created with.
PRIVATE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700
WRAPPER_MODE = 0o755

# Same as xen_nfsroot.MINION_ID and xm.HOSTNAME_RE / xm.SSH_COMMAND_RE.
MINION_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
SSH_COMMAND_RE = re.compile(r"^[A-Za-z0-9_./=:@,+ -]+$")
# A path that may stand in an ssh command line and in command="...".
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./+-]*$")
# What a key's comment may hold: no quotes, backslashes or control characters.
_COMMENT_RE = re.compile(r"^[A-Za-z0-9_.@:+=,/ -]{0,255}$")
_TYPE_WORD = re.compile(r"^(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+$")
_BLOB_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_MAX_BLOB = 16384
_KNOWN_HOSTS_HEADER = (
    "# The ssh host keys of this dom0's migration peers, one line per key, each\n"
    "# ending with the peer's minion id. Written by Salt (xen_migrate.trusted):\n"
    "# local changes are overwritten.\n"
)


def __virtual__():
    return __virtualname__


# ---------------------------------------------------------------------------
# Validators
# ---------------------------------------------------------------------------


def check_path(path, field="path"):
    """
    Check a path of the trust's files: absolute, normalised, of
    [A-Za-z0-9_./+-] only (it may stand in an ssh command line and in an
    ``authorized_keys`` option). Returns it.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.check_path /etc/xen-nfsroot/migrate_key
    """
    if not isinstance(path, str) or not _PATH_RE.match(path) or os.path.normpath(path) != path:
        raise SaltInvocationError(
            f"{field}: {path!r} is not a normalised absolute path of [A-Za-z0-9_./+-]")
    return path


def check_minion_id(minion_id, field="minion id"):
    """
    Check a minion id as the mine and targets use it ([A-Za-z0-9_.-]+);
    returns it.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.check_minion_id dom0-b
    """
    if not isinstance(minion_id, str) or not MINION_ID.match(minion_id):
        raise SaltInvocationError(f"{field}: {minion_id!r} is not a minion id ([A-Za-z0-9_.-]+)")
    return minion_id


def check_address(address, field="address"):
    """
    Check a peer's address: an IPv4 or IPv6 address or a host name. Returns
    it (an IP address in its canonical form).

    sshd matches ``from=`` against the client's IP address, and against its
    host name only with ``UseDNS yes``: give the address the peer connects
    from.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.check_address 192.0.2.11
    """
    if isinstance(address, str):
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            if HOSTNAME_RE.match(address) and not address.rsplit(".", 1)[-1].isdigit():
                return address
    raise SaltInvocationError(f"{field}: {address!r} is not an IP address or host name")


def check_port(port, field="port"):
    """
    Check an ssh port (1-65535, default 22); returns it as an integer.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.check_port 2222
    """
    if port is None:
        return 22
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise SaltInvocationError(f"{field}: {port!r} is not a TCP port (1-65535)")
    return port


def _split_key(line):
    """(type, blob, comment) of 'TYPE BLOB [COMMENT]', or None."""
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        return None
    return parts[0], parts[1], parts[2].strip() if len(parts) == 3 else ""


def _embedded_type(blob):
    """The key type a public key blob names (its first SSH string), or None."""
    if len(blob) > _MAX_BLOB or not _BLOB_RE.match(blob):
        return None
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 4:
        return None
    length = int.from_bytes(raw[:4], "big")
    if length == 0 or 4 + length >= len(raw):
        return None
    try:
        return raw[4:4 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


def check_key_line(line, field="key"):
    """
    Check an OpenSSH public key line ``TYPE BASE64 [COMMENT]`` (as in a
    ``.pub`` file): the type is one of :data:`KEY_TYPES`, the base64 blob
    decodes and names that same type, the comment holds no quote, backslash
    or control character. Returns the line, stripped, with single spaces.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.check_key_line "$(cat /etc/xen-nfsroot/migrate_key.pub)"
    """
    split = _split_key(line) if isinstance(line, str) and "\n" not in line.strip() else None
    if split is None:
        raise SaltInvocationError(f"{field}: {line!r} is not an OpenSSH public key line "
                                  "(TYPE BASE64 [COMMENT])")
    key_type, blob, comment = split
    if key_type not in KEY_TYPES:
        raise SaltInvocationError(f"{field}: {line!r}: key type {key_type!r} is not one of "
                                  + ", ".join(KEY_TYPES))
    embedded = _embedded_type(blob)
    if embedded is None:
        raise SaltInvocationError(f"{field}: {line!r}: the key is not valid base64 of an "
                                  "ssh public key")
    if embedded != key_type:
        raise SaltInvocationError(f"{field}: {line!r}: the key is a {embedded!r} key, not "
                                  f"{key_type!r}")
    if not _COMMENT_RE.match(comment):
        raise SaltInvocationError(f"{field}: {line!r}: the comment may hold only "
                                  "[A-Za-z0-9_.@:+=,/ -]")
    return " ".join(filter(None, (key_type, blob, comment)))


def _key_of(line):
    """'TYPE BLOB' of a checked key line."""
    return " ".join(line.split()[:2])


def check_peers(peers, field="peers"):
    """
    Check the peers of a dom0: a mapping ``{minion id: address}`` or
    ``{minion id: {address: ADDRESS, port: PORT}}``. Returns
    ``{minion id: {"address": ..., "port": ...}}`` (port default 22).

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.check_peers '{dom0-b: 192.0.2.11}'
    """
    if not isinstance(peers, dict):
        raise SaltInvocationError(f"{field}: {peers!r} is not a mapping of minion id to address")
    checked = {}
    for minion_id, peer in peers.items():
        check_minion_id(minion_id, f"{field}: minion id")
        where = f"{field}.{minion_id}"
        if isinstance(peer, dict):
            unknown = sorted(set(peer) - {"address", "port"}, key=str)
            if unknown:
                raise SaltInvocationError(f"{where}.{unknown[0]}: {peer[unknown[0]]!r} is not a "
                                          "peer key (address, port)")
            address, port = peer.get("address"), peer.get("port")
        else:
            address, port = peer, None
        checked[minion_id] = {"address": check_address(address, f"{where}.address"),
                              "port": check_port(port, f"{where}.port")}
    return checked


def check_mined(minion_id, mined):
    """
    Check what a peer published with :func:`public_keys` (its mine value):
    ``{"migrate_key": line or None, "host_keys": [lines]}``. Returns it with
    the lines checked; raises naming the minion, the field and the value.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.check_mined dom0-b '{migrate_key: null, host_keys: []}'
    """
    where = f"mine data of {minion_id} (xen_migrate.public_keys)"
    if not isinstance(mined, dict):
        raise SaltInvocationError(f"{where}: {mined!r} is not a mapping with migrate_key and "
                                  "host_keys")
    key = mined.get("migrate_key")
    host_keys = mined.get("host_keys", [])
    if not isinstance(host_keys, list):
        raise SaltInvocationError(f"{where}: host_keys: {host_keys!r} is not a list")
    return {
        "migrate_key": None if key is None else check_key_line(key, f"{where}: migrate_key"),
        "host_keys": [check_key_line(line, f"{where}: host_keys") for line in host_keys],
    }


# ---------------------------------------------------------------------------
# The ssh command line xl runs
# ---------------------------------------------------------------------------


def ssh_command(port=None, key=KEY, known_hosts=KNOWN_HOSTS):
    """
    The ssh command line for ``xl migrate -s`` (``xm.migrate``'s
    ``ssh_command``): this dom0's migration key only, its own known_hosts
    only, no prompt, no unknown host key::

        ssh -i KEY -o BatchMode=yes -o IdentitiesOnly=yes
            -o UserKnownHostsFile=KNOWN_HOSTS -o StrictHostKeyChecking=yes [-p PORT]

    port
        The peer's ssh port (none or 22: ssh's default).

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.ssh_command
    """
    words = ["ssh", "-i", check_path(key, "key"), "-o", "BatchMode=yes",
             "-o", "IdentitiesOnly=yes",
             "-o", f"UserKnownHostsFile={check_path(known_hosts, 'known_hosts')}",
             "-o", "StrictHostKeyChecking=yes"]
    port = check_port(port)
    if port != 22:
        words += ["-p", str(port)]
    command = " ".join(words)
    if not SSH_COMMAND_RE.match(command):  # the paths are checked above; kept as xm's rule
        raise SaltInvocationError(f"ssh_command: {command!r} is not an ssh command line")
    return command


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
    try:
        return check_key_line(first)
    except SaltInvocationError:
        return None


def public_keys(key=KEY, host_keys=HOST_KEYS):
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
# authorized_keys
# ---------------------------------------------------------------------------


def _split_options(text):
    """(options, rest) of an authorized_keys line that starts with options."""
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and quoted:
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char in " \t" and not quoted:
            break
        index += 1
    return text[:index], text[index:].lstrip(" \t")


def _owner(line):
    """The peer id of an authorized_keys line the formula owns, or None."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    first = text.split(None, 1)[0]
    rest = text if _TYPE_WORD.match(first) else _split_options(text)[1]
    split = _split_key(rest)
    if split is None or not split[2].startswith(COMMENT_PREFIX):
        return None
    words = split[2][len(COMMENT_PREFIX):].split()
    return words[0] if words else ""


def authorized_line(key_line, address, wrapper=WRAPPER, comment=None):
    """
    The ``authorized_keys`` entry of a peer's migration key::

        restrict,from="ADDRESS",command="WRAPPER" TYPE BLOB COMMENT

    ``restrict`` turns off port, agent and X11 forwarding, the pty and
    ``~/.ssh/rc``; ``from`` admits the key from that address only;
    ``command`` runs the wrapper whatever the client asks (the wrapper reads
    the request from ``SSH_ORIGINAL_COMMAND``). ``comment`` replaces the
    key's own comment (:func:`plan_authorized` gives
    ``xen-nfsroot-migrate@<peer id>``).

    CLI Example:

    .. code-block:: bash

        salt dom0-b xen_migrate.authorized_line \
            "$(cat /etc/xen-nfsroot/migrate_key.pub)" 192.0.2.10
    """
    key_type, blob, own = _split_key(check_key_line(key_line))
    address = check_address(address)
    wrapper = check_path(wrapper, "wrapper")
    comment = own if comment is None else comment
    if not isinstance(comment, str) or not _COMMENT_RE.match(comment):
        raise SaltInvocationError(f"comment: {comment!r} may hold only [A-Za-z0-9_.@:+=,/ -]")
    options = f'restrict,from="{address}",command="{wrapper}"'
    return " ".join(filter(None, (options, key_type, blob, comment)))


def authorized_peers(text):
    """
    The entries the formula owns in an ``authorized_keys`` text:
    ``{peer id: [lines]}`` (the lines whose comment starts with
    ``xen-nfsroot-migrate@``, without their line ends).

    CLI Example:

    .. code-block:: bash

        salt dom0-b xen_migrate.authorized_peers "$(cat /root/.ssh/authorized_keys)"
    """
    owned = {}
    for line in (text or "").splitlines():
        peer = _owner(line)
        if peer is not None:
            owned.setdefault(peer, []).append(line)
    return owned


def plan_authorized(current_text, peers, wrapper=WRAPPER):
    """
    The new ``authorized_keys`` text: one entry per peer, every line the
    formula does not own kept byte for byte, in place.

    current_text
        The file's text now ('' or None when it does not exist).
    peers
        ``{peer id: {"key": public key line, "address": address}}``: each
        peer's entry (:func:`authorized_line`, comment
        ``xen-nfsroot-migrate@<peer id>``) replaces the peer's first owned
        line and its other owned lines go; a new peer's entry is appended.
        A peer given as None keeps the entries it has (a peer whose key the
        mine does not hold now). Owned lines of any other peer are removed.

    CLI Example:

    .. code-block:: bash

        salt dom0-b xen_migrate.plan_authorized '' \
            '{dom0-a: {key: "ssh-ed25519 AAAA...", address: 192.0.2.10}}'
    """
    if not isinstance(peers, dict):
        raise SaltInvocationError(f"peers: {peers!r} is not a mapping of minion id to key")
    wanted = {}
    for peer, entry in peers.items():
        check_minion_id(peer, "peers: minion id")
        if entry is None:
            wanted[peer] = None
            continue
        if not isinstance(entry, dict):
            raise SaltInvocationError(f"peers.{peer}: {entry!r} is not a mapping with key and "
                                      "address")
        wanted[peer] = authorized_line(entry.get("key"), entry.get("address"), wrapper,
                                       f"{COMMENT_PREFIX}{peer}")
    lines = []
    placed = set()
    for line in (current_text or "").splitlines(keepends=True):
        peer = _owner(line)
        if peer is None:
            lines.append(line)
        elif peer in wanted and (wanted[peer] is None or peer not in placed):
            same = wanted[peer] is None or wanted[peer] == line.rstrip("\r\n")
            lines.append(line if same else wanted[peer] + "\n")
            placed.add(peer)
    new = [wanted[peer] + "\n" for peer in sorted(wanted)
           if peer not in placed and wanted[peer] is not None]
    if new and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines + new)


# ---------------------------------------------------------------------------
# known_hosts
# ---------------------------------------------------------------------------


def _host_pattern(address, port):
    if port == 22:
        return address
    return f"[{address}]:{port}"


def plan_known_hosts(peers):
    """
    The text of this dom0's migration ``known_hosts``: for each peer, one
    line per host key, ``ADDRESS TYPE BLOB PEER`` (``[ADDRESS]:PORT`` for a
    port other than 22), the peers in order of their ids. The file is the
    formula's own: nothing else is kept.

    peers
        ``{peer id: {"address": ..., "host_keys": [lines], "port": 22}}``.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.plan_known_hosts \
            '{dom0-b: {address: 192.0.2.11, host_keys: ["ssh-ed25519 AAAA..."]}}'
    """
    if not isinstance(peers, dict):
        raise SaltInvocationError(f"peers: {peers!r} is not a mapping of minion id to host keys")
    lines = [_KNOWN_HOSTS_HEADER]
    for peer in sorted(peers):
        check_minion_id(peer, "peers: minion id")
        entry = peers[peer]
        if not isinstance(entry, dict):
            raise SaltInvocationError(f"peers.{peer}: {entry!r} is not a mapping with address "
                                      "and host_keys")
        pattern = _host_pattern(check_address(entry.get("address"), f"peers.{peer}.address"),
                                check_port(entry.get("port"), f"peers.{peer}.port"))
        host_keys = entry.get("host_keys") or []
        if not isinstance(host_keys, list):
            raise SaltInvocationError(f"peers.{peer}.host_keys: {host_keys!r} is not a list")
        seen = []
        for line in host_keys:
            key = _key_of(check_key_line(line, f"peers.{peer}.host_keys"))
            if key not in seen:
                seen.append(key)
                lines.append(f"{pattern} {key} {peer}\n")
    return "".join(lines)


def known_hosts_peers(text):
    """
    The peers of a known_hosts text written by :func:`plan_known_hosts`:
    ``{peer id: {"address", "port", "host_keys": ["TYPE BLOB", ...]}}``.
    Lines that do not parse are left out.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.known_hosts_peers "$(cat /etc/xen-nfsroot/known_hosts)"
    """
    peers = {}
    for line in (text or "").splitlines():
        words = line.split()
        if len(words) != 4 or words[0].startswith("#") or not MINION_ID.match(words[3]):
            continue
        match = re.fullmatch(r"\[(.+)\]:(\d+)", words[0])
        address, port = (match.group(1), int(match.group(2))) if match else (words[0], 22)
        try:
            key = check_key_line(" ".join(words[1:3]))
            address, port = check_address(address), check_port(port)
        except SaltInvocationError:
            continue
        peer = peers.setdefault(words[3], {"address": address, "port": port, "host_keys": []})
        peer["host_keys"].append(key)
    return peers


# ---------------------------------------------------------------------------
# The forced command
# ---------------------------------------------------------------------------

_WRAPPER = r"""#!/bin/sh
# xen-nfsroot-migrate-receive: the forced command (command="...") of the
# xen-nfsroot migration keys in root's authorized_keys. It runs only
#
#     xl [-t] [-T] [-v|-vv|-vvv|-vvvv] migrate-receive [-e] [-d] [-p]
#
# the receiving half of "xl migrate" (Xen's tools/xl/xl_migrate.c), each
# option at most once, and refuses anything else. The client's request
# ($SSH_ORIGINAL_COMMAND) is never evaluated: it may hold only the letters
# of those words, it is split on spaces with globbing off, each word is
# compared with a fixed one, and the words are handed to xl as they are.
# Written by Salt (xen_migrate.trusted): local changes are overwritten.
set -f
IFS=' '
refuse() {
    echo "xen-nfsroot-migrate-receive: refused ($1): this key may only run" \
        "xl [-t] [-T] [-v...] migrate-receive [-e] [-d] [-p]" >&2
    exit 1
}
[ -n "${SSH_ORIGINAL_COMMAND:-}" ] || refuse "no command"
case $SSH_ORIGINAL_COMMAND in
*[!acdegilmprtvxT\ -]*) refuse "a character no xl migrate-receive command holds" ;;
esac
set -- $SSH_ORIGINAL_COMMAND
[ "${1:-}" = xl ] || refuse "not an xl command"
shift
stage=global
seen=' '
for word do
    case $stage:$word in
    global:-t | global:-T) option=$word ;;
    global:-v | global:-vv | global:-vvv | global:-vvvv) option=-v ;;
    global:migrate-receive) stage=receive; continue ;;
    receive:-e | receive:-d | receive:-p) option=$word ;;
    *) refuse "unexpected word $word" ;;
    esac
    case $seen in
    *" $option "*) refuse "$option given twice" ;;
    esac
    seen="$seen$option "
done
[ "$stage" = receive ] || refuse "not xl migrate-receive"
exec xl "$@"
"""


def wrapper_text():
    """
    The forced command of the peers' migration keys (a POSIX sh script,
    installed as :data:`WRAPPER`, mode 0755): it runs ``xl [-t] [-T]
    [-v...] migrate-receive [-e] [-d] [-p]`` as requested in
    ``$SSH_ORIGINAL_COMMAND`` (each option at most once, in any order
    within its group) and refuses anything else with exit status 1 and a
    message on stderr. Nothing the client sends is evaluated or expanded:
    the request may hold only the letters of those words and is split on
    spaces with globbing off. ``xl`` is looked up in the ``PATH`` sshd gives
    root's commands (Debian's ``/usr/sbin/xl``).

    CLI Example:

    .. code-block:: bash

        salt dom0-b xen_migrate.wrapper_text
    """
    return _WRAPPER


# ---------------------------------------------------------------------------
# The key pair and the files
# ---------------------------------------------------------------------------


def key_comment(minion_id=None):
    """
    The comment of this dom0's migration key: ``xen-nfsroot-migrate@<id>``.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.key_comment
    """
    minion_id = check_minion_id(minion_id or __opts__["id"])
    return f"{COMMENT_PREFIX}{minion_id}"


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


_PRIVATE_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_PRIVATE_END = "-----END OPENSSH PRIVATE KEY-----"
_PRIVATE_MAGIC = b"openssh-key-v1\0"


class _Reader:
    """The SSH wire format's uint32 and strings, from a byte string."""

    def __init__(self, raw):
        self.raw, self.offset = raw, 0

    def uint32(self):
        if self.offset + 4 > len(self.raw):
            raise ValueError("truncated")
        value = int.from_bytes(self.raw[self.offset:self.offset + 4], "big")
        self.offset += 4
        return value

    def string(self):
        length = self.uint32()
        if self.offset + length > len(self.raw):
            raise ValueError("truncated")
        value = self.raw[self.offset:self.offset + length]
        self.offset += length
        return value


def _private_public(path):
    """The public key line ("TYPE BLOB [COMMENT]") held in an OpenSSH
    private key file (``openssh-key-v1``, as ssh-keygen writes them): its
    public half is stored in clear; the comment is read from an
    unencrypted ed25519 key. Raises for anything else."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(1 << 20).decode("ascii")
        body = text.split(_PRIVATE_BEGIN, 1)[1].split(_PRIVATE_END, 1)[0]
        raw = base64.b64decode("".join(body.split()), validate=True)
        if not raw.startswith(_PRIVATE_MAGIC):
            raise ValueError("no openssh-key-v1 magic")
        reader = _Reader(raw[len(_PRIVATE_MAGIC):])
        cipher, _kdf, _options = reader.string(), reader.string(), reader.string()
        if reader.uint32() != 1:
            raise ValueError("not one key")
        public, private = reader.string(), _Reader(reader.string())
    except (OSError, IndexError, UnicodeDecodeError, ValueError, binascii.Error):
        raise CommandExecutionError(
            f"{path} is not an OpenSSH private key (ssh-keygen's openssh-key-v1 format)"
        ) from None
    if cipher != b"none":
        raise CommandExecutionError(f"{path} is protected by a passphrase: ssh cannot use it "
                                    "for unattended migrations")
    key_type = _Reader(public).string().decode("ascii", "replace")
    comment = ""
    try:
        if private.uint32() != private.uint32() or private.string() != key_type.encode():
            raise ValueError("check words or key types differ")
        if key_type == "ssh-ed25519":
            point, secret = private.string(), private.string()
            if secret[32:] != point or public[-32:] != point:
                raise ValueError("the private and public halves differ")
            comment = private.string().decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise CommandExecutionError(f"{path} is a damaged OpenSSH private key") from None
    return check_key_line(" ".join(filter(None, (key_type, base64.b64encode(public).decode(),
                                                 comment))), path)


def key_pair(path=KEY):
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
    path = check_path(path, "key")
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


def create_key(path=KEY, comment=None):
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
    path = check_path(path, "key")
    comment = key_comment() if comment is None else comment
    if not isinstance(comment, str) or not _COMMENT_RE.match(comment) or not comment:
        raise SaltInvocationError(f"comment: {comment!r} may hold only [A-Za-z0-9_.@:+=,/ -]")
    if os.path.lexists(path):
        raise CommandExecutionError(f"{path} exists: refusing to replace a private key")
    directory, name = os.path.split(path)
    _make_directory(directory, PRIVATE_DIRECTORY_MODE)
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
        os.chmod(temporary, PRIVATE_MODE)
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


def repair_key(path=KEY, mode=True, public=None):
    """
    Repair an existing key pair: with ``mode``, set the private key's mode
    to 0600; with ``public`` (a key line), write it as the ``.pub`` file.
    Returns True.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_migrate.repair_key public="$(ssh-keygen -y -f /etc/xen-nfsroot/migrate_key)"
    """
    path = check_path(path, "key")
    if mode:
        os.chmod(path, PRIVATE_MODE)
    if public is not None:
        line = check_key_line(public, "public")
        __salt__["nfsroot_files.write"](f"{path}.pub", line + "\n", mode=0o644)
    return True


def file_mode(path):
    """
    The permission bits of a file (None when it does not exist).

    CLI Example:

    .. code-block:: bash

        salt dom0-b xen_migrate.file_mode /usr/local/sbin/xen-nfsroot-migrate-receive
    """
    return _mode(check_path(path, "path"))


def write_file(path, text, mode=0o644, directory_mode=0o755, previous=None, exact_mode=False):  # noqa: PLR0913,PLR0917 (Salt calls it with keywords)
    """
    Write one of the trust's files atomically (``nfsroot_files.write``: a
    temporary file renamed over it, its mode and owner kept).

    mode
        The mode of a new file; with ``exact_mode``, of an existing one too
        (the wrapper must be executable).
    directory_mode
        The mode of its directory when it has to be created (``/root/.ssh``:
        0700); an existing directory is left as it is.
    previous
        The text the file held when it was read: written only if it still
        does (``nfsroot_files.write``'s compare and swap).

    Returns ``{"path", "created", "mode"}``.

    CLI Example:

    .. code-block:: bash

        salt dom0-b xen_migrate.write_file /etc/xen-nfsroot/known_hosts "$(...)" mode=0644
    """
    path = check_path(path, "path")
    directory = os.path.dirname(path)
    _make_directory(directory, directory_mode)
    written = __salt__["nfsroot_files.write"](path, text, mode=mode, previous=previous)
    if exact_mode and _mode(path) != mode:
        os.chmod(path, mode)
    return {"path": path, "created": written["created"], "mode": _mode(path)}
