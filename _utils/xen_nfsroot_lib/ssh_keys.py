"""
OpenSSH keys as the migration trust reads them: public key lines
(``TYPE BASE64 [COMMENT]``, as in a ``.pub`` file, the mine,
``authorized_keys`` and ``known_hosts``) and the public half an OpenSSH
private key file holds (``openssh-key-v1``, as ssh-keygen writes them).

A key line is checked down to its blob: the type is one of
:data:`KEY_TYPES`, the base64 decodes and names that same type, and the
comment holds nothing a shell or an ``authorized_keys`` option would read
(no quote, backslash or control character).
"""

import base64
import binascii
import re

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import values

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
#: What a key's comment may hold: no quotes, backslashes or control characters.
COMMENT_RE = re.compile(r"^[A-Za-z0-9_.@:+=,/ -]{0,255}\Z")
#: The first word of a key line (an authorized_keys line without options).
TYPE_WORD_RE = re.compile(r"^(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+\Z")
_BLOB_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}\Z")
_MAX_BLOB = 16384

_PRIVATE_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_PRIVATE_END = "-----END OPENSSH PRIVATE KEY-----"
_PRIVATE_MAGIC = b"openssh-key-v1\0"


# ---------------------------------------------------------------------------
# Public key lines
# ---------------------------------------------------------------------------


def split_key(line):
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
    """An OpenSSH public key line ``TYPE BASE64 [COMMENT]`` (as in a ``.pub``
    file): the type is one of :data:`KEY_TYPES`, the base64 blob decodes and
    names that same type, the comment holds no quote, backslash or control
    character. Returns the line, stripped, with single spaces."""
    split = split_key(line) if isinstance(line, str) and "\n" not in line.strip() else None
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
    if not COMMENT_RE.fullmatch(comment):
        raise SaltInvocationError(f"{field}: {line!r}: the comment may hold only "
                                  "[A-Za-z0-9_.@:+=,/ -]")
    return " ".join(filter(None, (key_type, blob, comment)))


def check_comment(comment, field="comment", empty=True):
    """A key's comment as the formula writes it: [A-Za-z0-9_.@:+=,/ -] only,
    at most 255 characters (empty unless ``empty`` is False). Returns it."""
    if not isinstance(comment, str) or not COMMENT_RE.fullmatch(comment) or (
            not empty and not comment):
        raise values.invalid(field, comment, "may hold only [A-Za-z0-9_.@:+=,/ -]")
    return comment


def key_of(line):
    """'TYPE BLOB' of a checked key line (its comment left out)."""
    return " ".join(line.split()[:2])


def public_line(line):
    """The checked public key line of a ``.pub`` file's first line, or None
    when it is not one."""
    try:
        return check_key_line(line)
    except SaltInvocationError:
        return None


# ---------------------------------------------------------------------------
# The public half of a private key file
# ---------------------------------------------------------------------------


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


def not_a_private_key(path):
    """The error for a file that is not an OpenSSH private key."""
    return CommandExecutionError(
        f"{path} is not an OpenSSH private key (ssh-keygen's openssh-key-v1 format)")


def private_public(data, path):
    """The public key line ("TYPE BLOB [COMMENT]") held in the bytes of an
    OpenSSH private key file (``openssh-key-v1``, as ssh-keygen writes them):
    its public half is stored in clear; the comment is read from an
    unencrypted ed25519 key. ``path`` names the file in the errors. Raises
    ``CommandExecutionError`` for anything else (not such a key, a key
    protected by a passphrase, a damaged one)."""
    try:
        text = data.decode("ascii")
        body = text.split(_PRIVATE_BEGIN, 1)[1].split(_PRIVATE_END, 1)[0]
        raw = base64.b64decode("".join(body.split()), validate=True)
        if not raw.startswith(_PRIVATE_MAGIC):
            raise ValueError("no openssh-key-v1 magic")
        reader = _Reader(raw[len(_PRIVATE_MAGIC):])
        cipher, _kdf, _options = reader.string(), reader.string(), reader.string()
        if reader.uint32() != 1:
            raise ValueError("not one key")
        public, private = reader.string(), _Reader(reader.string())
    except (IndexError, UnicodeDecodeError, ValueError, binascii.Error):
        raise not_a_private_key(path) from None
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
