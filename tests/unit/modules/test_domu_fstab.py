"""The domu_fstab execution module: the guest's fstab read, edited and written
back in its tree (the line model and the plans are tests/unit/utils/test_fstab.py)."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.loader import functions
from tests.support.seed import SEED_FSTAB as SEED
from tests.support.seed import SEED_FSTAB_RESULT as SEED_RESULT
from tests.support.seed import guest_root
from xen_nfsroot.modules import domu_fstab
from xen_nfsroot_lib import files


@pytest.fixture
def guest(tmp_path):
    """A guest root directory with an etc/ and the seed's fstab."""
    return guest_root(tmp_path)


def test_the_cli_is_the_operations_on_a_guest_tree():
    assert sorted(functions(domu_fstab)) == [
        "domu_fstab.entries", "domu_fstab.rm_entry", "domu_fstab.set_entry",
        "domu_fstab.set_nfs_root"]


def test_entries_are_the_active_lines(guest, tmp_path):
    assert domu_fstab.entries(str(guest)) == [
        {"device": "/dev/sda1", "name": "/", "fstype": "ext3", "opts": "defaults",
         "dump": 1, "pass_num": 1},
        {"device": "none", "name": "/dev/pts", "fstype": "devpts", "opts": "gid=5,mode=620",
         "dump": 0, "pass_num": 0},
        {"device": "none", "name": "/dev/shm", "fstype": "tmpfs", "opts": "defaults",
         "dump": 0, "pass_num": 0},
        {"device": "none", "name": "/proc", "fstype": "proc", "opts": "defaults",
         "dump": 0, "pass_num": 0},
        {"device": "none", "name": "/sys", "fstype": "sysfs", "opts": "defaults",
         "dump": 0, "pass_num": 0},
        {"device": "/dev/sdb2", "name": "swap", "fstype": "swap", "opts": "defaults",
         "dump": 0, "pass_num": 0},
    ]
    (tmp_path / "empty" / "etc").mkdir(parents=True)
    assert domu_fstab.entries(str(tmp_path / "empty")) == []


def test_set_nfs_root_writes_then_has_nothing_to_do(guest):
    path = guest / "etc" / "fstab"
    assert domu_fstab.set_nfs_root(str(guest), test=True) == {
        "root": {"old": "/dev/sda1 / ext3 defaults 1 1", "new": "/dev/nfs / nfs defaults 0 0"},
        "disabled": ["/dev/sdb2 swap swap defaults 0 0"],
    }
    assert path.read_text() == SEED
    assert domu_fstab.set_nfs_root(str(guest))["root"]["new"] == "/dev/nfs / nfs defaults 0 0"
    assert path.read_text() == SEED_RESULT
    assert domu_fstab.set_nfs_root(str(guest)) == {}


def test_a_missing_fstab_is_created(tmp_path):
    (tmp_path / "etc").mkdir()
    changes = domu_fstab.set_entry("/home", str(tmp_path), "srv:/home", "nfs")
    assert changes == {"entry": {"old": None, "new": "srv:/home /home nfs defaults 0 0"},
                       "created": f"{tmp_path}/etc/fstab"}
    assert (tmp_path / "etc" / "fstab").read_text() == (
        "srv:/home               /home                   nfs     defaults        0 0\n")
    assert domu_fstab.rm_entry("/home", str(tmp_path)) == {
        "disabled": ["srv:/home /home nfs defaults 0 0"]}


def test_an_edit_is_retried_when_the_guest_changes_the_file_meanwhile(guest, monkeypatch):
    """The guest appends a line between the read and the write: the write's
    compare and swap fails, the edit is planned again, the guest's line stays."""
    path = guest / "etc" / "fstab"
    real_read = files.read
    reads = []

    def read_then_guest_edits(*args, **kwargs):
        data = real_read(*args, **kwargs)
        reads.append(data)
        if len(reads) == 1:
            path.write_text(SEED + "tmpfs /tmp tmpfs defaults 0 0\n")
        return data

    monkeypatch.setattr(files, "read", read_then_guest_edits)
    domu_fstab.set_nfs_root(str(guest))
    assert len(reads) == 2
    assert path.read_text() == SEED_RESULT + "tmpfs /tmp tmpfs defaults 0 0\n"


def test_a_file_that_keeps_changing_fails_after_the_attempts(guest, monkeypatch):
    path = guest / "etc" / "fstab"
    real_read = files.read
    count = []

    def read_then_guest_edits(*args, **kwargs):
        data = real_read(*args, **kwargs)
        count.append(1)
        path.write_text(SEED + f"# edit {len(count)}\n")
        return data

    monkeypatch.setattr(files, "read", read_then_guest_edits)
    with pytest.raises(CommandExecutionError, match="kept changing while it was edited"):
        domu_fstab.set_nfs_root(str(guest))
    assert len(count) == files.EDIT_ATTEMPTS
    assert not [name for name in os.listdir(guest / "etc") if name != "fstab"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: domu_fstab.entries("xen"), "root: 'xen' must be an absolute path"),
        (lambda: domu_fstab.set_nfs_root("/xen", dump=-1), "dump: -1 must be an integer >= 0"),
        (lambda: domu_fstab.set_entry("home", "/xen", "srv:/home", "nfs"),
         "name: 'home' must be an absolute path, 'swap' or 'none'"),
        (lambda: domu_fstab.rm_entry("swap", "/xen", device="a\nb"),
         "device: 'a\\nb' must not contain a newline or NUL byte"),
    ],
)
def test_bad_arguments_are_refused_before_reading(call, message):
    with pytest.raises(SaltInvocationError) as err:
        call()
    assert str(err.value) == message


def test_a_tree_without_etc_is_not_a_guest_root(tmp_path):
    with pytest.raises(SaltInvocationError) as err:
        domu_fstab.entries(str(tmp_path))
    assert str(err.value) == (
        f"root: {str(tmp_path)!r} {tmp_path}/etc does not exist: not a guest root "
        "filesystem (it needs an etc/ directory)")
