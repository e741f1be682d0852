"""The migration trust's plans: the paths, the peers and mined keys, the
ssh command line, the authorized_keys and known_hosts texts, and the forced
command (run by the real /bin/sh)."""

import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

from tests.unit.utils.test_ssh_keys import blob, key_line
from xen_nfsroot_lib import toolstack, trust

WRAPPER = "/usr/local/sbin/xen-nfsroot-migrate-receive"


# ---------------------------------------------------------------------------
# Constants and the ssh command line
# ---------------------------------------------------------------------------


def test_the_paths_are_the_formulas():
    assert trust.KEY == "/etc/xen-nfsroot/migrate_key"
    assert trust.KNOWN_HOSTS == "/etc/xen-nfsroot/known_hosts"
    assert trust.WRAPPER == WRAPPER
    assert trust.AUTHORIZED_KEYS == "/root/.ssh/authorized_keys"
    assert trust.HOST_KEYS == "/etc/ssh/ssh_host_*_key.pub"
    assert trust.MINE_FUNCTION == "xen_migrate.public_keys"


def test_ssh_command_uses_the_key_and_known_hosts_only():
    command = trust.ssh_command()
    assert command == (
        "ssh -i /etc/xen-nfsroot/migrate_key -o BatchMode=yes -o IdentitiesOnly=yes "
        "-o UserKnownHostsFile=/etc/xen-nfsroot/known_hosts -o StrictHostKeyChecking=yes")
    assert toolstack.SSH_COMMAND_RE.match(command)
    assert trust.ssh_command(port=22) == command
    assert trust.ssh_command(port=2222) == command + " -p 2222"
    assert trust.ssh_command(port="2222", key="/tmp/k", known_hosts="/tmp/kh") == (
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
        trust.ssh_command(**kwargs)


# ---------------------------------------------------------------------------
# Mined keys
# ---------------------------------------------------------------------------


def test_check_mined_names_the_minion_field_and_value():
    good = {"migrate_key": key_line(), "host_keys": [key_line("root@b", seed=2)]}
    assert trust.check_mined("dom0-b", good) == good
    assert trust.check_mined("dom0-b", {"migrate_key": None}) == {
        "migrate_key": None, "host_keys": []}
    with pytest.raises(SaltInvocationError) as err:
        trust.check_mined("dom0-b", {"migrate_key": "ssh-ed25519 junk", "host_keys": []})
    assert str(err.value).startswith(
        "mine data of dom0-b (xen_migrate.public_keys): migrate_key: 'ssh-ed25519 junk': ")
    with pytest.raises(SaltInvocationError, match=r"dom0-b .*: host_keys: 'x' is not a list"):
        trust.check_mined("dom0-b", {"migrate_key": None, "host_keys": "x"})
    with pytest.raises(SaltInvocationError, match=r"dom0-b .*: 'oops' is not a mapping"):
        trust.check_mined("dom0-b", "oops")


# ---------------------------------------------------------------------------
# Peers and addresses
# ---------------------------------------------------------------------------


def test_check_peers_takes_an_address_or_an_address_and_port():
    assert trust.check_peers({"dom0-b": "192.0.2.11",
                                    "dom0-c": {"address": "2001:DB8::1", "port": 2222},
                                    "dom0-d": "dom0-d.example.org"}) == {
        "dom0-b": {"address": "192.0.2.11", "port": 22},
        "dom0-c": {"address": "2001:db8::1", "port": 2222},
        "dom0-d": {"address": "dom0-d.example.org", "port": 22},
    }
    assert trust.check_peers({}) == {}


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
        trust.check_peers(peers)


# ---------------------------------------------------------------------------
# authorized_keys
# ---------------------------------------------------------------------------


def test_the_authorized_line_is_restricted_to_the_wrapper_and_the_address():
    assert trust.authorized_line(key_line(), "192.0.2.10") == (
        f'restrict,from="192.0.2.10",command="{WRAPPER}" ssh-ed25519 {blob()} '
        "xen-nfsroot-migrate@dom0-a")
    assert trust.authorized_line(key_line(), "2001:DB8::a", wrapper="/opt/w",
                                       comment="xen-nfsroot-migrate@x") == (
        f'restrict,from="2001:db8::a",command="/opt/w" ssh-ed25519 {blob()} '
        "xen-nfsroot-migrate@x")
    with pytest.raises(SaltInvocationError, match="address: '\"x' is not an IP address"):
        trust.authorized_line(key_line(), '"x')
    with pytest.raises(SaltInvocationError, match="wrapper: '/a\"b' is not a normalised"):
        trust.authorized_line(key_line(), "192.0.2.10", wrapper='/a"b')


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
    text = trust.plan_authorized(HAND_MADE, {
        "dom0-c": {"key": key_line("whatever", seed=3), "address": "192.0.2.12"},
        "dom0-b": {"key": key_line("xen-nfsroot-migrate@dom0-b", seed=2),
                   "address": "192.0.2.11"},
    })
    assert text == (HAND_MADE + "\n" + owned("dom0-b", 2) + "\n"
                    + owned("dom0-c", 3, "192.0.2.12") + "\n")
    assert trust.plan_authorized(text, {
        "dom0-c": {"key": key_line("whatever", seed=3), "address": "192.0.2.12"},
        "dom0-b": {"key": key_line("xen-nfsroot-migrate@dom0-b", seed=2),
                   "address": "192.0.2.11"},
    }) == text
    assert trust.authorized_peers(text) == {
        "dom0-b": [owned("dom0-b", 2)], "dom0-c": [owned("dom0-c", 3, "192.0.2.12")]}


def test_plan_authorized_replaces_in_place_removes_and_drops_duplicates():
    current = (f"{owned('dom0-b', 2)}\n# keep\n{owned('dom0-x', 5)}\n{owned('dom0-b', 2)}\n"
               f"{key_line('me@host', seed=6)}\n")
    text = trust.plan_authorized(current, {
        "dom0-b": {"key": key_line(seed=4), "address": "192.0.2.21"}})
    assert text == f"{owned('dom0-b', 4, '192.0.2.21')}\n# keep\n{key_line('me@host', seed=6)}\n"
    assert trust.plan_authorized(current, {}) == (
        f"# keep\n{key_line('me@host', seed=6)}\n")


def test_a_peer_given_as_none_keeps_its_entries_and_gets_none_new():
    current = f"{owned('dom0-b', 2)}\r\n"
    assert trust.plan_authorized(current, {"dom0-b": None, "dom0-c": None}) == current


def test_an_owned_line_the_plan_would_write_again_is_kept_byte_for_byte():
    current = f"{owned('dom0-b', 2)}\r\nend"
    assert trust.plan_authorized(current, {
        "dom0-b": {"key": key_line(seed=2), "address": "192.0.2.11"}}) == current


def test_a_commented_out_or_foreign_line_is_not_owned():
    current = (f"# {owned('dom0-b', 2)}\n"
               f'from="x" ssh-ed25519 {blob()} admin xen-nfsroot-migrate@dom0-b\n')
    assert trust.authorized_peers(current) == {}
    assert trust.plan_authorized(current, {}) == current


def test_plan_authorized_refuses_bad_peers():
    with pytest.raises(SaltInvocationError, match="peers: minion id: 'a b' is not a minion id"):
        trust.plan_authorized("", {"a b": None})
    with pytest.raises(SaltInvocationError, match="peers.dom0-b: 'x' is not a mapping"):
        trust.plan_authorized("", {"dom0-b": "x"})
    with pytest.raises(SaltInvocationError, match="address: None is not an IP address"):
        trust.plan_authorized("", {"dom0-b": {"key": key_line()}})


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
    text = trust.plan_known_hosts(peers)
    lines = text.splitlines()
    assert all(line.startswith("# ") for line in lines[:3])
    assert lines[3:] == [
        f"192.0.2.11 ssh-ed25519 {blob(seed=2)} dom0-b",
        f"192.0.2.11 ecdsa-sha2-nistp256 {blob('ecdsa-sha2-nistp256', 4)} dom0-b",
        f"[192.0.2.12]:2222 ssh-ed25519 {blob(seed=3)} dom0-c",
    ]
    assert trust.known_hosts_peers(text) == {
        "dom0-b": {"address": "192.0.2.11", "port": 22,
                   "host_keys": [f"ssh-ed25519 {blob(seed=2)}",
                                 f"ecdsa-sha2-nistp256 {blob('ecdsa-sha2-nistp256', 4)}"]},
        "dom0-c": {"address": "192.0.2.12", "port": 2222,
                   "host_keys": [f"ssh-ed25519 {blob(seed=3)}"]},
    }
    assert trust.known_hosts_peers("junk\n[x]:1 a b c\n") == {}


def test_plan_known_hosts_refuses_a_bad_host_key():
    with pytest.raises(SaltInvocationError, match=r"peers.dom0-b.host_keys: 'ssh-ed25519 x'"):
        trust.plan_known_hosts({"dom0-b": {"address": "192.0.2.11",
                                                 "host_keys": ["ssh-ed25519 x"]}})


# ---------------------------------------------------------------------------
# The forced command, run by the real /bin/sh
# ---------------------------------------------------------------------------


@pytest.fixture
def wrapper(tmp_path):
    """Run the wrapper with SSH_ORIGINAL_COMMAND; a fake xl records its argv."""
    script = tmp_path / "wrapper"
    script.write_text(trust.wrapper_text())
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
    code = [line for line in trust.wrapper_text().splitlines()
            if not line.lstrip().startswith("#")]
    assert not [line for line in code if "eval" in line]


# ---------------------------------------------------------------------------
# The key's comment
# ---------------------------------------------------------------------------


def test_key_comment_names_the_minion():
    assert trust.key_comment("dom0-a") == "xen-nfsroot-migrate@dom0-a"
    assert trust.key_comment("dom0-b") == "xen-nfsroot-migrate@dom0-b"
    with pytest.raises(SaltInvocationError, match="minion id: 'a b' is not a minion id"):
        trust.key_comment("a b")


# ---------------------------------------------------------------------------
# Hostile peer addresses (issue 19): sshd's from= and ssh's known_hosts are
# the readers; ssh-keygen reads both formats as sshd and ssh do.
# ---------------------------------------------------------------------------

ATTACKER = key_line("attacker", seed=9)
HOSTILE_ADDRESSES = [
    # Old code: all accepted (any text after % is an IPv6 zone id to Python).
    'fe80::1%",port-forwarding,permitopen="*:*',   # forwarding back on
    'fe80::1%x,*',                                 # from= and known_hosts: every host
    'fe80::1%"\n' + ATTACKER + "\n#",              # a second, unrestricted key
    'fe80::1%eth0 ',
    "fe80::1%eth0",
    # Old code: accepted (the host name regex's $ matches before a final newline).
    "dom0-b\n",
    "dom0-b,*", "*", "dom0-?", "!dom0-b", "[dom0-b]:22", '"dom0-b"', "dom0 b", "",
]


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_hostile_peer_addresses_are_refused_by_every_renderer(address):
    with pytest.raises(SaltInvocationError, match=r"^address: "):
        trust.check_address(address)
    with pytest.raises(SaltInvocationError, match=r"^address: "):
        trust.authorized_line(key_line(), address)
    with pytest.raises(SaltInvocationError, match=r"^peers\.dom0-b\.address: "):
        trust.plan_known_hosts({"dom0-b": {"address": address, "host_keys": [key_line()]}})
    with pytest.raises(SaltInvocationError, match=r"^peers\.dom0-b\.address: "):
        trust.check_peers({"dom0-b": address})


@pytest.mark.parametrize("peer", ["dom0-b\n", "dom0-b\nssh-ed25519", "dom0 b", "*"])
def test_hostile_peer_ids_are_refused(peer):
    with pytest.raises(SaltInvocationError, match="minion id"):
        trust.check_peers({peer: "192.0.2.11"})
    with pytest.raises(SaltInvocationError, match="minion id"):
        trust.plan_authorized("", {peer: {"key": key_line(), "address": "192.0.2.11"}})
    with pytest.raises(SaltInvocationError, match="minion id"):
        trust.plan_known_hosts({peer: {"address": "192.0.2.11", "host_keys": [key_line()]}})


@pytest.mark.parametrize("port", ["²", "22\n", " 22", "-22", "0", 0, 65536, "abc", True, 22.0])
def test_hostile_ports_are_refused(port):
    with pytest.raises(SaltInvocationError, match=r"is not a TCP port \(1-65535\)"):
        trust.check_port(port)


def _keys_sshd_reads(tmp_path, text):
    """The keys ssh-keygen (sshd's own authorized_keys reader, options and
    all) finds in an authorized_keys text: one fingerprint line per key."""
    path = tmp_path / "authorized_keys"
    path.write_text(text)
    proc = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True,
                          check=False)
    return proc.stdout.splitlines()


def _known_hosts_match(tmp_path, text, host):
    """The lines ssh's known_hosts lookup (ssh-keygen -F) matches for host."""
    path = tmp_path / "known_hosts"
    path.write_text(text)
    proc = subprocess.run(["ssh-keygen", "-F", host, "-f", str(path)], capture_output=True,
                          text=True, check=False)
    return [line for line in proc.stdout.splitlines() if not line.startswith("#")]


ADDRESS_TEXT = st.text(alphabet=st.sampled_from(list("af019.:-%\"',*?![] \t\n=#\\")),
                       max_size=20)
ADDRESSES = st.one_of(ADDRESS_TEXT, st.builds(lambda tail: "fe80::1%" + tail, ADDRESS_TEXT),
                      st.sampled_from(["192.0.2.11", "2001:db8::b", "dom0-b.example.org",
                                       "::ffff:192.0.2.1", "fe80::1"]))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=ADDRESSES, port=st.sampled_from([22, 2222]))
def test_a_peer_address_is_one_pattern_or_refused(tmp_path, address, port):
    try:
        line = trust.authorized_line(key_line(), address, WRAPPER, "xen-nfsroot-migrate@dom0-b")
        known = trust.plan_known_hosts({"dom0-b": {"address": address, "port": port,
                                                   "host_keys": [key_line("root@b", seed=2)]}})
    except SaltInvocationError as err:
        assert str(err).startswith(("address: ", "peers.dom0-b.address: "))
        return
    canonical = trust.check_address(address)
    # authorized_keys: exactly these options, from= one element, one key.
    assert line == (f'restrict,from="{canonical}",command="{WRAPPER}" '
                    f"{key_line('xen-nfsroot-migrate@dom0-b')}")
    assert not set(canonical) & set('",*?![] \t\n%')
    assert len(_keys_sshd_reads(tmp_path, line + "\n")) == 1
    # known_hosts: the peer is found by the host ssh looks up, nothing else is.
    host = canonical if port == 22 else f"[{canonical}]:{port}"
    assert len(_known_hosts_match(tmp_path, known, host)) == 1
    assert _known_hosts_match(tmp_path, known, "other.example.org") == []
    assert _known_hosts_match(tmp_path, known, "192.0.2.99") == []
