"""The one safe file routine: reads and atomic writes in a guest's tree
(nothing followed, nothing outside it touched) and of this machine's own files."""

import os
import stat
from unittest.mock import patch

import pytest
from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import files


@pytest.fixture
def guest(tmp_path):
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "fstab").write_bytes(b"/dev/sda1 / ext3 defaults 1 1\n")
    return root


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "shadow"
    path.write_bytes(b"root:secret\n")
    return path


def test_read_in_a_tree_and_of_own_files(guest, tmp_path):
    assert files.read("etc/fstab", root=str(guest)) == b"/dev/sda1 / ext3 defaults 1 1\n"
    assert files.read("etc/hosts", root=str(guest)) is None
    assert files.read(str(guest / "etc" / "fstab")) == b"/dev/sda1 / ext3 defaults 1 1\n"
    assert files.read(str(tmp_path / "no" / "such" / "file")) is None


def test_write_creates_then_replaces_keeping_mode(guest):
    path = guest / "etc" / "motd"
    assert files.write("etc/motd", "hello\n", root=str(guest), mode=0o600) == {
        "path": str(path), "created": True}
    assert path.read_bytes() == b"hello\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    inode = os.stat(path).st_ino
    assert files.write("etc/motd", b"again\n", root=str(guest)) == {
        "path": str(path), "created": False}
    assert path.read_bytes() == b"again\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one
    assert sorted(os.listdir(guest / "etc")) == ["fstab", "motd"]


def test_previous_makes_the_write_a_compare_and_swap(guest):
    path = guest / "etc" / "fstab"
    with pytest.raises(files.TreeError) as err:
        files.write("etc/fstab", b"new\n", root=str(guest), previous=b"stale\n")
    assert err.value.conflict and not err.value.refused
    assert str(err.value) == f"{path} changed since it was read"
    files.write("etc/fstab", b"new\n", root=str(guest), previous=path.read_bytes())
    assert path.read_bytes() == b"new\n"
    files.write("etc/new", b"x\n", root=str(guest), previous=b"")  # missing counts as empty


def test_a_symlinked_file_is_refused_and_the_target_kept(guest, outside):
    path = guest / "etc" / "fstab"
    path.unlink()
    path.symlink_to(outside)
    for operation in (lambda: files.read("etc/fstab", root=str(guest)),
                      lambda: files.write("etc/fstab", b"x", root=str(guest))):
        with pytest.raises(files.TreeError) as err:
            operation()
        assert err.value.refused
        assert str(err.value).startswith(f"{path} is a symbolic link: refusing to ")
    assert outside.read_bytes() == b"root:secret\n" and path.is_symlink()


def test_a_symlinked_directory_is_not_followed(guest, outside):
    (guest / "etc" / "fstab").unlink()
    (guest / "etc").rmdir()
    (guest / "etc").symlink_to(outside.parent)
    with pytest.raises(files.TreeError) as err:
        files.write("etc/shadow", b"x", root=str(guest))
    assert str(err.value) == (f"{guest}/etc is a symbolic link, not a directory: "
                              "refusing to follow it")
    assert outside.read_bytes() == b"root:secret\n"


def test_a_hard_link_is_refused(guest, outside):
    os.link(outside, guest / "etc" / "shadow")
    with pytest.raises(files.TreeError, match="has 2 hard links"):
        files.write("etc/shadow", b"x", root=str(guest))
    with pytest.raises(files.TreeError, match="has 2 hard links"):
        files.read("etc/shadow", root=str(guest))
    assert outside.read_bytes() == b"root:secret\n"


def test_a_fifo_is_refused_without_blocking(guest):
    os.mkfifo(guest / "etc" / "pipe")
    with pytest.raises(files.TreeError, match="is a FIFO: refusing to follow or read it"):
        files.read("etc/pipe", root=str(guest))


def test_this_machines_own_root_is_refused():
    with pytest.raises(files.TreeError, match="is this machine's own root"):
        files.read("etc/fstab", root="/")


def test_a_missing_root_and_directory(tmp_path, guest):
    with pytest.raises(files.TreeError, match="no such directory"):
        files.read("etc/fstab", root=str(tmp_path / "nope"))
    with pytest.raises(files.TreeError) as err:
        files.write("var/x", b"x", root=str(guest))
    assert str(err.value) == f"{guest}/var does not exist"


def test_temporaries_of_a_killed_run_are_removed(guest):
    stale = guest / "etc" / ".fstab.xen-nfsroot-0123456789abcdef.tmp"
    stale.write_bytes(b"half")
    files.write("etc/fstab", b"whole\n", root=str(guest))
    assert sorted(os.listdir(guest / "etc")) == ["fstab"]


def test_a_failed_write_leaves_the_file_and_no_temporary(guest):
    path = guest / "etc" / "fstab"
    before = path.read_bytes()
    with patch("os.rename", side_effect=OSError(28, "No space left on device")), \
            pytest.raises(files.TreeError) as err:
        files.write("etc/fstab", b"x", root=str(guest))
    assert str(err.value) == f"cannot write {path}: No space left on device"
    assert path.read_bytes() == before
    assert os.listdir(guest / "etc") == ["fstab"]


def test_own_files_makedirs_remove_and_sync(tmp_path):
    path = tmp_path / "etc" / "xen" / "g.cfg"
    with pytest.raises(files.TreeError, match="does not exist"):
        files.write(str(path), b"name = 'g'\n")
    assert files.write(str(path), b"name = 'g'\n", makedirs=True, sync_directory=False) == {
        "path": str(path), "created": True}
    assert files.sync(str(path.parent)) is True
    assert files.remove(str(path)) is True
    assert files.remove(str(path)) is False
    assert files.remove(str(tmp_path / "gone" / "g.cfg")) is False


def test_remove_in_a_tree_removes_a_link_itself(guest, outside):
    (guest / "etc" / "shadow").symlink_to(outside)
    assert files.remove("etc/shadow", root=str(guest)) is True
    assert outside.exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: files.read("etc/fstab", root="xen"), "root: 'xen' must be an absolute path"),
        (lambda: files.read("etc/fstab", root="/xen/../etc"),
         "root: '/xen/../etc' must be a normalised absolute path"),
        (lambda: files.read("/etc/fstab", root="/xen"),
         "path: '/etc/fstab' is not a relative path inside the tree"),
        (lambda: files.read("etc/../../x", root="/xen"),
         "path: 'etc/../../x' must not hold '', '.' or '..' components"),
        (lambda: files.write("/tmp/x", b"", mode="644"), "mode: '644' is not a file mode"),
        (lambda: files.sync("relative"), "directory: 'relative' must be an absolute path"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(SaltInvocationError) as err:
        call()
    assert str(err.value) == message


def test_check_absolute_drops_a_trailing_slash():
    assert files.check_absolute("/srv/xen/") == "/srv/xen"
    assert files.check_absolute("/") == "/"


def test_edit_plans_on_the_bytes_read_and_plans_again_after_a_conflict(tmp_path, monkeypatch):
    path = tmp_path / "fstab"
    path.write_bytes(b"a\n")
    seen = []

    def append_b(data):
        seen.append(data)
        return data + b"b\n", len(seen)

    # Another writer changes the file between the first read and its write.
    real_write = files.write

    def write_once_raced(target, new, **kwargs):
        if len(seen) == 1:
            path.write_bytes(b"a\nz\n")
        return real_write(target, new, **kwargs)

    monkeypatch.setattr(files, "write", write_once_raced)
    assert files.edit(str(path), append_b) == 2
    assert seen == [b"a\n", b"a\nz\n"]
    assert path.read_bytes() == b"a\nz\nb\n"
    # Nothing to write: nothing written, the result returned.
    assert files.edit(str(path), lambda data: (None, "same")) == "same"
    assert path.read_bytes() == b"a\nz\nb\n"
    # A missing file is None to the change.
    assert files.edit(str(tmp_path / "new"), lambda data: (b"x\n", data)) is None
    assert (tmp_path / "new").read_bytes() == b"x\n"
