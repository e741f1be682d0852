"""xen_migrate.key and xen_migrate.trusted with a mocked loader.

The states' ``__salt__`` holds the real xen_migrate
functions working on temporary files and the real ssh-keygen (through the
cmd.run_all fake running it for real); the mine is a dictionary
(``mine.get`` and ``mine.send`` record their calls).
"""

import os
import stat

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.commands import Commands
from tests.support.loader import functions
from tests.unit.utils.test_ssh_keys import blob, key_line
from xen_nfsroot.modules import xen_migrate
from xen_nfsroot.states import xen_migrate as migrate_state
from xen_nfsroot_lib import files as trust_files
from xen_nfsroot_lib import trust

MINE_FUNCTION = "xen_migrate.public_keys"


class Mine:
    """mine.get / mine.send over a dictionary {minion id: published keys}."""

    def __init__(self):
        self.published = {}
        self.gets = []
        self.sends = []
        self.send_result = True
        self.answer = None

    def get(self, tgt, fun, tgt_type="glob"):
        self.gets.append({"tgt": tgt, "fun": fun, "tgt_type": tgt_type})
        if self.answer is not None:
            return self.answer
        return {minion: keys for minion, keys in self.published.items() if minion in tgt}

    def send(self, name, *args, **kwargs):
        self.sends.append((name, args, kwargs))
        return self.send_result


@pytest.fixture
def mine():
    return Mine()


@pytest.fixture
def opts():
    return {"id": "dom0-a", "test": False}


@pytest.fixture
def configure_loader_modules(mine, opts):
    salt = functions(xen_migrate)
    salt.update({"cmd.run_all": Commands(real=True), "mine.get": mine.get,
                 "mine.send": mine.send})
    return {migrate_state: {"__salt__": salt, "__opts__": opts},
            xen_migrate: {"__salt__": salt, "__opts__": opts}}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_state_needs_the_execution_module():
    assert migrate_state.__virtual__() == "xen_migrate"
    salt = migrate_state.__salt__
    saved = dict(salt)
    salt.clear()
    try:
        assert migrate_state.__virtual__() == (
            False, "xen_migrate: the xen_migrate execution module is not loaded")
    finally:
        salt.update(saved)


# ---------------------------------------------------------------------------
# xen_migrate.key
# ---------------------------------------------------------------------------


@pytest.fixture
def key_path(tmp_path, monkeypatch):
    """The formula's key path, moved into a temporary directory."""
    path = str(tmp_path / "etc" / "xen-nfsroot" / "migrate_key")
    monkeypatch.setattr(trust, "KEY", path)
    return path


def test_key_predicts_creates_and_publishes(key_path, mine, opts):
    created = {"created": {"path": key_path, "type": "ssh-ed25519",
                           "comment": "xen-nfsroot-migrate@dom0-a"}}
    opts["test"] = True
    ret = migrate_state.key(key_path)
    assert ret == {"name": key_path, "result": None, "changes": created, "comment": (
        f"Would have created the ed25519 migration key {key_path} (xen-nfsroot-migrate@dom0-a)."
        " It would then be published to the mine (xen_migrate.public_keys).")}
    assert not os.path.exists(os.path.dirname(key_path))
    assert mine.sends == []
    opts["test"] = False
    ret = migrate_state.key(key_path)
    public = open(f"{key_path}.pub").read().strip()
    assert ret == {"name": key_path, "result": True, "changes": created, "comment": (
        f"Created the ed25519 migration key {key_path}: {public}."
        " Published to the mine (xen_migrate.public_keys).")}
    assert public.startswith("ssh-ed25519 ") and public.endswith(" xen-nfsroot-migrate@dom0-a")
    assert mode(key_path) == 0o600
    assert mode(os.path.dirname(key_path)) == 0o700
    assert mine.sends == [("xen_migrate.public_keys", (), {})]


def test_key_again_changes_nothing_and_publishes_nothing(key_path, mine):
    migrate_state.key(key_path)
    mine.sends.clear()
    for test in (False, True):
        migrate_state.__opts__["test"] = test
        ret = migrate_state.key(key_path)
        assert ret == {"name": key_path, "result": True, "changes": {}, "comment": (
            f"The migration key {key_path} is in place (ssh-ed25519, "
            "xen-nfsroot-migrate@dom0-a).")}
    assert mine.sends == []


def test_key_elsewhere_publishes_that_key(tmp_path, mine):
    path = str(tmp_path / "other_key")
    ret = migrate_state.key(path)
    assert ret["result"] is True
    assert mine.sends == [("xen_migrate.public_keys", (), {"key": path})]


def test_key_without_publish_sends_nothing(key_path, mine):
    ret = migrate_state.key(key_path, publish=False)
    assert ret["result"] is True
    assert "mine" not in ret["comment"]
    assert mine.sends == []


def test_key_repairs_the_mode_and_the_public_half(key_path, mine, opts):
    migrate_state.key(key_path)
    public = open(f"{key_path}.pub").read().strip()
    os.chmod(key_path, 0o644)
    with open(f"{key_path}.pub", "w") as handle:
        handle.write(key_line("stale", seed=3) + "\n")
    changes = {"mode": {"old": "0644", "new": "0600"},
               "public": {"old": key_line("stale", seed=3), "new": public}}
    what = (f"the mode of {key_path} to 0600 (was 0644); {key_path}.pub, which did not match "
            "the private key")
    opts["test"] = True
    ret = migrate_state.key(key_path)
    assert (ret["result"], ret["changes"]) == (None, changes)
    assert ret["comment"] == (f"Would have set {what}. It would then be published to the mine "
                              "(xen_migrate.public_keys).")
    assert mode(key_path) == 0o644
    opts["test"] = False
    mine.sends.clear()
    ret = migrate_state.key(key_path)
    assert (ret["result"], ret["changes"]) == (True, changes)
    assert ret["comment"] == f"Set {what}. Published to the mine (xen_migrate.public_keys)."
    assert mode(key_path) == 0o600
    assert open(f"{key_path}.pub").read() == public + "\n"
    assert mine.sends == [("xen_migrate.public_keys", (), {})]
    os.unlink(f"{key_path}.pub")
    ret = migrate_state.key(key_path, publish=False)
    assert ret["changes"] == {"public": {"old": None, "new": public}}
    assert ret["comment"] == f"Set {key_path}.pub from the private key."


def test_key_fails_when_the_mine_does_not_take_it(key_path, mine):
    mine.send_result = False
    ret = migrate_state.key(key_path)
    assert ret["result"] is False
    assert ret["changes"]["created"]["path"] == key_path
    assert ret["comment"].endswith(
        "But mine.send xen_migrate.public_keys failed: the peers will see the key after the "
        "next mine update.")


def test_key_never_replaces_an_unreadable_private_key(key_path):
    os.makedirs(os.path.dirname(key_path))
    with open(key_path, "w") as handle:
        handle.write("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n")
    ret = migrate_state.key(key_path)
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith(
        f"{key_path} is not an OpenSSH private key (ssh-keygen's openssh-key-v1 format)")
    assert open(key_path).read().endswith("garbage\n")


@pytest.mark.parametrize(("name", "message"), [
    ("migration key", "name: 'migration key' is not a normalised absolute path"),
    ("/etc/../key", "name: '/etc/../key' is not a normalised absolute path"),
])
def test_key_refuses_a_bad_name(name, message, mine):
    ret = migrate_state.key(name)
    assert ret["result"] is False
    assert ret["comment"].startswith(message)
    assert mine.sends == []


# ---------------------------------------------------------------------------
# xen_migrate.trusted
# ---------------------------------------------------------------------------

B_KEY = key_line("xen-nfsroot-migrate@dom0-b", seed=2)
C_KEY = key_line("xen-nfsroot-migrate@dom0-c", seed=3)
B_HOST = key_line("root@dom0-b", seed=12)
C_HOST = key_line("root@dom0-c", "ecdsa-sha2-nistp256", seed=13)


@pytest.fixture
def files(tmp_path):
    """The three paths of the trust, in a temporary tree."""
    class Files:
        authorized = tmp_path / "root" / ".ssh" / "authorized_keys"
        known_hosts = tmp_path / "etc" / "xen-nfsroot" / "known_hosts"
        wrapper = tmp_path / "usr" / "local" / "sbin" / "xen-nfsroot-migrate-receive"

        def trusted(self, peers, **kwargs):
            kwargs.setdefault("known_hosts", str(self.known_hosts))
            kwargs.setdefault("wrapper", str(self.wrapper))
            return migrate_state.trusted(str(self.authorized), peers, **kwargs)

        def snapshot(self):
            return {path: path.read_bytes() if path.exists() else None
                    for path in (self.authorized, self.known_hosts, self.wrapper)}

    (tmp_path / "usr" / "local" / "sbin").mkdir(parents=True)
    (tmp_path / "root").mkdir(mode=0o700)
    return Files()


@pytest.fixture
def published(mine):
    mine.published.update({
        "dom0-b": {"migrate_key": B_KEY, "host_keys": [B_HOST]},
        "dom0-c": {"migrate_key": C_KEY, "host_keys": [C_HOST]},
    })
    return mine.published


PEERS = {"dom0-b": "192.0.2.11", "dom0-c": {"address": "192.0.2.12", "port": 2222}}


def entry(peer, seed, address, wrapper):
    return (f'restrict,from="{address}",command="{wrapper}" ssh-ed25519 {blob(seed=seed)} '
            f"xen-nfsroot-migrate@{peer}")


def test_trusted_writes_the_three_files(files, published, mine):
    ret = files.trusted(PEERS)
    assert ret["result"] is True
    assert ret["changes"] == {
        "wrapper": {"path": str(files.wrapper), "created": True},
        "known_hosts": {"path": str(files.known_hosts), "created": True,
                        "added": ["dom0-b", "dom0-c"]},
        "authorized_keys": {"path": str(files.authorized), "created": True,
                            "added": ["dom0-b", "dom0-c"]},
    }
    assert ret["comment"] == (
        f"Updated the migration trust of dom0-b, dom0-c: {files.wrapper} (created); "
        f"{files.known_hosts} (created, added dom0-b, dom0-c); "
        f"{files.authorized} (created, added dom0-b, dom0-c).")
    assert "warnings" not in ret
    assert mine.gets == [{"tgt": ["dom0-b", "dom0-c"], "fun": MINE_FUNCTION,
                          "tgt_type": "list"}]
    assert files.wrapper.read_text() == trust.wrapper_text()
    assert mode(files.wrapper) == 0o755
    assert files.authorized.read_text() == (
        entry("dom0-b", 2, "192.0.2.11", files.wrapper) + "\n"
        + entry("dom0-c", 3, "192.0.2.12", files.wrapper) + "\n")
    assert mode(files.authorized) == 0o600
    assert mode(files.authorized.parent) == 0o700
    assert files.known_hosts.read_text().splitlines()[3:] == [
        f"192.0.2.11 ssh-ed25519 {blob(seed=12)} dom0-b",
        f"[192.0.2.12]:2222 ecdsa-sha2-nistp256 {blob('ecdsa-sha2-nistp256', 13)} dom0-c"]
    assert mode(files.known_hosts.parent) == 0o700


def test_trusted_again_changes_nothing(files, published, opts):
    files.trusted(PEERS)
    before = files.snapshot()
    stamps = [path.stat().st_mtime_ns for path in before]
    for test in (False, True):
        opts["test"] = test
        ret = files.trusted(PEERS)
        assert ret == {"name": str(files.authorized), "result": True, "changes": {}, "comment": (
            f"The migration trust of dom0-b, dom0-c is in place ({files.wrapper}, "
            f"{files.known_hosts}, {files.authorized}).")}
    assert files.snapshot() == before
    assert [path.stat().st_mtime_ns for path in before] == stamps


def test_test_mode_predicts_exactly_and_writes_nothing(files, published, opts):
    opts["test"] = True
    predicted = files.trusted(PEERS)
    assert files.snapshot() == dict.fromkeys(files.snapshot())
    assert not files.authorized.parent.exists()
    opts["test"] = False
    applied = files.trusted(PEERS)
    assert predicted["result"] is None
    assert predicted["changes"] == applied["changes"]
    assert predicted["comment"] == applied["comment"].replace(
        "Updated the", "Would have updated the")


def test_the_hand_made_lines_keep_their_bytes_mode_and_owner(files, published):
    files.authorized.parent.mkdir(mode=0o755)
    hand_made = (f"# mine\r\n{key_line('me@laptop', seed=9)}\n"
                 f'from="10.0.0.1" {key_line("backup", "ssh-rsa", 8)}')
    files.authorized.write_bytes(hand_made.encode())
    files.authorized.chmod(0o644)
    os.chown(files.authorized, 1234, 5678)
    ret = files.trusted({"dom0-b": "192.0.2.11"})
    assert ret["changes"]["authorized_keys"] == {"path": str(files.authorized),
                                                 "added": ["dom0-b"]}
    text = files.authorized.read_bytes().decode()
    assert text == hand_made + "\n" + entry("dom0-b", 2, "192.0.2.11", files.wrapper) + "\n"
    info = files.authorized.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o644, 1234, 5678)
    assert mode(files.authorized.parent) == 0o755


def test_a_peer_missing_from_the_mine_is_a_warning_and_the_next_run_adds_it(files, mine):
    mine.published["dom0-b"] = {"migrate_key": B_KEY, "host_keys": [B_HOST]}
    ret = files.trusted(PEERS)
    warning = ("dom0-c has published no keys in the mine (its xen_migrate.key state has not "
               f"run): no entry for it in {files.authorized} yet; the next run after it has "
               "adds it")
    assert ret["result"] is True
    assert ret["warnings"] == [warning]
    assert ret["comment"].endswith(f". Warning: {warning}.")
    assert ret["changes"]["authorized_keys"]["added"] == ["dom0-b"]
    assert ret["changes"]["known_hosts"]["added"] == ["dom0-b"]
    assert "dom0-c" not in files.authorized.read_text()
    assert "dom0-c" not in files.known_hosts.read_text()
    mine.published["dom0-c"] = {"migrate_key": C_KEY, "host_keys": [C_HOST]}
    ret = files.trusted(PEERS)
    assert ret["changes"] == {
        "known_hosts": {"path": str(files.known_hosts), "added": ["dom0-c"]},
        "authorized_keys": {"path": str(files.authorized), "added": ["dom0-c"]}}
    assert "warnings" not in ret


def test_a_peer_without_a_key_yet_gets_its_host_keys_only(files, mine):
    mine.published["dom0-b"] = {"migrate_key": None, "host_keys": [B_HOST]}
    ret = files.trusted({"dom0-b": "192.0.2.11"})
    assert ret["result"] is True
    assert ret["warnings"] == [
        "dom0-b has no migration key in the mine yet (its xen_migrate.key state has not run): "
        f"no entry for it in {files.authorized} yet; the next run after it has adds it"]
    assert "authorized_keys" not in ret["changes"]
    assert not files.authorized.exists()
    assert ret["changes"]["known_hosts"]["added"] == ["dom0-b"]


def test_a_peer_that_leaves_the_mine_keeps_its_entries(files, published, mine):
    files.trusted(PEERS)
    before = files.snapshot()
    del mine.published["dom0-c"]
    ret = files.trusted(PEERS)
    assert ret["result"] is True
    assert ret["changes"] == {}
    assert ret["warnings"] == [
        "dom0-c has published no keys in the mine (its xen_migrate.key state has not run): "
        f"its entry in {files.authorized} is kept as it is; the next run after it has adds it"]
    assert files.snapshot() == before


def test_a_peer_no_longer_listed_loses_its_entries_and_a_moved_one_is_updated(files,
                                                                              published):
    files.trusted(PEERS)
    ret = files.trusted({"dom0-b": "192.0.2.21"})
    assert ret["changes"] == {
        "known_hosts": {"path": str(files.known_hosts), "updated": ["dom0-b"],
                        "removed": ["dom0-c"]},
        "authorized_keys": {"path": str(files.authorized), "updated": ["dom0-b"],
                            "removed": ["dom0-c"]}}
    assert files.authorized.read_text() == entry("dom0-b", 2, "192.0.2.21", files.wrapper) + "\n"
    assert ret["comment"] == (
        f"Updated the migration trust of dom0-b: {files.known_hosts} (updated dom0-b, removed "
        f"dom0-c); {files.authorized} (updated dom0-b, removed dom0-c).")
    ret = files.trusted({})
    assert ret["changes"]["authorized_keys"] == {"path": str(files.authorized),
                                                 "removed": ["dom0-b"]}
    assert files.authorized.read_text() == ""
    assert ret["comment"].startswith("Updated the migration trust of no peer: ")


def test_a_rotated_key_is_updated(files, published, mine):
    files.trusted(PEERS)
    mine.published["dom0-b"] = {"migrate_key": key_line(seed=22), "host_keys": [B_HOST]}
    ret = files.trusted(PEERS)
    assert ret["changes"] == {"authorized_keys": {"path": str(files.authorized),
                                                  "updated": ["dom0-b"]}}
    assert blob(seed=22) in files.authorized.read_text()


def test_no_peer_and_no_file_writes_no_authorized_keys(files, mine):
    ret = files.trusted({}, known_hosts=False, wrapper=False)
    assert ret == {"name": str(files.authorized), "result": True, "changes": {},
                   "comment": f"The migration trust of no peer is in place ({files.authorized})."}
    assert mine.gets == []
    assert not files.authorized.parent.exists()


def test_the_wrapper_is_repaired(files, published):
    files.trusted(PEERS)
    files.wrapper.chmod(0o644)
    ret = files.trusted(PEERS)
    assert ret["changes"] == {"wrapper": {"path": str(files.wrapper),
                                          "mode": {"old": "0644", "new": "0755"}}}
    assert ret["comment"] == (f"Updated the migration trust of dom0-b, dom0-c: {files.wrapper} "
                              "(mode 0644 -> 0755).")
    assert mode(files.wrapper) == 0o755
    files.wrapper.write_text("#!/bin/sh\nexec sh\n")
    ret = files.trusted(PEERS)
    assert ret["changes"] == {"wrapper": {"path": str(files.wrapper), "content": "rewritten"}}
    assert files.wrapper.read_text() == trust.wrapper_text()


def test_known_hosts_and_wrapper_false_leave_them_alone(files, published):
    ret = files.trusted(PEERS, known_hosts=False, wrapper=False)
    assert set(ret["changes"]) == {"authorized_keys"}
    assert not files.known_hosts.exists() and not files.wrapper.exists()
    assert f'command="{trust.WRAPPER}"' in files.authorized.read_text()


@pytest.mark.parametrize(("mined", "message"), [
    ({"migrate_key": "ssh-ed25519 AAAA", "host_keys": []},
     "mine data of dom0-c (xen_migrate.public_keys): migrate_key: 'ssh-ed25519 AAAA': "),
    ({"migrate_key": f'ssh-ed25519 {blob()} x" y', "host_keys": []},
     "mine data of dom0-c (xen_migrate.public_keys): migrate_key: "
     f"""'ssh-ed25519 {blob()} x" y'"""),
    ({"migrate_key": C_KEY, "host_keys": ["ssh-rsa " + blob()]},
     f"mine data of dom0-c (xen_migrate.public_keys): host_keys: 'ssh-rsa {blob()}': the key is "
     "a 'ssh-ed25519' key, not 'ssh-rsa'"),
    ("xen_migrate.public_keys is not available.",
     "mine data of dom0-c (xen_migrate.public_keys): 'xen_migrate.public_keys is not available.'"
     " is not a mapping"),
])
def test_a_bad_mined_key_fails_and_nothing_is_written(files, published, mine, mined, message):
    files.trusted(PEERS)
    before = files.snapshot()
    mine.published["dom0-c"] = mined
    mine.published["dom0-d"] = {"migrate_key": key_line(seed=4), "host_keys": []}
    ret = files.trusted(dict(PEERS, **{"dom0-d": "192.0.2.14"}))
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith(message)
    assert files.snapshot() == before


@pytest.mark.parametrize(("peers", "kwargs", "message"), [
    (["dom0-b"], {}, "peers: ['dom0-b'] is not a mapping of minion id to address"),
    ({"dom0 b": "192.0.2.11"}, {}, "peers: minion id: 'dom0 b' is not a minion id"),
    ({"dom0-b": "192.0.2.300"}, {},
     "peers.dom0-b.address: '192.0.2.300' is not an IP address or host name"),
    ({"dom0-b": {"address": "192.0.2.11", "port": 0}}, {},
     "peers.dom0-b.port: 0 is not a TCP port"),
    ({"dom0-b": "192.0.2.11"}, {"known_hosts": "etc/kh"},
     "known_hosts: 'etc/kh' is not a normalised absolute path"),
    ({"dom0-b": "192.0.2.11"}, {"wrapper": '/usr/"x'},
     "wrapper: '/usr/\"x' is not a normalised absolute path"),
])
@pytest.mark.usefixtures("published")
def test_bad_input_fails_naming_the_field_and_value(files, mine, peers, kwargs, message):
    ret = files.trusted(peers, **kwargs)
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith(message)
    assert files.snapshot() == dict.fromkeys(files.snapshot())
    assert mine.gets == []


def test_a_bad_name_fails(mine):
    ret = migrate_state.trusted("authorized keys", {"dom0-b": "192.0.2.11"})
    assert ret["result"] is False
    assert ret["comment"].startswith(
        "name: 'authorized keys' is not a normalised absolute path")


def test_a_mine_that_does_not_answer_with_a_mapping_fails(files, mine):
    mine.answer = "master unreachable"
    ret = files.trusted(PEERS)
    assert ret["result"] is False
    assert ret["comment"] == ("mine.get xen_migrate.public_keys: 'master unreachable' is not a "
                              "mapping of minion id to keys")
    assert files.snapshot() == dict.fromkeys(files.snapshot())


def test_a_concurrent_edit_of_authorized_keys_is_not_lost(files, published, monkeypatch):
    files.authorized.parent.mkdir(mode=0o700)
    files.authorized.write_text("# first\n")
    real_read = trust_files.read

    def read_then_edit(path, root=None):
        data = real_read(path, root)
        if path == str(files.authorized):
            files.authorized.write_text("# edited meanwhile\n")
        return data

    monkeypatch.setattr(trust_files, "read", read_then_edit)
    ret = files.trusted({"dom0-b": "192.0.2.11"})
    assert ret["result"] is False
    assert ret["comment"].startswith(f"Could not write {files.authorized}: ")
    assert "changed since it was read" in ret["comment"]
    assert set(ret["changes"]) == {"wrapper", "known_hosts"}
    assert files.authorized.read_text() == "# edited meanwhile\n"


def test_a_file_is_written_in_a_private_directory_keeping_an_existing_mode(tmp_path):
    path = tmp_path / "root" / ".ssh" / "authorized_keys"

    def write(text, mode=0o644, directory_mode=0o755, current=None, exact_mode=False):
        migrate_state._write({"path": str(path), "text": text, "mode": mode,
                              "directory_mode": directory_mode, "current": current,
                              "exact_mode": exact_mode})
        return stat.S_IMODE(path.stat().st_mode)

    assert write("a\n", mode=0o600, directory_mode=0o700) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o640)
    os.chown(path, 1234, 5678)
    assert write("b\n", mode=0o600, current="a\n") == 0o640
    assert (path.read_text(), path.stat().st_uid, path.stat().st_gid) == ("b\n", 1234, 5678)
    with pytest.raises(CommandExecutionError, match="changed since it was read"):
        write("c\n", current="a\n")
    assert path.read_text() == "b\n"
    assert write("b\n", mode=0o755, current="b\n", exact_mode=True) == 0o755


@pytest.mark.parametrize("address", [
    # Old code: written; sshd then read port-forwarding and permitopen as options of
    # the peer's key, a from= of every host, or a second, unrestricted key line.
    'fe80::1%",port-forwarding,permitopen="*:*',
    "fe80::1%x,*",
    'fe80::1%"\nssh-ed25519 ' + blob() + " attacker\n#",
    "dom0-b\n",
])
@pytest.mark.usefixtures("published")
def test_a_hostile_peer_address_fails_and_nothing_is_written(files, mine, address):
    files.trusted(PEERS)
    before = files.snapshot()
    ret = files.trusted(dict(PEERS, **{"dom0-b": address}))
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith(f"peers.dom0-b.address: {address!r} ")
    assert files.snapshot() == before


def test_key_refuses_a_publish_that_is_not_a_switch(mine, tmp_path):
    ret = migrate_state.key(str(tmp_path / "key"), publish="no")
    assert ret["result"] is False
    assert ret["comment"] == "publish: 'no' is not true or false"
    assert not (tmp_path / "key").exists()
