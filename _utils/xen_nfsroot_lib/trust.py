"""
Migration trust between a guest's dom0s: the files that let ``xl migrate``
reach another dom0 over ssh, and nothing else, as plans (texts) the state
``xen_migrate.trusted`` writes.

``xl migrate -s SSH NAME HOST`` runs on the source dom0, through ``sh -c``::

    exec SSH HOST xl[ -t][ -T][ -v...] migrate-receive[ -e][ -d][ -p]

(Xen's ``tools/xl/xl_migrate.c``, ``main_migrate``: ``-t`` when stderr is a
terminal, ``-T`` with timestamps, ``-v`` to ``-vvvv`` with more verbosity;
``-e`` when the source does not daemonize, ``-d`` with ``--debug``, ``-p``
to pause the guest after the move.) The formula's trust has three parts:

* each dom0 holds one ed25519 key pair (:data:`KEY`, ``0600`` in a ``0700``
  directory) whose comment is ``xen-nfsroot-migrate@<minion id>``
  (:func:`key_comment`), and publishes its public half and its own ssh host
  keys through the Salt mine (:data:`MINE_FUNCTION`, the execution module's
  ``xen_migrate.public_keys``);
* each receiving dom0 adds, for each peer, one line to root's
  ``authorized_keys`` (:func:`authorized_line`):
  ``restrict,from="PEER ADDRESS",command="WRAPPER"``: no pty, no port,
  agent or X11 forwarding, only from that address, and only the forced
  command :data:`WRAPPER` (:func:`wrapper_text`), which runs ``xl
  migrate-receive`` with the options xl passes and refuses anything else;
* each sending dom0 trusts exactly its peers' host keys, in a
  ``known_hosts`` of its own (:data:`KNOWN_HOSTS`, :func:`plan_known_hosts`),
  and :func:`ssh_command` makes ssh use that key and that file only, never
  prompting (``BatchMode``) and never accepting an unknown host key.

No password and no unrestricted root key: a stolen migration key can start
``xl migrate-receive`` on a peer (receive a domain) and do nothing else.

The peers' entries in ``authorized_keys`` are the lines whose comment starts
with ``xen-nfsroot-migrate@``; every other line is kept byte for byte
(:func:`plan_authorized`). The comment of an entry names the peer the master
said the key came from (the mine is keyed by minion id), not what the key's
own comment claims. Key lines themselves are read by
:mod:`xen_nfsroot_lib.ssh_keys`.
"""

import ipaddress
import os
import re

from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import placement, ssh_keys, toolstack, values

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
#: The mine function that publishes a dom0's keys (the execution module's).
MINE_FUNCTION = "xen_migrate.public_keys"
#: The comment of every key and authorized_keys entry the formula owns.
COMMENT_PREFIX = "xen-nfsroot-migrate@"
#: The options ``xl migrate`` may put before and after ``migrate-receive``.
XL_GLOBAL_OPTIONS = ("-t", "-T", "-v", "-vv", "-vvv", "-vvvv")
XL_RECEIVE_OPTIONS = ("-e", "-d", "-p")
#: The mode of the private key and of a new authorized_keys, of a directory
#: created for them, and of the wrapper.
PRIVATE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700
WRAPPER_MODE = 0o755

# A path that may stand in an ssh command line and in command="...".
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./+-]*\Z")
_KNOWN_HOSTS_HEADER = (
    "# The ssh host keys of this dom0's migration peers, one line per key, each\n"
    "# ending with the peer's minion id. Written by Salt (xen_migrate.trusted):\n"
    "# local changes are overwritten.\n"
)


# ---------------------------------------------------------------------------
# Validators
# ---------------------------------------------------------------------------


def check_path(path, field="path"):
    """A path of the trust's files: absolute, normalised, of
    [A-Za-z0-9_./+-] only (it may stand in an ssh command line and in an
    ``authorized_keys`` option). Returns it."""
    if not isinstance(path, str) or not _PATH_RE.match(path) or os.path.normpath(path) != path:
        raise values.invalid(field, path, "is not a normalised absolute path of [A-Za-z0-9_./+-]")
    return path


def check_address(address, field="address"):
    """A peer's address: an IPv4 or IPv6 address (no zone id) or a host
    name (:func:`xen_nfsroot_lib.toolstack.check_host`). Returns it (an IP
    address in its canonical form).

    It is written as exactly one element of sshd's ``from="..."`` pattern
    list and as the host pattern of a ``known_hosts`` line (``ADDRESS`` or
    ``[ADDRESS]:PORT``, the form ssh looks up for another port than 22), so
    it holds no character either reads as syntax: no ``"``, ``,``,
    whitespace, newline, ``*``, ``?``, ``!``, ``[``, ``]`` or ``%``.

    sshd matches ``from=`` against the client's IP address, and against its
    host name only with ``UseDNS yes``: give the address the peer connects
    from."""
    address = toolstack.check_host(address, field)
    if values.is_ip_address(address):
        return str(ipaddress.ip_address(address))
    return address


def check_port(port, field="port"):
    """An ssh port (1-65535, default 22; digits in a string are accepted);
    returns it as an integer."""
    if port is None:
        return 22
    if isinstance(port, str) and re.fullmatch(r"[0-9]{1,5}", port):
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise values.invalid(field, port, "is not a TCP port (1-65535)")
    return port


def check_peers(peers, field="peers"):
    """The peers of a dom0: a mapping ``{minion id: address}`` or
    ``{minion id: {address: ADDRESS, port: PORT}}``. Returns
    ``{minion id: {"address": ..., "port": ...}}`` (port default 22)."""
    if not isinstance(peers, dict):
        raise values.invalid(field, peers, "is not a mapping of minion id to address")
    checked = {}
    for minion_id, peer in peers.items():
        placement.check_dom0(minion_id, f"{field}: minion id")
        where = f"{field}.{minion_id}"
        if isinstance(peer, dict):
            unknown = sorted(set(peer) - {"address", "port"}, key=str)
            if unknown:
                raise values.invalid(f"{where}.{unknown[0]}", peer[unknown[0]],
                                     "is not a peer key (address, port)")
            address, port = peer.get("address"), peer.get("port")
        else:
            address, port = peer, None
        checked[minion_id] = {"address": check_address(address, f"{where}.address"),
                              "port": check_port(port, f"{where}.port")}
    return checked


def check_mined(minion_id, mined):
    """What a peer published through the mine (:data:`MINE_FUNCTION`):
    ``{"migrate_key": line or None, "host_keys": [lines]}``. Returns it with
    the lines checked; raises naming the minion, the field and the value."""
    where = f"mine data of {minion_id} ({MINE_FUNCTION})"
    if not isinstance(mined, dict):
        raise values.invalid(where, mined, "is not a mapping with migrate_key and host_keys")
    key = mined.get("migrate_key")
    host_keys = mined.get("host_keys", [])
    if not isinstance(host_keys, list):
        raise values.invalid(f"{where}: host_keys", host_keys, "is not a list")
    return {
        "migrate_key": (None if key is None
                        else ssh_keys.check_key_line(key, f"{where}: migrate_key")),
        "host_keys": [ssh_keys.check_key_line(line, f"{where}: host_keys")
                      for line in host_keys],
    }


def key_comment(minion_id):
    """The comment of a dom0's migration key: ``xen-nfsroot-migrate@<id>``."""
    return f"{COMMENT_PREFIX}{placement.check_dom0(minion_id, 'minion id')}"


# ---------------------------------------------------------------------------
# The ssh command line xl runs
# ---------------------------------------------------------------------------


def ssh_command(port=None, key=KEY, known_hosts=KNOWN_HOSTS):
    """The ssh command line for ``xl migrate -s`` (``xm.migrate``'s
    ``ssh_command``): this dom0's migration key only, its own known_hosts
    only, no prompt, no unknown host key::

        ssh -i KEY -o BatchMode=yes -o IdentitiesOnly=yes
            -o UserKnownHostsFile=KNOWN_HOSTS -o StrictHostKeyChecking=yes [-p PORT]

    port
        The peer's ssh port (none or 22: ssh's default).
    """
    words = ["ssh", "-i", check_path(key, "key"), "-o", "BatchMode=yes",
             "-o", "IdentitiesOnly=yes",
             "-o", f"UserKnownHostsFile={check_path(known_hosts, 'known_hosts')}",
             "-o", "StrictHostKeyChecking=yes"]
    port = check_port(port)
    if port != 22:
        words += ["-p", str(port)]
    command = " ".join(words)
    if not toolstack.SSH_COMMAND_RE.match(command):  # the paths are checked above: xm's rule
        raise values.invalid("ssh_command", command, "is not an ssh command line")
    return command


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
    rest = text if ssh_keys.TYPE_WORD_RE.match(first) else _split_options(text)[1]
    split = ssh_keys.split_key(rest)
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
    """
    key_type, blob, own = ssh_keys.split_key(ssh_keys.check_key_line(key_line))
    address = check_address(address)
    wrapper = check_path(wrapper, "wrapper")
    comment = ssh_keys.check_comment(own if comment is None else comment)
    options = f'restrict,from="{address}",command="{wrapper}"'
    return " ".join(filter(None, (options, key_type, blob, comment)))


def authorized_peers(text):
    """
    The entries the formula owns in an ``authorized_keys`` text:
    ``{peer id: [lines]}`` (the lines whose comment starts with
    ``xen-nfsroot-migrate@``, without their line ends).
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
    """
    if not isinstance(peers, dict):
        raise values.invalid("peers", peers, "is not a mapping of minion id to key")
    wanted = {}
    for peer, entry in peers.items():
        placement.check_dom0(peer, "peers: minion id")
        if entry is None:
            wanted[peer] = None
            continue
        if not isinstance(entry, dict):
            raise values.invalid(f"peers.{peer}", entry, "is not a mapping with key and address")
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
    """
    if not isinstance(peers, dict):
        raise values.invalid("peers", peers, "is not a mapping of minion id to host keys")
    lines = [_KNOWN_HOSTS_HEADER]
    for peer in sorted(peers):
        placement.check_dom0(peer, "peers: minion id")
        entry = peers[peer]
        if not isinstance(entry, dict):
            raise values.invalid(f"peers.{peer}", entry,
                                 "is not a mapping with address and host_keys")
        pattern = _host_pattern(check_address(entry.get("address"), f"peers.{peer}.address"),
                                check_port(entry.get("port"), f"peers.{peer}.port"))
        host_keys = entry.get("host_keys") or []
        if not isinstance(host_keys, list):
            raise values.invalid(f"peers.{peer}.host_keys", host_keys, "is not a list")
        seen = []
        for line in host_keys:
            key = ssh_keys.key_of(ssh_keys.check_key_line(line, f"peers.{peer}.host_keys"))
            if key not in seen:
                seen.append(key)
                lines.append(f"{pattern} {key} {peer}\n")
    return "".join(lines)


def known_hosts_peers(text):
    """
    The peers of a known_hosts text written by :func:`plan_known_hosts`:
    ``{peer id: {"address", "port", "host_keys": ["TYPE BLOB", ...]}}``.
    Lines that do not parse are left out.
    """
    peers = {}
    for line in (text or "").splitlines():
        words = line.split()
        if (len(words) != 4 or words[0].startswith("#")
                or not values.MINION_ID_RE.match(words[3])):
            continue
        match = re.fullmatch(r"\[(.+)\]:(\d+)", words[0])
        address, port = (match.group(1), int(match.group(2))) if match else (words[0], 22)
        try:
            key = ssh_keys.check_key_line(" ".join(words[1:3]))
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
    """
    return _WRAPPER
