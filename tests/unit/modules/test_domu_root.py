"""domu_root.confine and populate_root(confine=True) against recorded
mount(2) calls and a mountinfo of the test's making (the real kernel and
findmnt are tests/functional/states/test_domu_root_confined.py)."""

import ctypes
import errno
import io
import os
import stat
import tarfile

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.loader import functions
from xen_nfsroot.modules import domu_root
from xen_nfsroot_lib import mounts

LINE = "/srv/g1 /srv/g1 none bind,nosuid,nodev 0 0"
MOUNTINFO = """\
1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw
2 1 8:2 / /srv rw,relatime - ext4 /dev/sda2 rw
3 1 8:3 / /data rw,nosuid,nodev - ext4 /dev/sda3 rw
4 2 8:4 / /srv/dedicated rw,relatime - xfs /dev/sdb1 rw
"""


class Syscalls:
    """The C library's mount(2) and umount2(2), recorded: ``calls`` holds
    ``(name, target, flags)``; ``fail[(name, n)] = errno`` fails the n-th
    call of that name (from 0) as the kernel would, errno set."""

    def __init__(self):
        self.calls, self.fail, self.seen = [], {}, []

    def _call(self, name, target, flags):
        count = sum(1 for call in self.calls if call[0] == name)
        self.calls.append((name, os.fsdecode(target), flags))
        code = self.fail.get((name, count))
        if code:
            ctypes.set_errno(code)
            return -1
        return 0

    def mount(self, source, target, fstype, flags, data):
        assert fstype is None and data is None
        assert source in (target, None)
        self.seen.append(stat.S_IMODE(os.stat(target).st_mode))
        return self._call("mount", target, flags)

    def umount2(self, target, flags):
        return self._call("umount2", target, flags)

    def bound(self):
        """The roots bind-mounted then made nosuid,nodev, in order."""
        return [target for name, target, flags in self.calls
                if name == "mount" and flags == mounts.BIND_CALLS[1]]


@pytest.fixture
def syscalls(monkeypatch):
    fake = Syscalls()
    monkeypatch.setattr(domu_root, "_libc", lambda: fake)
    return fake


@pytest.fixture
def configure_loader_modules(syscalls):
    return {domu_root: {"__salt__": {}, "__context__": {}}}


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A mountinfo and an fstab of the test's making; the roots are real
    directories under tmp_path, named in mountinfo by their real paths."""
    base = tmp_path / "srv"
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO.replace(" /srv", f" {base}"))
    monkeypatch.setattr(mounts, "MOUNTINFO", str(info))
    (tmp_path / "fstab").write_text("/dev/sda1 / ext4 defaults 0 1\n")
    for root in ("g1", "g2", "dedicated"):
        (base / root).mkdir(parents=True)
    return base


def confine(server, root, **kwargs):
    return domu_root.confine(str(server / root), config=str(server.parent / "fstab"), **kwargs)


def test_the_cli_is_the_operations_on_a_root():
    assert sorted(functions(domu_root)) == ["domu_root.confine", "domu_root.populate_root"]


def test_a_plain_directory_is_bind_mounted_and_kept_in_fstab(server, syscalls):
    fstab = server.parent / "fstab"
    line = LINE.replace("/srv", str(server))
    assert confine(server, "g1") == {
        "name": str(server / "g1"), "mounted": True, "mount_point": str(server / "g1"),
        "fstab": {"entry": {"old": None, "new": line}}}
    root = str(server / "g1")
    assert syscalls.calls == [("mount", root, mounts.MS_BIND),
                              ("mount", root, mounts.MS_REMOUNT | mounts.MS_BIND
                               | mounts.MS_NOSUID | mounts.MS_NODEV)]
    assert fstab.read_text() == f"/dev/sda1 / ext4 defaults 0 1\n{line}\n"
    # The same run knows it is mounted now: no second mount, no second line.
    assert confine(server, "g1") == {"name": str(server / "g1"), "mounted": False,
                                     "mount_point": str(server / "g1"), "fstab": {}}
    assert syscalls.bound() == [root]


def test_test_mode_predicts_exactly_and_changes_nothing(server, syscalls):
    before = (server.parent / "fstab").read_text()
    line = LINE.replace("/srv", str(server))
    assert confine(server, "g1", test=True) == {
        "name": str(server / "g1"), "mounted": True, "mount_point": str(server / "g1"),
        "fstab": {"entry": {"old": None, "new": line}}}
    assert syscalls.calls == []
    assert (server.parent / "fstab").read_text() == before


def test_mountinfo_is_read_once_per_run(server, syscalls):
    confine(server, "g1")
    os.unlink(mounts.MOUNTINFO)
    assert confine(server, "g2")["mounted"] is True
    assert syscalls.bound() == [str(server / "g1"), str(server / "g2")]


def test_a_failed_mount_is_named_and_writes_no_line(server, syscalls):
    syscalls.fail[("mount", 0)] = errno.EPERM
    with pytest.raises(CommandExecutionError, match=r"^the bind mount of .*g1 onto itself "
                                                    r"failed: Operation not permitted$"):
        confine(server, "g1")
    assert (server.parent / "fstab").read_text() == "/dev/sda1 / ext4 defaults 0 1\n"


def test_a_bind_mount_without_the_flags_is_undone(server, syscalls):
    syscalls.fail[("mount", 1)] = errno.EINVAL
    with pytest.raises(CommandExecutionError, match=(
            r"^the bind mount of .*g1 could not be made nosuid,nodev: Invalid argument; "
            r"the bind mount was undone$")):
        confine(server, "g1")
    assert [call[0] for call in syscalls.calls] == ["mount", "mount", "umount2"]
    assert (server.parent / "fstab").read_text() == "/dev/sda1 / ext4 defaults 0 1\n"
    syscalls.calls.clear()
    syscalls.fail = {("mount", 1): errno.EINVAL, ("umount2", 0): errno.EBUSY}
    with pytest.raises(CommandExecutionError, match=(
            r"NOT undone \(Device or resource busy\): umount .*g1$")):
        confine(server, "g1")


def test_a_dedicated_file_system_without_the_flags_is_refused_with_the_fix(server, syscalls):
    with pytest.raises(SaltInvocationError) as err:
        confine(server, "dedicated")
    assert str(err.value).startswith(
        f"name: '{server / 'dedicated'}' is a mount point without nosuid,nodev: ")
    assert f"mount -o remount,nosuid,nodev {server / 'dedicated'}" in str(err.value)
    assert syscalls.calls == []
    assert (server.parent / "fstab").read_text() == "/dev/sda1 / ext4 defaults 0 1\n"


def test_a_root_on_a_confined_mount_needs_nothing(tmp_path, server, syscalls):
    (tmp_path / "mountinfo").write_text(MOUNTINFO.replace(" /data", f" {server}"))
    assert confine(server, "g1") == {"name": str(server / "g1"), "mounted": False,
                                     "mount_point": str(server), "fstab": {}}
    assert syscalls.calls == []


def test_no_second_line_for_a_mount_point_another_line_owns(server, syscalls):
    fstab = server.parent / "fstab"
    fstab.write_text(f"/dev/sdc1 {server / 'g1'} xfs defaults 0 2\n")
    assert confine(server, "g1")["fstab"] == {}
    assert fstab.read_text() == f"/dev/sdc1 {server / 'g1'} xfs defaults 0 2\n"
    assert syscalls.bound() == [str(server / "g1")]


def test_a_missing_root_fails_and_is_predicted_in_test_mode(server, syscalls):
    with pytest.raises(CommandExecutionError, match="missing does not exist$"):
        confine(server, "missing")
    assert confine(server, "missing", test=True)["missing"] is True
    assert syscalls.calls == []


def test_a_root_that_is_a_link_is_refused(server, syscalls):
    os.symlink("/etc", server / "link")
    with pytest.raises(CommandExecutionError, match="link is a symbolic link, not a directory"):
        confine(server, "link")
    assert syscalls.calls == []


def archive(path):
    with tarfile.open(path, "w") as tar:
        for name, mode in ((".", 0o755), ("usr", 0o755)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        info = tarfile.TarInfo("usr/passwd")
        info.mode, info.size = 0o4755, 4
        tar.addfile(info, io.BytesIO(b"\x7fELF"))
    return str(path)


def test_a_new_root_is_mounted_while_only_root_can_traverse_it(server, tmp_path, syscalls):
    outcome = domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                      confine=True)
    assert outcome == {"name": str(server / "new"), "populated": True, "members": 3,
                       "mounted": True}
    assert syscalls.seen == [0o700, 0o700]
    assert syscalls.bound() == [str(server / "new")]
    assert stat.S_IMODE(os.stat(server / "new").st_mode) == 0o755


def test_a_new_root_whose_mount_fails_is_removed_again(server, tmp_path, syscalls):
    syscalls.fail[("mount", 0)] = errno.EPERM
    with pytest.raises(CommandExecutionError, match="onto itself failed: Operation not permitted$"):
        domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                confine=True)
    assert sorted(os.listdir(server)) == ["dedicated", "g1", "g2"]


def test_a_new_root_on_a_confined_mount_is_not_mounted_again(tmp_path, server, syscalls):
    (tmp_path / "mountinfo").write_text(MOUNTINFO.replace(" /data", f" {server}"))
    assert domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                   confine=True, test=True)["mounted"] is False
    assert domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                   confine=True)["mounted"] is False
    assert syscalls.calls == []
    assert stat.S_IMODE(os.stat(server / "new").st_mode) == 0o755
