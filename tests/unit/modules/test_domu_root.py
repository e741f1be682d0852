"""domu_root.confine and populate_root(confine=True) against a recorded
``mount`` and a mountinfo of the test's making (the real mount, kernel and
findmnt are tests/functional/states/test_domu_root_confined.py)."""

import io
import os
import stat
import tarfile

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.commands import Commands, result
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


@pytest.fixture
def run_all():
    return Commands()


@pytest.fixture
def configure_loader_modules(run_all):
    return {domu_root: {"__salt__": {"cmd.run_all": run_all}, "__context__": {}}}


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


def test_a_plain_directory_is_bind_mounted_and_kept_in_fstab(server, run_all):
    fstab = server.parent / "fstab"
    line = LINE.replace("/srv", str(server))
    assert confine(server, "g1") == {
        "name": str(server / "g1"), "mounted": True, "mount_point": str(server / "g1"),
        "fstab": {"entry": {"old": None, "new": line}}}
    assert run_all.argv() == [["mount", "--bind", "-o", "nosuid,nodev",
                               str(server / "g1"), str(server / "g1")]]
    assert fstab.read_text() == f"/dev/sda1 / ext4 defaults 0 1\n{line}\n"
    # The same run knows it is mounted now: no second mount, no second line.
    assert confine(server, "g1") == {"name": str(server / "g1"), "mounted": False,
                                     "mount_point": str(server / "g1"), "fstab": {}}
    assert len(run_all.calls) == 1


def test_test_mode_predicts_exactly_and_changes_nothing(server, run_all):
    before = (server.parent / "fstab").read_text()
    line = LINE.replace("/srv", str(server))
    assert confine(server, "g1", test=True) == {
        "name": str(server / "g1"), "mounted": True, "mount_point": str(server / "g1"),
        "fstab": {"entry": {"old": None, "new": line}}}
    assert run_all.calls == []
    assert (server.parent / "fstab").read_text() == before


def test_mountinfo_is_read_once_per_run(server, run_all):
    confine(server, "g1")
    os.unlink(mounts.MOUNTINFO)
    assert confine(server, "g2")["mounted"] is True
    assert [call["argv"][-1] for call in run_all.calls] == [str(server / "g1"),
                                                            str(server / "g2")]


def test_a_failed_mount_is_named_and_writes_no_line(server, run_all):
    run_all.answer(["mount"], retcode=32, stderr="mount: permission denied\n")
    with pytest.raises(CommandExecutionError, match=r"mount --bind .*g1 failed \(exit 32\): "
                                                    r"mount: permission denied$"):
        confine(server, "g1")
    assert (server.parent / "fstab").read_text() == "/dev/sda1 / ext4 defaults 0 1\n"


def test_a_dedicated_file_system_without_the_flags_is_refused_with_the_fix(server, run_all):
    with pytest.raises(SaltInvocationError) as err:
        confine(server, "dedicated")
    assert str(err.value).startswith(
        f"name: '{server / 'dedicated'}' is a mount point without nosuid,nodev: ")
    assert f"mount -o remount,nosuid,nodev {server / 'dedicated'}" in str(err.value)
    assert run_all.calls == []
    assert (server.parent / "fstab").read_text() == "/dev/sda1 / ext4 defaults 0 1\n"


def test_a_root_on_a_confined_mount_needs_nothing(tmp_path, server, run_all):
    (tmp_path / "mountinfo").write_text(MOUNTINFO.replace(" /data", f" {server}"))
    assert confine(server, "g1") == {"name": str(server / "g1"), "mounted": False,
                                     "mount_point": str(server), "fstab": {}}
    assert run_all.calls == []


def test_no_second_line_for_a_mount_point_another_line_owns(server, run_all):
    fstab = server.parent / "fstab"
    fstab.write_text(f"/dev/sdc1 {server / 'g1'} xfs defaults 0 2\n")
    assert confine(server, "g1")["fstab"] == {}
    assert fstab.read_text() == f"/dev/sdc1 {server / 'g1'} xfs defaults 0 2\n"
    assert run_all.argv()[0][:2] == ["mount", "--bind"]


def test_a_missing_root_fails_and_is_predicted_in_test_mode(server, run_all):
    with pytest.raises(CommandExecutionError, match="missing does not exist$"):
        confine(server, "missing")
    assert confine(server, "missing", test=True)["missing"] is True
    assert run_all.calls == []


def test_a_root_that_is_a_link_is_refused(server, run_all):
    os.symlink("/etc", server / "link")
    with pytest.raises(CommandExecutionError, match="link is a symbolic link, not a directory"):
        confine(server, "link")
    assert run_all.calls == []


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


def test_a_new_root_is_mounted_while_only_root_can_traverse_it(server, tmp_path):
    seen = []

    def mount(cmd, python_shell=None, **kwargs):
        seen.append(stat.S_IMODE(os.stat(cmd[-1]).st_mode))
        return result()

    domu_root.__salt__["cmd.run_all"] = mount
    outcome = domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                      confine=True)
    assert outcome == {"name": str(server / "new"), "populated": True, "members": 3,
                       "mounted": True}
    assert seen == [0o700]
    assert stat.S_IMODE(os.stat(server / "new").st_mode) == 0o755


def test_a_new_root_whose_mount_fails_is_removed_again(server, tmp_path, run_all):
    run_all.answer(["mount"], retcode=32, stderr="mount: no\n")
    with pytest.raises(CommandExecutionError, match=r"\(exit 32\): mount: no$"):
        domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                confine=True)
    assert sorted(os.listdir(server)) == ["dedicated", "g1", "g2"]


def test_a_new_root_on_a_confined_mount_is_not_mounted_again(tmp_path, server, run_all):
    (tmp_path / "mountinfo").write_text(MOUNTINFO.replace(" /data", f" {server}"))
    assert domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                   confine=True, test=True)["mounted"] is False
    assert domu_root.populate_root(str(server / "new"), archive(tmp_path / "root.tar"),
                                   confine=True)["mounted"] is False
    assert run_all.calls == []
    assert stat.S_IMODE(os.stat(server / "new").st_mode) == 0o755
