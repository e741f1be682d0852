"""The xen_migrate execution module: the key pair (made by the real
ssh-keygen, through the cmd.run_all fake running it for real, which records
its argument list), its repair, the mine function and a file's mode."""

import base64
import os
import stat
import subprocess

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.commands import Commands
from tests.support.loader import functions
from tests.unit.utils.test_ssh_keys import key_line
from xen_nfsroot.modules import xen_migrate
from xen_nfsroot_lib import ssh_keys


@pytest.fixture
def run_all():
    return Commands(real=True)


@pytest.fixture
def configure_loader_modules(run_all):
    salt = functions(xen_migrate)
    salt["cmd.run_all"] = run_all
    opts = {"id": "dom0-a", "test": False}
    return {xen_migrate: {"__salt__": salt, "__opts__": opts}}


def test_the_module_is_xen_migrate():
    assert xen_migrate.__virtual__() == "xen_migrate"


# ---------------------------------------------------------------------------
# The key pair and the mine function
# ---------------------------------------------------------------------------


def test_create_key_makes_an_ed25519_pair_with_ssh_keygen(tmp_path, run_all):
    path = tmp_path / "etc" / "xen-nfsroot" / "migrate_key"
    line = xen_migrate.create_key(str(path))
    assert line.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
    assert line.endswith(" xen-nfsroot-migrate@dom0-a")
    assert ssh_keys.check_key_line(line) == line
    (command,) = run_all.argv()
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
    assert run_all.argv() == []


def test_a_failed_ssh_keygen_leaves_nothing(tmp_path, run_all):
    run_all.answer(["ssh-keygen"], retcode=1, stderr="ssh-keygen: simulated failure")
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
    reader = ssh_keys._Reader(bytes(raw[len(b"openssh-key-v1\0"):]))
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


def test_file_mode_is_the_permission_bits_or_none(tmp_path):
    path = tmp_path / "file"
    path.write_text("b\n")
    path.chmod(0o755)
    assert xen_migrate.file_mode(str(path)) == 0o755
    assert xen_migrate.file_mode(str(tmp_path / "missing")) is None


def test_every_public_function_has_a_cli_example():
    public = functions(xen_migrate)
    assert "xen_migrate.public_keys" in public
    for name, function in public.items():
        assert "CLI Example:" in (function.__doc__ or ""), name


def test_repair_key_refuses_a_mode_that_is_not_a_switch(tmp_path):
    path = tmp_path / "key"
    xen_migrate.create_key(str(path))
    path.chmod(0o644)
    with pytest.raises(SaltInvocationError, match="^mode: 'false' is not true or false"):
        xen_migrate.repair_key(str(path), mode="false")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
