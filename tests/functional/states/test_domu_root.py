"""domu_root.populated through the real Salt loader: a guest root filesystem
unpacked once from an archive, never into a tree its guest can already write."""

import io
import os
import pathlib
import stat
import tarfile

import pytest
from saltfactories.utils.functional import Loaders

from tests.support import REPO

PASSWD = b"root:x:0:0:root:/root:/bin/sh\n"


def add(tar, name, data=None, **attributes):
    info = tarfile.TarInfo(name)
    for key, value in attributes.items():
        setattr(info, key, value)
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def archive(path, *members, compression="xz"):
    with tarfile.open(path, f"w:{compression}") as tar:
        for name, data, attributes in members:
            add(tar, name, data, **attributes)
    return path


def rootfs(path, compression="xz"):
    directory = {"type": tarfile.DIRTYPE, "mode": 0o755}
    return archive(
        path,
        (".", None, directory),
        ("etc", None, directory),
        ("etc/passwd", PASSWD, {"mode": 0o644}),
        ("etc/fstab", b"/dev/sda1 / ext3 defaults 1 1\n", {"mode": 0o644}),
        ("etc/localtime", None, {"type": tarfile.SYMTYPE,
                                 "linkname": "/usr/share/zoneinfo/Etc/UTC"}),
        ("usr", None, directory),
        ("usr/bin", None, directory),
        ("usr/bin/passwd", b"\x7fELF", {"mode": 0o4755}),
        ("var", None, directory),
        ("var/mail", None, {"type": tarfile.DIRTYPE, "mode": 0o2775, "gid": 8}),
        ("bin", None, {"type": tarfile.SYMTYPE, "linkname": "usr/bin"}),
        compression=compression,
    )


@pytest.fixture
def server(tmp_path):
    etc = tmp_path / "server" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_bytes(b"server:x:0:0::/root:/bin/bash\n")
    (etc / "shadow").write_bytes(b"server-secret\n")
    return etc


def snapshot(directory):
    return {
        path: (path.read_bytes() if path.is_file() else None, os.lstat(path).st_mode)
        for path in sorted(directory.rglob("*"))
    }


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_a_missing_root_is_populated_with_modes_owners_and_links(states, tmp_path, compression):
    source = rootfs(tmp_path / f"root.tar.{compression}", compression)
    root = tmp_path / "roots" / "guest"
    root.parent.mkdir()
    ret = states.domu_root.populated(name=str(root), source=str(source))
    assert ret.result is True, ret.comment
    assert ret.changes == {"populated": {"source": str(source), "members": 11}}
    assert ret.comment == f"Populated {root} from {source} (11 members)"
    assert (root / "etc" / "passwd").read_bytes() == PASSWD
    assert stat.S_IMODE(os.stat(root / "usr/bin/passwd").st_mode) == 0o4755
    assert os.stat(root / "var/mail").st_gid == 8
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Etc/UTC"
    assert os.readlink(root / "bin") == "usr/bin"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
    assert sorted(p.name for p in root.parent.iterdir()) == ["guest"]

    again = states.domu_root.populated(name=str(root), source=str(source))
    assert again.result is True and again.changes == {}
    assert again.comment == f"{root} exists: not populated again from {source}"


def test_test_mode_predicts_and_writes_nothing(states, tmp_path):
    source = rootfs(tmp_path / "root.tar.xz")
    root = tmp_path / "guest"
    ret = states.domu_root.populated(name=str(root), source=str(source), test=True)
    assert ret.result is None
    assert ret.changes == {"populated": {"source": str(source)}}
    assert ret.comment == f"Would have populated {root} from {source}"
    assert not root.exists()


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_test_mode_predicts_a_missing_local_archive(states, tmp_path, scheme):
    source = f"{scheme}{tmp_path / 'missing.tar.xz'}"
    root = tmp_path / "guest"
    ret = states.domu_root.populated(name=str(root), source=source, test=True)
    assert ret.result is False
    assert ret.changes == {}
    assert ret.comment == f"{source}: no such archive"
    assert not root.exists()
    run = states.domu_root.populated(name=str(root), source=source)
    assert (run.result, run.comment) == (ret.result, ret.comment)


def test_test_mode_predicts_a_wrong_hash_of_a_local_archive(states, tmp_path):
    source = rootfs(tmp_path / "root.tar.xz")
    root = tmp_path / "guest"
    ret = states.domu_root.populated(name=str(root), source=str(source),
                                     source_hash="sha256=" + "0" * 64, test=True)
    assert ret.result is False
    assert ret.comment.startswith(f"{source}: sha256 is ")
    assert not root.exists()


def test_an_existing_root_is_never_extracted_into(states, tmp_path, server):
    """The guest emptied its tree and planted links: nothing is extracted."""
    source = rootfs(tmp_path / "root.tar.xz")
    root = tmp_path / "guest"
    root.mkdir()
    (root / "etc").symlink_to(server)
    (root / "usr").symlink_to(server)
    before = snapshot(server)
    ret = states.domu_root.populated(name=str(root), source=str(source))
    assert ret.result is True and ret.changes == {}
    assert snapshot(server) == before
    assert sorted(p.name for p in root.iterdir()) == ["etc", "usr"]


def hostile_members(server):
    relative_shadow = os.path.relpath(server / "shadow", "/x")
    return {
        "absolute": [("/etc/passwd", PASSWD, {})],
        "dot-dot": [("etc/../../server/etc/passwd", PASSWD, {})],
        "through-a-link": [
            ("etc", None, {"type": tarfile.SYMTYPE, "linkname": str(server)}),
            ("etc/passwd", PASSWD, {}),
        ],
        "through-a-relative-link": [
            ("etc", None, {"type": tarfile.SYMTYPE, "linkname": "../server/etc"}),
            ("etc/passwd", PASSWD, {}),
        ],
        "hard-link-out": [("shadow", None, {"type": tarfile.LNKTYPE,
                                            "linkname": str(server / "shadow")})],
        "relative-link-climbing-out": [
            ("etc", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
            ("etc/shadow", None, {"type": tarfile.SYMTYPE, "linkname": "../" + relative_shadow}),
        ],
        "device": [("dev/mem", None, {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 1})],
        "fifo": [("run/initctl", None, {"type": tarfile.FIFOTYPE})],
    }


@pytest.mark.parametrize("kind", sorted(hostile_members(pathlib.Path("/s"))))
def test_a_hostile_archive_fails_and_leaves_nothing(states, tmp_path, server, kind):
    members = [(".", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
               *hostile_members(server)[kind]]
    source = archive(tmp_path / "hostile.tar.xz", *members)
    roots = tmp_path / "roots"
    roots.mkdir()
    before = snapshot(server)
    ret = states.domu_root.populated(name=str(roots / "guest"), source=str(source))
    assert ret.result is False
    assert ret.changes == {}
    assert ret.comment.startswith(f"{source}: member "), ret.comment
    assert snapshot(server) == before
    assert list(roots.iterdir()) == []


def test_leftovers_of_a_killed_population_are_removed(states, tmp_path):
    roots = tmp_path / "roots"
    leftover = roots / ".guest.xen-nfsroot-populate-0123456789abcdef"
    (leftover / "etc").mkdir(parents=True)
    source = rootfs(tmp_path / "root.tar.xz")
    ret = states.domu_root.populated(name=str(roots / "guest"), source=str(source))
    assert ret.result is True, ret.comment
    assert sorted(p.name for p in roots.iterdir()) == ["guest"]


def test_a_wrong_hash_fails_and_leaves_nothing(states, tmp_path):
    source = rootfs(tmp_path / "root.tar.xz")
    root = tmp_path / "guest"
    ret = states.domu_root.populated(name=str(root), source=str(source),
                                     source_hash="sha256=" + "0" * 64)
    assert ret.result is False
    assert ret.comment.startswith(f"{source}: sha256 is ")
    assert not root.exists()


def test_a_remote_source_needs_a_hash(states, tmp_path):
    ret = states.domu_root.populated(name=str(tmp_path / "guest"),
                                     source="https://example.invalid/root.tar.xz")
    assert ret.result is False
    assert ret.comment == ("root_archive.source_hash: required for "
                           "https://example.invalid/root.tar.xz (or set skip_verify: true)")


@pytest.fixture
def formula(minion_opts, tmp_path):
    """A loader whose state tree is the repository's salt/ directory."""
    opts = dict(minion_opts, file_roots={"base": [str(REPO / "salt")]})
    loaders = Loaders(opts)
    yield loaders
    loaders.reset_state()


def test_the_server_sls_never_extracts_into_an_existing_root(formula, tmp_path, server,
                                                             system_exports):
    """The formula's own SLS, with a root archive in pillar, against a guest
    that deleted its etc/ (which re-armed the old population) and planted a
    link where the archive has a directory."""
    # Files only, no directory entries: what `tar cf root.tar etc/passwd
    # usr/bin/passwd` makes.
    source = archive(tmp_path / "root.tar.xz", ("etc/passwd", PASSWD, {}),
                     ("usr/bin/passwd", b"\x7fELF the guest's passwd\n", {"mode": 0o4755}))
    root = tmp_path / "guest"
    root.mkdir()
    usr = server.parent / "usr"
    (usr / "bin").mkdir(parents=True)
    (usr / "bin" / "passwd").write_bytes(b"the server's own passwd program\n")
    (root / "usr").symlink_to(usr)
    before = {**snapshot(server), **snapshot(usr)}
    pillar = {"xen_nfsroot": {
        "server": {"manage_packages": False, "manage_service": False},
        "guests": {"hostile": {
            "nfs_server": formula.opts["id"], "nfs_server_address": "192.0.2.1",
            "nfs_root": str(root), "export_clients": ["192.0.2.10"], "dom0": "dom0-a",
            "kernel": "/boot/vmlinuz", "root_archive": {"source": str(source)},
        }},
    }}
    formula.modules.state.sls("xen_nfsroot.server", pillar=pillar)
    assert {**snapshot(server), **snapshot(usr)} == before
    assert sorted(p.name for p in root.iterdir()) == ["usr"]
