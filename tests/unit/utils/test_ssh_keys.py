"""OpenSSH public key lines as the migration trust reads them (the mine,
authorized_keys, known_hosts), and the made-up keys the trust's tests use."""

import base64
import struct

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import ssh_keys


def blob(key_type="ssh-ed25519", seed=1):
    """The base64 blob of a (made-up) public key of that type."""
    name = key_type.encode()
    raw = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + bytes([seed]) * 32
    return base64.b64encode(raw).decode()


def key_line(comment="xen-nfsroot-migrate@dom0-a", key_type="ssh-ed25519", seed=1):
    return " ".join(filter(None, (key_type, blob(key_type, seed), comment)))


@pytest.mark.parametrize("key_type", ssh_keys.KEY_TYPES)
def test_every_allowed_key_type_is_accepted(key_type):
    line = key_line("root@dom0-b", key_type)
    assert ssh_keys.check_key_line(f"  {line}\n") == line


def test_a_key_line_is_normalised_and_its_comment_may_be_missing():
    assert ssh_keys.check_key_line(f"ssh-ed25519  {blob()}") == f"ssh-ed25519 {blob()}"
    assert ssh_keys.check_key_line(f"ssh-ed25519 {blob()} a b") == f"ssh-ed25519 {blob()} a b"


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
        ssh_keys.check_key_line(line, "dom0-b: migrate_key")
    assert str(err.value).startswith(f"dom0-b: migrate_key: {line!r}")


def test_public_line_is_the_checked_line_or_none():
    assert ssh_keys.public_line(key_line() + "\n") == key_line()
    assert ssh_keys.public_line("garbage\n") is None
    assert ssh_keys.public_line("") is None


def test_a_comment_holds_no_quote_and_may_be_required():
    assert ssh_keys.check_comment("xen-nfsroot-migrate@dom0-a") == "xen-nfsroot-migrate@dom0-a"
    assert ssh_keys.check_comment("") == ""
    with pytest.raises(SaltInvocationError, match=r"^comment: '' may hold only"):
        ssh_keys.check_comment("", empty=False)
    with pytest.raises(SaltInvocationError, match=r"^comment: 'a\"b' may hold only"):
        ssh_keys.check_comment('a"b')


@pytest.mark.parametrize("data", [b"", b"not a key\n", "é".encode(),
                                  b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"
                                  b"-----END OPENSSH PRIVATE KEY-----\n"])
def test_what_is_not_a_private_key_is_refused_naming_the_file(data):
    with pytest.raises(CommandExecutionError, match=(
            r"^/k is not an OpenSSH private key \(ssh-keygen's openssh-key-v1 format\)")):
        ssh_keys.private_public(data, "/k")


def test_a_comment_ending_in_a_line_end_is_refused():
    for comment in ("xen-nfsroot-migrate@dom0-b\n", "a\nb"):
        with pytest.raises(SaltInvocationError, match="^comment: "):
            ssh_keys.check_comment(comment)
