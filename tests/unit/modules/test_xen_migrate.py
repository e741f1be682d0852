"""The xen_migrate execution module: key lines, the authorized_keys and
known_hosts planners, the ssh command line, the forced command (run by the
real /bin/sh) and the key pair (made by the real ssh-keygen, through a
cmd.run_all stand-in that records its argument list)."""

import base64
import os
import stat
import struct
import subprocess

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.loader import functions
from xen_nfsroot.modules import nfsroot_files, xen_migrate, xm

WRAPPER = "/usr/local/sbin/xen-nfsroot-migrate-receive"


def blob(key_type="ssh-ed25519", seed=1):
    """The base64 blob of a (made-up) public key of that type."""
    name = key_type.encode()
    raw = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + bytes([seed]) * 32
    return base64.b64encode(raw).decode()


def key_line(comment="xen-nfsroot-migrate@dom0-a", key_type="ssh-ed25519", seed=1):
    return " ".join(filter(None, (key_type, blob(key_type, seed), comment)))


class RunAll:
    """cmd.run_all: runs the argument list for real, records it."""

    def __init__(self):
        self.calls = []
        self.fail = False

    def __call__(self, cmd, python_shell=None, ignore_retcode=None):
        assert isinstance(cmd, list)
        assert python_shell is False
        self.calls.append(cmd)
        if self.fail:
            return {"retcode": 1, "stdout": "", "stderr": "ssh-keygen: simulated failure"}
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False)
        return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture
def run_all():
    return RunAll()


@pytest.fixture
def configure_loader_modules(run_all):
    salt = functions(xen_migrate, nfsroot_files)
    salt["cmd.run_all"] = run_all
    opts = {"id": "dom0-a", "test": False}
    return {xen_migrate: {"__salt__": salt, "__opts__": opts},
            nfsroot_files: {"__salt__": salt, "__opts__": opts}}


# ---------------------------------------------------------------------------
# Constants and the ssh command line
# ---------------------------------------------------------------------------


def test_the_paths_are_the_formulas():
    assert xen_migrate.KEY == "/etc/xen-nfsroot/migrate_key"
    assert xen_migrate.KNOWN_HOSTS == "/etc/xen-nfsroot/known_hosts"
    assert xen_migrate.WRAPPER == WRAPPER
    assert xen_migrate.AUTHORIZED_KEYS == "/root/.ssh/authorized_keys"
    assert xen_migrate.__virtual__() == "xen_migrate"


def test_ssh_command_uses_the_key_and_known_hosts_only():
    command = xen_migrate.ssh_command()
    assert command == (
        "ssh -i /etc/xen-nfsroot/migrate_key -o BatchMode=yes -o IdentitiesOnly=yes "
        "-o UserKnownHostsFile=/etc/xen-nfsroot/known_hosts -o StrictHostKeyChecking=yes")
    assert xm.SSH_COMMAND_RE.match(command)
    assert xen_migrate.ssh_command(port=22) == command
    assert xen_migrate.ssh_command(port=2222) == command + " -p 2222"
    assert xen_migrate.ssh_command(port="2222", key="/tmp/k", known_hosts="/tmp/kh") == (
        "ssh -i /tmp/k -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=/tmp/kh "
        "-o StrictHostKeyChecking=yes -p 2222")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"port": 0}, "port: 0 is not a TCP port (1-65535)"),
    ({"port": True}, "port: True is not a TCP port (1-65535)"),
    ({"port": 70000}, "port: 70000 is not a TCP port (1-65535)"),
    ({"key": "/tmp/a key"}, "key: '/tmp/a key' is not a normalised absolute path"),
    ({"key": "relative"}, "key: 'relative' is not a normalised absolute path"),
    ({"known_hosts": "/tmp/$(id)"}, "known_hosts: '/tmp/$(id)' is not a normalised"),
    ({"known_hosts": "/tmp/../etc"}, "known_hosts: '/tmp/../etc' is not a normalised"),
])
def test_ssh_command_refuses_what_sh_would_interpret(kwargs, message):
    with pytest.raises(SaltInvocationError, match=message.replace("(", r"\(").replace(
            ")", r"\)").replace("$", r"\$")):
        xen_migrate.ssh_command(**kwargs)


# ---------------------------------------------------------------------------
# Key lines
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", xen_migrate.KEY_TYPES)
def test_every_allowed_key_type_is_accepted(key_type):
    line = key_line("root@dom0-b", key_type)
    assert xen_migrate.check_key_line(f"  {line}\n") == line


def test_a_key_line_is_normalised_and_its_comment_may_be_missing():
    assert xen_migrate.check_key_line(f"ssh-ed25519  {blob()}") == f"ssh-ed25519 {blob()}"
    assert xen_migrate.check_key_line(f"ssh-ed25519 {blob()} a b") == f"ssh-ed25519 {blob()} a b"


@pytest.mark.parametrize(("line", "message"), [
    (None, "is not an OpenSSH public key line"),
    ("", "is not an OpenSSH public key line"),
    ("ssh-ed25519", "is not an OpenSSH public key line"),
    (f"ssh-ed25519 {blob()} x\nssh-rsa {blob('ssh-rsa')} y", "is not an OpenSSH public key line"),
    (f"ssh-dss {blob('ssh-dss')} x", "key type 'ssh-dss' is not one of ssh-ed25519"),
    (f"ssh-ed25519 {blob('ssh-rsa')} x", "the key is a 'ssh-rsa' key, not 'ssh-ed25519'"),
    ("ssh-ed25519 AAAA!!!! x", "the key is not valid base64 of an ssh public key"),
    ("ssh-ed25519 QUJD x", "the key is not valid base64 of an ssh public key"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 x", "the key is not valid base64 of an ssh public key"),
    (f'ssh-ed25519 {blob()} a"b', r"the comment may hold only \[A-Za-z0-9_.@:\+=,/ -\]"),
    (f"ssh-ed25519 {blob()} a\tb", "the comment may hold only"),
    (f"ssh-ed25519 {blob()} a\\b", "the comment may hold only"),
])
def test_a_bad_key_line_is_refused_naming_the_value(line, message):
    with pytest.raises(SaltInvocationError, match=message) as err:
        xen_migrate.check_key_line(line, "dom0-b: migrate_key")
    assert str(err.value).startswith(f"dom0-b: migrate_key: {line!r}")


def test_check_mined_names_the_minion_field_and_value():
    good = {"migrate_key": key_line(), "host_keys": [key_line("root@b", seed=2)]}
    assert xen_migrate.check_mined("dom0-b", good) == good
    assert xen_migrate.check_mined("dom0-b", {"migrate_key": None}) == {
        "migrate_key": None, "host_keys": []}
    with pytest.raises(SaltInvocationError) as err:
        xen_migrate.check_mined("dom0-b", {"migrate_key": "ssh-ed25519 junk", "host_keys": []})
    assert str(err.value).startswith(
        "mine data of dom0-b (xen_migrate.public_keys): migrate_key: 'ssh-ed25519 junk': ")
    with pytest.raises(SaltInvocationError, match=r"dom0-b .*: host_keys: 'x' is not a list"):
        xen_migrate.check_mined("dom0-b", {"migrate_key": None, "host_keys": "x"})
    with pytest.raises(SaltInvocationError, match=r"dom0-b .*: 'oops' is not a mapping"):
        xen_migrate.check_mined("dom0-b", "oops")


# ---------------------------------------------------------------------------
# Peers and addresses
# ---------------------------------------------------------------------------


def test_check_peers_takes_an_address_or_an_address_and_port():
    assert xen_migrate.check_peers({"dom0-b": "192.0.2.11",
                                    "dom0-c": {"address": "2001:DB8::1", "port": 2222},
                                    "dom0-d": "dom0-d.example.org"}) == {
        "dom0-b": {"address": "192.0.2.11", "port": 22},
        "dom0-c": {"address": "2001:db8::1", "port": 2222},
        "dom0-d": {"address": "dom0-d.example.org", "port": 22},
    }
    assert xen_migrate.check_peers({}) == {}


@pytest.mark.parametrize(("peers", "message"), [
    (["dom0-b"], "peers: ['dom0-b'] is not a mapping of minion id to address"),
    ("dom0-b", "peers: 'dom0-b' is not a mapping of minion id to address"),
    ({"dom0 b": "192.0.2.11"}, r"peers: minion id: 'dom0 b' is not a minion id"),
    ({"dom0-b": "192.0.2.300"}, "peers.dom0-b.address: '192.0.2.300' is not an IP address"),
    ({"dom0-b": "a;b"}, "peers.dom0-b.address: 'a;b' is not an IP address or host name"),
    ({"dom0-b": None}, "peers.dom0-b.address: None is not an IP address or host name"),
    ({"dom0-b": {"address": "192.0.2.11", "port": "x"}}, "peers.dom0-b.port: 'x' is not a TCP"),
    ({"dom0-b": {"address": "192.0.2.11", "user": "x"}}, "peers.dom0-b.user: 'x' is not a peer"),
])
def test_bad_peers_are_refused_naming_the_field_and_value(peers, message):
    with pytest.raises(SaltInvocationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        xen_migrate.check_peers(peers)


# ---------------------------------------------------------------------------
# authorized_keys
# ---------------------------------------------------------------------------


def test_the_authorized_line_is_restricted_to_the_wrapper_and_the_address():
    assert xen_migrate.authorized_line(key_line(), "192.0.2.10") == (
        f'restrict,from="192.0.2.10",command="{WRAPPER}" ssh-ed25519 {blob()} '
        "xen-nfsroot-migrate@dom0-a")
    assert xen_migrate.authorized_line(key_line(), "2001:DB8::a", wrapper="/opt/w",
                                       comment="xen-nfsroot-migrate@x") == (
        f'restrict,from="2001:db8::a",command="/opt/w" ssh-ed25519 {blob()} '
        "xen-nfsroot-migrate@x")
    with pytest.raises(SaltInvocationError, match="address: '\"x' is not an IP address"):
        xen_migrate.authorized_line(key_line(), '"x')
    with pytest.raises(SaltInvocationError, match="wrapper: '/a\"b' is not a normalised"):
        xen_migrate.authorized_line(key_line(), "192.0.2.10", wrapper='/a"b')


HAND_MADE = (
    "# root's keys\r\n"
    'command="/usr/bin/backup",from="10.0.0.1,10.0.0.2",no-pty ssh-ed25519 '
    f"{blob(seed=9)} backup@host\r\n"
    "\n"
    f'environment="A=b c" {key_line("admin with spaces", seed=8)}\n'
    "this line is not a key at all\n"
    f"{key_line('root@laptop', 'ssh-rsa', seed=7)}"
)


def owned(peer, seed, address="192.0.2.11"):
    return (f'restrict,from="{address}",command="{WRAPPER}" ssh-ed25519 {blob(seed=seed)} '
            f"xen-nfsroot-migrate@{peer}")


def test_plan_authorized_appends_the_peers_and_keeps_every_other_byte():
    text = xen_migrate.plan_authorized(HAND_MADE, {
        "dom0-c": {"key": key_line("whatever", seed=3), "address": "192.0.2.12"},
        "dom0-b": {"key": key_line("xen-nfsroot-migrate@dom0-b", seed=2),
                   "address": "192.0.2.11"},
    })
    assert text == (HAND_MADE + "\n" + owned("dom0-b", 2) + "\n"
                    + owned("dom0-c", 3, "192.0.2.12") + "\n")
    assert xen_migrate.plan_authorized(text, {
        "dom0-c": {"key": key_line("whatever", seed=3), "address": "192.0.2.12"},
        "dom0-b": {"key": key_line("xen-nfsroot-migrate@dom0-b", seed=2),
                   "address": "192.0.2.11"},
    }) == text
    assert xen_migrate.authorized_peers(text) == {
        "dom0-b": [owned("dom0-b", 2)], "dom0-c": [owned("dom0-c", 3, "192.0.2.12")]}


def test_plan_authorized_replaces_in_place_removes_and_drops_duplicates():
    current = (f"{owned('dom0-b', 2)}\n# keep\n{owned('dom0-x', 5)}\n{owned('dom0-b', 2)}\n"
               f"{key_line('me@host', seed=6)}\n")
    text = xen_migrate.plan_authorized(current, {
        "dom0-b": {"key": key_line(seed=4), "address": "192.0.2.21"}})
    assert text == f"{owned('dom0-b', 4, '192.0.2.21')}\n# keep\n{key_line('me@host', seed=6)}\n"
    assert xen_migrate.plan_authorized(current, {}) == (
        f"# keep\n{key_line('me@host', seed=6)}\n")


def test_a_peer_given_as_none_keeps_its_entries_and_gets_none_new():
    current = f"{owned('dom0-b', 2)}\r\n"
    assert xen_migrate.plan_authorized(current, {"dom0-b": None, "dom0-c": None}) == current


def test_an_owned_line_the_plan_would_write_again_is_kept_byte_for_byte():
    current = f"{owned('dom0-b', 2)}\r\nend"
    assert xen_migrate.plan_authorized(current, {
        "dom0-b": {"key": key_line(seed=2), "address": "192.0.2.11"}}) == current


def test_a_commented_out_or_foreign_line_is_not_owned():
    current = (f"# {owned('dom0-b', 2)}\n"
               f'from="x" ssh-ed25519 {blob()} admin xen-nfsroot-migrate@dom0-b\n')
    assert xen_migrate.authorized_peers(current) == {}
    assert xen_migrate.plan_authorized(current, {}) == current


def test_plan_authorized_refuses_bad_peers():
    with pytest.raises(SaltInvocationError, match="peers: minion id: 'a b' is not a minion id"):
        xen_migrate.plan_authorized("", {"a b": None})
    with pytest.raises(SaltInvocationError, match="peers.dom0-b: 'x' is not a mapping"):
        xen_migrate.plan_authorized("", {"dom0-b": "x"})
    with pytest.raises(SaltInvocationError, match="address: None is not an IP address"):
        xen_migrate.plan_authorized("", {"dom0-b": {"key": key_line()}})


# ---------------------------------------------------------------------------
# known_hosts
# ---------------------------------------------------------------------------


def test_plan_known_hosts_and_its_parser_round_trip():
    peers = {
        "dom0-c": {"address": "192.0.2.12", "port": 2222,
                   "host_keys": [key_line("root@c", seed=3), key_line("again", seed=3)]},
        "dom0-b": {"address": "192.0.2.11",
                   "host_keys": [key_line("root@b", seed=2),
                                 key_line("root@b", "ecdsa-sha2-nistp256", seed=4)]},
        "dom0-d": {"address": "2001:db8::4", "port": 22, "host_keys": []},
    }
    text = xen_migrate.plan_known_hosts(peers)
    lines = text.splitlines()
    assert all(line.startswith("# ") for line in lines[:3])
    assert lines[3:] == [
        f"192.0.2.11 ssh-ed25519 {blob(seed=2)} dom0-b",
        f"192.0.2.11 ecdsa-sha2-nistp256 {blob('ecdsa-sha2-nistp256', 4)} dom0-b",
        f"[192.0.2.12]:2222 ssh-ed25519 {blob(seed=3)} dom0-c",
    ]
    assert xen_migrate.known_hosts_peers(text) == {
        "dom0-b": {"address": "192.0.2.11", "port": 22,
                   "host_keys": [f"ssh-ed25519 {blob(seed=2)}",
                                 f"ecdsa-sha2-nistp256 {blob('ecdsa-sha2-nistp256', 4)}"]},
        "dom0-c": {"address": "192.0.2.12", "port": 2222,
                   "host_keys": [f"ssh-ed25519 {blob(seed=3)}"]},
    }
    assert xen_migrate.known_hosts_peers("junk\n[x]:1 a b c\n") == {}


def test_plan_known_hosts_refuses_a_bad_host_key():
    with pytest.raises(SaltInvocationError, match=r"peers.dom0-b.host_keys: 'ssh-ed25519 x'"):
        xen_migrate.plan_known_hosts({"dom0-b": {"address": "192.0.2.11",
                                                 "host_keys": ["ssh-ed25519 x"]}})


# ---------------------------------------------------------------------------
# The forced command, run by the real /bin/sh
# ---------------------------------------------------------------------------


@pytest.fixture
def wrapper(tmp_path):
    """Run the wrapper with SSH_ORIGINAL_COMMAND; a fake xl records its argv."""
    script = tmp_path / "wrapper"
    script.write_text(xen_migrate.wrapper_text())
    script.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "xl.argv"
    (bin_dir / "xl").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >{record}\ncat\n')
    (bin_dir / "xl").chmod(0o755)

    def run(command, stdin=b""):
        record.unlink(missing_ok=True)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        if command is not None:
            env["SSH_ORIGINAL_COMMAND"] = command
        proc = subprocess.run([str(script)], input=stdin, env=env, capture_output=True,
                              cwd=tmp_path, check=False)
        argv = record.read_text().splitlines() if record.exists() else None
        return proc, argv

    return run


ACCEPTED = [
    "xl migrate-receive",
    "xl migrate-receive -e",
    "xl migrate-receive -d",
    "xl migrate-receive -p",
    "xl migrate-receive -e -d -p",
    "xl migrate-receive -p -e",
    "xl -t migrate-receive -e",
    "xl -T migrate-receive",
    "xl -v migrate-receive",
    "xl -vvvv migrate-receive -d",
    "xl -t -T -vv migrate-receive -e -d -p",
    "xl -vvv -T -t migrate-receive",
]


@pytest.mark.parametrize("command", ACCEPTED)
def test_the_wrapper_runs_what_xl_migrate_sends(wrapper, command):
    proc, argv = wrapper(command, stdin=b"\x00stream\xff")
    assert proc.returncode == 0, proc.stderr
    assert argv == command.split()[1:]
    assert proc.stdout == b"\x00stream\xff"


def test_the_wrapper_splits_on_spaces_only(wrapper):
    proc, argv = wrapper("  xl  -t   migrate-receive  -p ")
    assert proc.returncode == 0
    assert argv == ["-t", "migrate-receive", "-p"]


REFUSED = {
    None: "no command",
    "": "no command",
    "xl list": "a character",
    "sh": "a character",
    "id": "not an xl command",
    "xl migrate-receive; id": "a character",
    "xl migrate-receive && id": "a character",
    "xl migrate-receive $(id)": "a character",
    "xl migrate-receive `id`": "a character",
    "xl migrate-receive\nid": "a character",
    "xl\tmigrate-receive": "a character",
    "xl migrate-receive *": "a character",
    "xl migrate-receive -r": "unexpected word -r",
    "xl migrate-receive --colo": "a character",
    "xl migrate-receive --e": "unexpected word --e",
    "xl migrate-receive -ed": "unexpected word -ed",
    "xl migrate-receive -e -e": "-e given twice",
    "xl -t -t migrate-receive": "-t given twice",
    "xl -v -vv migrate-receive": "-v given twice",
    "xl -vvvvv migrate-receive": "unexpected word -vvvvv",
    "xl migrate-receive -t": "unexpected word -t",
    "xl -e migrate-receive": "unexpected word -e",
    "xl migrate-receive migrate-receive": "unexpected word migrate-receive",
    "xl -t": "not xl migrate-receive",
    "xl": "not xl migrate-receive",
    "-t migrate-receive": "not an xl command",
    "xl -d migrate-receive": "unexpected word -d",
    "/usr/sbin/xl migrate-receive": "a character",
}


@pytest.mark.parametrize("command", list(REFUSED), ids=repr)
def test_the_wrapper_refuses_anything_else(wrapper, tmp_path, command):
    proc, argv = wrapper(command)
    assert proc.returncode == 1
    assert argv is None
    assert proc.stdout == b""
    assert proc.stderr.decode().startswith(
        f"xen-nfsroot-migrate-receive: refused ({REFUSED[command]}")
    assert proc.stderr.decode().rstrip().endswith(
        "this key may only run xl [-t] [-T] [-v...] migrate-receive [-e] [-d] [-p]")
    assert sorted(os.listdir(tmp_path)) == ["bin", "wrapper"]


def test_the_wrapper_never_expands_the_request(wrapper, tmp_path):
    marker = tmp_path / "expanded"
    for command in (f"xl migrate-receive $(touch {marker})", f"xl `touch {marker}`",
                    f"xl migrate-receive;touch {marker}"):
        proc, argv = wrapper(command)
        assert proc.returncode == 1
        assert not marker.exists()
    code = [line for line in xen_migrate.wrapper_text().splitlines()
            if not line.lstrip().startswith("#")]
    assert not [line for line in code if "eval" in line]


# ---------------------------------------------------------------------------
# The key pair and the mine function
# ---------------------------------------------------------------------------


def test_create_key_makes_an_ed25519_pair_with_ssh_keygen(tmp_path, run_all):
    path = tmp_path / "etc" / "xen-nfsroot" / "migrate_key"
    line = xen_migrate.create_key(str(path))
    assert line.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
    assert line.endswith(" xen-nfsroot-migrate@dom0-a")
    assert xen_migrate.check_key_line(line) == line
    (command,) = run_all.calls
    assert command[0].endswith("/ssh-keygen")
    assert command[1:8] == ["-q", "-t", "ed25519", "-N", "", "-C",
                            "xen-nfsroot-migrate@dom0-a"]
    assert command[8] == "-f"
    assert command[9].startswith(str(path.parent / ".migrate_key.xen-nfsroot-"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert (tmp_path / "etc" / "xen-nfsroot" / "migrate_key.pub").read_text() == line + "\n"
    assert sorted(os.listdir(path.parent)) == ["migrate_key", "migrate_key.pub"]
    pair = xen_migrate.key_pair(str(path))
    assert pair == {"private": True, "mode": 0o600, "public": line, "derived": line}


def test_create_key_never_replaces_a_private_key(tmp_path, run_all):
    path = tmp_path / "key"
    path.write_text("precious")
    with pytest.raises(CommandExecutionError, match="exists: refusing to replace a private key"):
        xen_migrate.create_key(str(path))
    assert path.read_text() == "precious"
    assert run_all.calls == []


def test_a_failed_ssh_keygen_leaves_nothing(tmp_path, run_all):
    run_all.fail = True
    with pytest.raises(CommandExecutionError,
                       match="ssh-keygen failed .exit status 1.: ssh-keygen: simulated failure"):
        xen_migrate.create_key(str(tmp_path / "key"))
    assert os.listdir(tmp_path) == []


def test_key_pair_of_a_missing_and_an_unreadable_key(tmp_path):
    assert xen_migrate.key_pair(str(tmp_path / "key")) == {
        "private": False, "mode": None, "public": None, "derived": None}
    (tmp_path / "key").write_text("not a key\n")
    with pytest.raises(CommandExecutionError, match=(
            r"key is not an OpenSSH private key \(ssh-keygen's openssh-key-v1 format\)")):
        xen_migrate.key_pair(str(tmp_path / "key"))
    (tmp_path / "dir").mkdir()
    with pytest.raises(CommandExecutionError, match="dir is not a regular file"):
        xen_migrate.key_pair(str(tmp_path / "dir"))


def test_key_pair_reads_the_public_half_from_the_private_key_whatever_its_mode(tmp_path):
    path = tmp_path / "key"
    line = xen_migrate.create_key(str(path), comment="a comment")
    path.chmod(0o644)
    (tmp_path / "key.pub").unlink()
    assert xen_migrate.key_pair(str(path)) == {
        "private": True, "mode": 0o644, "public": None, "derived": line}
    assert line.endswith(" a comment")


def test_key_pair_refuses_a_key_with_a_passphrase_or_a_damaged_one(tmp_path):
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(path)],
                   check=True)
    with pytest.raises(CommandExecutionError, match="key is protected by a passphrase"):
        xen_migrate.key_pair(str(path))
    path.unlink()
    xen_migrate.create_key(str(path))
    lines = path.read_text().splitlines()
    raw = bytearray(base64.b64decode("".join(lines[1:-1])))
    reader = xen_migrate._Reader(bytes(raw[len(b"openssh-key-v1\0"):]))
    for _ in range(3):
        reader.string()
    reader.uint32()
    reader.string()
    raw[len(b"openssh-key-v1\0") + reader.offset + 4] ^= 0xFF  # the first check word
    path.write_text(f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n{lines[-1]}\n")
    with pytest.raises(CommandExecutionError, match="key is a damaged OpenSSH private key"):
        xen_migrate.key_pair(str(path))


def test_repair_key_sets_the_mode_and_writes_the_public_half(tmp_path):
    path = tmp_path / "key"
    line = xen_migrate.create_key(str(path))
    path.chmod(0o644)
    (tmp_path / "key.pub").unlink()
    assert xen_migrate.repair_key(str(path), public=line) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "key.pub").read_text() == line + "\n"


def test_public_keys_publishes_the_migration_key_and_the_host_keys(tmp_path):
    key = tmp_path / "migrate_key"
    host = tmp_path / "ssh"
    host.mkdir()
    (host / "ssh_host_ed25519_key.pub").write_text(key_line("root@dom0-a", seed=2) + "\n")
    (host / "ssh_host_rsa_key.pub").write_text(key_line("root@dom0-a", "ssh-rsa", 3) + "\n")
    (host / "ssh_host_bad_key.pub").write_text("garbage\n")
    pattern = str(host / "ssh_host_*_key.pub")
    assert xen_migrate.public_keys(str(key), pattern) == {
        "migrate_key": None,
        "host_keys": [key_line("root@dom0-a", seed=2), key_line("root@dom0-a", "ssh-rsa", 3)]}
    line = xen_migrate.create_key(str(key))
    assert xen_migrate.public_keys(str(key), pattern)["migrate_key"] == line


def test_write_file_creates_a_private_directory_and_keeps_an_existing_mode(tmp_path):
    path = tmp_path / "root" / ".ssh" / "authorized_keys"
    assert xen_migrate.write_file(str(path), "a\n", mode=0o600, directory_mode=0o700) == {
        "path": str(path), "created": True, "mode": 0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o640)
    os.chown(path, 1234, 5678)
    assert xen_migrate.write_file(str(path), "b\n", mode=0o600, previous=b"a\n")["mode"] == 0o640
    assert (path.read_text(), path.stat().st_uid, path.stat().st_gid) == ("b\n", 1234, 5678)
    with pytest.raises(CommandExecutionError, match="changed since it was read"):
        xen_migrate.write_file(str(path), "c\n", previous=b"a\n")
    assert path.read_text() == "b\n"
    assert xen_migrate.write_file(str(path), "b\n", mode=0o755, exact_mode=True)["mode"] == 0o755
    assert xen_migrate.file_mode(str(path)) == 0o755
    assert xen_migrate.file_mode(str(tmp_path / "missing")) is None


def test_key_comment_names_the_minion():
    assert xen_migrate.key_comment() == "xen-nfsroot-migrate@dom0-a"
    assert xen_migrate.key_comment("dom0-b") == "xen-nfsroot-migrate@dom0-b"
    with pytest.raises(SaltInvocationError, match="minion id: 'a b' is not a minion id"):
        xen_migrate.key_comment("a b")


def test_every_public_function_has_a_cli_example():
    public = functions(xen_migrate)
    assert "xen_migrate.plan_authorized" in public
    for name, function in public.items():
        assert "CLI Example:" in (function.__doc__ or ""), name
