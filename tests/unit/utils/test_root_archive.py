"""A root archive's description, its hash, and the member filter of its extraction."""

import hashlib
import io
import os
import tarfile

import pytest
from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import files, root_archive

SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_check_archive_completes_the_description():
    assert root_archive.check_archive({"source": "salt://roots/g.tar.xz"}) == {
        "source": "salt://roots/g.tar.xz", "source_hash": None, "skip_verify": False}
    remote = {"source": "https://example.org/r.tar", "source_hash": f"sha256={SHA256}"}
    assert root_archive.check_archive(remote)["source_hash"] == f"sha256={SHA256}"
    assert root_archive.check_archive({"source": "https://example.org/r.tar",
                                       "skip_verify": True})["skip_verify"] is True


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        ("salt://r.tar", "root_archive: 'salt://r.tar' is not a mapping with a source"),
        ({"source": "/r.tar", "hash": "x"},
         "root_archive.hash: 'x' is not a root archive key (source, source_hash, skip_verify)"),
        ({"source": ""}, "root_archive.source: '' is not an archive location"),
        ({"source": "/r.tar", "source_hash": "sha256=xyz"},
         "root_archive.source_hash: 'sha256=xyz' is not ALGORITHM=HEX or a hexadecimal digest"),
        ({"source": "/r.tar", "skip_verify": "yes"},
         "root_archive.skip_verify: 'yes' is not true or false"),
        ({"source": "https://example.org/r.tar"},
         "root_archive.source_hash: required for https://example.org/r.tar "
         "(or set skip_verify: true)"),
    ],
)
def test_check_archive_errors(archive, message):
    with pytest.raises(SaltInvocationError) as err:
        root_archive.check_archive(archive)
    assert str(err.value) == message


def test_check_archive_names_the_pillar_field():
    with pytest.raises(SaltInvocationError, match=r"^guests\.g\.root_archive\.source: None"):
        root_archive.check_archive({}, "guests.g.root_archive")


@pytest.mark.parametrize(
    ("source_hash", "parsed"),
    [
        (f"sha256={SHA256}", ("sha256", SHA256)),
        (SHA256.upper(), ("sha256", SHA256)),
        ("MD5=" + "a" * 32, ("md5", "a" * 32)),
        ("a" * 33, None),
        ("nohash=abc", None),
        (3, None),
    ],
)
def test_parse_hash(source_hash, parsed):
    assert root_archive.parse_hash(source_hash) == parsed


def test_check_hash(tmp_path):
    path = tmp_path / "r.tar"
    path.write_bytes(b"test")
    root_archive.check_hash(str(path), f"sha256={hashlib.sha256(b'test').hexdigest()}")
    with pytest.raises(files.TreeError) as err:
        root_archive.check_hash(str(path), "sha256=" + "0" * 64)
    assert str(err.value).startswith(f"{path}: sha256 is {SHA256}, not 000")


def make_archive(path, *members):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, linkname, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = linkname or ""
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data) if data else None)
    return str(path)


def test_extract_keeps_links_and_counts_members(tmp_path):
    destination = tmp_path / "new"
    destination.mkdir()
    archive = make_archive(
        tmp_path / "r.tar.gz",
        ("etc", tarfile.DIRTYPE, None, None),
        ("etc/passwd", tarfile.REGTYPE, None, b"root:x:0:0::/root:/bin/sh\n"),
        ("etc/localtime", tarfile.SYMTYPE, "/usr/share/zoneinfo/UTC", None),
        ("etc/passwd-", tarfile.LNKTYPE, "etc/passwd", None),
    )
    assert root_archive.extract(archive, str(destination)) == (4, False)
    assert os.readlink(destination / "etc" / "localtime") == "/usr/share/zoneinfo/UTC"
    assert (destination / "etc" / "passwd-").read_bytes() == b"root:x:0:0::/root:/bin/sh\n"


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([("/etc/passwd", tarfile.REGTYPE, None, b"x")], "has an absolute path"),
        ([("etc/../../x", tarfile.REGTYPE, None, b"x")], "has a '..' component"),
        ([("etc", tarfile.SYMTYPE, "/", None), ("etc/passwd", tarfile.REGTYPE, None, b"x")],
         "would be written outside the new root (through a link, to /passwd)"),
        ([("shadow", tarfile.LNKTYPE, "/etc/shadow", None)],
         "is a hard link to '/etc/shadow', outside the new root"),
        ([("a/b", tarfile.SYMTYPE, "../../etc", None)],
         "is a symbolic link to '../../etc', which climbs out of the root"),
        ([("dev/null", tarfile.CHRTYPE, None, None)], "is a device node or FIFO"),
        ([("run/fifo", tarfile.FIFOTYPE, None, None)], "is a device node or FIFO"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, members, problem):
    destination = tmp_path / "new"
    destination.mkdir()
    archive = make_archive(tmp_path / "r.tar.gz", *members)
    with pytest.raises(files.TreeError) as err:
        root_archive.extract(archive, str(destination))
    assert err.value.refused
    assert str(err.value) == f"{archive}: member {members[-1][0]!r} {problem}"


def test_a_broken_archive_fails(tmp_path):
    path = tmp_path / "r.tar.gz"
    path.write_bytes(b"not an archive")
    with pytest.raises(files.TreeError, match=f"^cannot extract {path}: "):
        root_archive.extract(str(path), str(tmp_path))
