"""domu_fstab states with a mocked loader whose __salt__ is the real execution module."""

import os
import shutil
from unittest.mock import patch

import pytest

from tests.support.fstab_cases import (
    CORPUS_FSTAB_EXPECTED,
    FSTAB_CASES,
    FSTAB_FILES,
    commented_out,
    fates,
    read,
)
from tests.support.seed import SEED_FSTAB as SEED
from tests.support.seed import SEED_FSTAB_RESULT as SEED_RESULT
from tests.support.seed import guest_root
from xen_nfsroot.modules import domu_fstab as fstab_module
from xen_nfsroot.states import domu_fstab
from xen_nfsroot_lib import fstab


@pytest.fixture
def configure_loader_modules():
    salt = {
        f"domu_fstab.{name}": getattr(fstab_module, name)
        for name in ("set_nfs_root", "set_entry", "rm_entry", "entries")
    }
    return {
        domu_fstab: {"__salt__": salt, "__opts__": {"test": False}, "__context__": {}},
        fstab_module: {"__salt__": salt},
    }


@pytest.fixture
def guest(tmp_path):
    """A guest root directory with an etc/ and the seed's fstab."""
    return guest_root(tmp_path)


def test_virtual_needs_the_execution_module():
    assert domu_fstab.__virtual__() == "domu_fstab"
    with patch.dict(domu_fstab.__salt__, clear=True):
        assert domu_fstab.__virtual__() == (
            False, "domu_fstab: the domu_fstab execution module is not loaded"
        )


def test_seed_nfs_root_then_no_changes(guest):
    path = guest / "etc" / "fstab"
    ret = domu_fstab.nfs_root(name=str(guest))
    assert ret == {
        "name": str(guest),
        "result": True,
        "changes": {
            "root": {"old": "/dev/sda1 / ext3 defaults 1 1", "new": "/dev/nfs / nfs defaults 0 0"},
            "disabled": ["/dev/sdb2 swap swap defaults 0 0"],
        },
        "comment": f"Set the root line of {path} to /dev/nfs / nfs defaults 0 0 "
        "(old root line commented out: /dev/sda1 / ext3 defaults 1 1) "
        "and commented out 1 local-disk line: /dev/sdb2 swap",
    }
    assert path.read_text() == SEED_RESULT

    again = domu_fstab.nfs_root(name=str(guest))
    assert again == {
        "name": str(guest),
        "result": True,
        "changes": {},
        "comment": f"{path} already mounts / from /dev/nfs (/dev/nfs / nfs defaults 0 0) "
        "and has no active local-disk line",
    }
    assert path.read_text() == SEED_RESULT


def test_test_mode_predicts_exactly_and_writes_nothing(guest):
    path = guest / "etc" / "fstab"
    before = os.stat(path)
    with patch.dict(domu_fstab.__opts__, {"test": True}):
        ret = domu_fstab.nfs_root(name=str(guest))
    assert ret["result"] is None
    assert ret["comment"] == (
        f"Would have set the root line of {path} to /dev/nfs / nfs defaults 0 0 "
        "(old root line commented out: /dev/sda1 / ext3 defaults 1 1) "
        "and commented out 1 local-disk line: /dev/sdb2 swap"
    )
    assert path.read_text() == SEED
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    # the prediction is what a real run then does
    assert domu_fstab.nfs_root(name=str(guest))["changes"] == ret["changes"]


def check_through_the_state(root, source, expected=None):
    """nfs_root on a guest root holding source as etc/fstab, then again.

    expected: (old_root, disabled) as in tests/support/fstab_cases.py, or
    None to check only what holds for any fstab.
    """
    (root / "etc").mkdir()
    path = root / "etc" / "fstab"
    shutil.copyfile(source, path)
    before = read(source)

    ret = domu_fstab.nfs_root(name=str(root))
    assert ret["result"] is True
    after = read(path)
    line_fates, inserted = fates(before, after)
    disabled = [fstab.summary(line) for line in commented_out(before, line_fates)]
    if not ret["changes"]:
        assert after == before
    else:
        old_root = ret["changes"].get("root", {}).get("old")
        assert sorted(disabled) == sorted(
            ([old_root] if old_root and not old_root.startswith("/dev/nfs ") else [])
            + ret["changes"].get("disabled", [])
        )
        root_lines = len(inserted) + line_fates.count("replaced")
        assert root_lines == (1 if "root" in ret["changes"] else 0)
    if expected is not None:
        old_root, expected_disabled = expected
        if old_root is None:
            assert ret["changes"] == {}
        else:
            assert ret["changes"].get("disabled", []) == expected_disabled
            assert ret["changes"]["root"]["old"] == (old_root or None)

    again = domu_fstab.nfs_root(name=str(root))
    assert again["result"] is True and again["changes"] == {}
    assert read(path) == after


@pytest.mark.parametrize("source", FSTAB_FILES, ids=lambda p: p.name)
def test_data_fstab_through_the_state(tmp_path, source):
    case = FSTAB_CASES[source.name]
    check_through_the_state(tmp_path, source, (case.old_root, case.disabled))


def test_corpus_fstab_through_the_state(tmp_path, corpus_fstab):
    check_through_the_state(tmp_path, corpus_fstab, CORPUS_FSTAB_EXPECTED.get(corpus_fstab.name))


def test_missing_fstab_is_created_with_the_root_line(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "fstab"
    ret = domu_fstab.nfs_root(name=str(tmp_path), opts="vers=3")
    assert ret["result"] is True
    assert ret["changes"] == {
        "root": {"old": None, "new": "/dev/nfs / nfs vers=3 0 0"},
        "created": str(path),
    }
    assert ret["comment"] == f"Created {path} with the root line /dev/nfs / nfs vers=3 0 0"
    assert path.read_text() == (
        "/dev/nfs                /                       nfs     vers=3          0 0\n"
    )
    assert oct(os.stat(path).st_mode & 0o7777) == "0o644"


def test_missing_fstab_in_test_mode_is_not_created(tmp_path):
    (tmp_path / "etc").mkdir()
    with patch.dict(domu_fstab.__opts__, {"test": True}):
        ret = domu_fstab.nfs_root(name=str(tmp_path))
    assert ret["result"] is None
    assert ret["comment"] == (
        f"Would have created {tmp_path}/etc/fstab with the root line /dev/nfs / nfs defaults 0 0"
    )
    assert os.listdir(tmp_path / "etc") == []


def test_root_without_etc_fails_and_creates_nothing(tmp_path):
    ret = domu_fstab.nfs_root(name=str(tmp_path))
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == (
        f"name: {str(tmp_path)!r} {tmp_path}/etc does not exist: not a guest root "
        "filesystem (it needs an etc/ directory)"
    )
    assert os.listdir(tmp_path) == []


def test_missing_root_directory_fails(tmp_path):
    ret = domu_fstab.nfs_root(name=str(tmp_path / "nope"))
    assert ret["result"] is False
    nope = str(tmp_path / "nope")
    assert ret["comment"] == f"name: {nope!r} {nope}: no such directory"
    assert os.listdir(tmp_path) == []


def test_the_servers_own_root_is_refused():
    ret = domu_fstab.nfs_root(name="/")
    assert ret["result"] is False
    assert ret["comment"] == (
        "name: '/' / is this machine's own root, not a guest's root directory"
    )


def test_symlinked_fstab_is_refused(guest, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(SEED)
    path = guest / "etc" / "fstab"
    path.unlink()
    path.symlink_to(elsewhere)
    ret = domu_fstab.nfs_root(name=str(guest))
    assert ret["result"] is False
    assert ret["comment"] == (
        f"name: {str(guest)!r} {path} is a symbolic link: refusing to follow or read it"
    )
    assert elsewhere.read_text() == SEED and path.is_symlink()


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"name": "xen"}, "name", "xen"),
        ({"name": "/xen\n"}, "name", "/xen\n"),
        ({"name": ""}, "name", ""),
        ({"name": None}, "name", None),
        ({"fstype": "nfs 4"}, "fstype", "nfs 4"),
        ({"opts": ""}, "opts", ""),
        ({"opts": "rw tcp"}, "opts", "rw tcp"),
        ({"dump": -1}, "dump", -1),
        ({"pass_num": "1"}, "pass_num", "1"),
        ({"disable": "/dev/sdb2"}, "disable", "/dev/sdb2"),
        ({"disable": [None]}, "disable", None),
    ],
)
def test_bad_input_names_field_and_value_and_changes_nothing(guest, kwargs, field, value):
    path = guest / "etc" / "fstab"
    before = os.stat(path)
    args = {"name": str(guest), **kwargs}
    ret = domu_fstab.nfs_root(**args)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith(f"{field}: {value!r} ")
    assert path.read_text() == SEED
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_disable_list_wording(guest):
    path = guest / "etc" / "fstab"
    ret = domu_fstab.nfs_root(name=str(guest), disable=["/proc", "swap"])
    assert ret["comment"].endswith(
        "and commented out 2 lines listed in disable: none /proc, /dev/sdb2 swap"
    )
    ret = domu_fstab.nfs_root(name=str(guest), disable=["/proc", "swap"])
    assert ret["comment"] == (
        f"{path} already mounts / from /dev/nfs (/dev/nfs / nfs defaults 0 0) "
        "and has no active line listed in disable"
    )


def test_only_disabling_names_the_file(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "fstab"
    path.write_text("/dev/nfs / nfs defaults 0 0\nUUID=1 /a ext4 defaults 0 2\n")
    ret = domu_fstab.nfs_root(name=str(tmp_path))
    assert ret["comment"] == f"Commented out 1 local-disk line in {path}: UUID=1 /a"
    assert ret["changes"] == {"disabled": ["UUID=1 /a ext4 defaults 0 2"]}


def test_nfs_root_line_update_wording(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "fstab"
    path.write_text("/dev/nfs / nfs defaults 0 0\n")
    ret = domu_fstab.nfs_root(name=str(tmp_path), opts=["vers=3", "tcp"])
    assert ret["comment"] == (
        f"Set the root line of {path} to /dev/nfs / nfs vers=3,tcp 0 0 "
        "(was: /dev/nfs / nfs defaults 0 0)"
    )
    assert path.read_text() == "/dev/nfs / nfs vers=3,tcp 0 0\n"


def test_failed_write_leaves_the_file_and_no_temporary(guest):
    path = guest / "etc" / "fstab"
    with patch("os.rename", side_effect=OSError(28, "No space left on device")):
        ret = domu_fstab.nfs_root(name=str(guest))
    assert ret["result"] is False
    assert ret["comment"] == (
        f"name: {str(guest)!r} cannot write {path}: No space left on device"
    )
    assert path.read_text() == SEED
    assert os.listdir(guest / "etc") == ["fstab"]


# --------------------------------------------------------------------------- present / absent


def test_present_appends_then_is_idempotent(guest):
    path = guest / "etc" / "fstab"
    ret = domu_fstab.present("/home", str(guest), "192.0.2.1:/home", "nfs", opts="vers=3")
    assert ret["result"] is True
    assert ret["changes"] == {
        "entry": {"old": None, "new": "192.0.2.1:/home /home nfs vers=3 0 0"}
    }
    assert ret["comment"] == f"Added the entry 192.0.2.1:/home /home nfs vers=3 0 0 to {path}"
    assert path.read_text() == SEED + (
        "192.0.2.1:/home         /home                   nfs     vers=3          0 0\n"
    )
    again = domu_fstab.present("/home", str(guest), "192.0.2.1:/home", "nfs", opts="vers=3")
    assert again["changes"] == {}
    assert again["comment"] == f"Entry for /home in {path} is already present"


def test_present_changes_in_place_and_test_mode(guest):
    path = guest / "etc" / "fstab"
    with patch.dict(domu_fstab.__opts__, {"test": True}):
        ret = domu_fstab.present("/proc", str(guest), "proc", "proc", opts="hidepid=2")
    assert ret["result"] is None
    assert ret["comment"] == (
        f"Would have changed the entry for /proc in {path} to proc /proc proc hidepid=2 0 0 "
        "(was: none /proc proc defaults 0 0)"
    )
    assert path.read_text() == SEED
    ret = domu_fstab.present("/proc", str(guest), "proc", "proc", opts="hidepid=2")
    assert ret["result"] is True
    assert path.read_text() == SEED.replace(
        "none                    /proc                   proc    defaults ",
        "proc                    /proc                   proc    hidepid=2",
    )


def test_present_restores_a_line_commented_out_by_nfs_root(guest):
    path = guest / "etc" / "fstab"
    domu_fstab.nfs_root(name=str(guest))
    ret = domu_fstab.present("swap", str(guest), "/dev/sdb2", "swap")
    assert ret["comment"] == (
        f"Restored the commented-out entry /dev/sdb2 swap swap defaults 0 0 in {path}"
    )
    assert path.read_text() == SEED_RESULT.replace("#xen-nfsroot# /dev/sdb2", "/dev/sdb2")


def test_present_bad_input(guest):
    ret = domu_fstab.present("home", str(guest), "srv:/home", "nfs")
    assert ret["result"] is False
    assert ret["comment"] == "name: 'home' must be an absolute path, 'swap' or 'none'"
    ret = domu_fstab.present("/home", "relative", "srv:/home", "nfs")
    assert ret["comment"] == "root: 'relative' must be an absolute path"
    assert (guest / "etc" / "fstab").read_text() == SEED


def test_absent_comments_out_then_reports_nothing_to_do(guest):
    path = guest / "etc" / "fstab"
    ret = domu_fstab.absent("swap", str(guest), device="/dev/sdb2")
    assert ret["result"] is True
    assert ret["changes"] == {"disabled": ["/dev/sdb2 swap swap defaults 0 0"]}
    assert ret["comment"] == (
        f"Commented out 1 line for /dev/sdb2 on swap in {path}: /dev/sdb2 swap swap defaults 0 0"
    )
    assert path.read_text() == SEED_RESULT.replace(
        "#xen-nfsroot# /dev/sda1", "/dev/sda1"
    ).replace("/dev/nfs                /                       nfs     defaults        0 0\n", "")
    again = domu_fstab.absent("swap", str(guest), device="/dev/sdb2")
    assert again["changes"] == {}
    assert again["comment"] == f"No active entry for /dev/sdb2 on swap in {path}"


def test_absent_with_missing_fstab_has_nothing_to_do(tmp_path):
    (tmp_path / "etc").mkdir()
    ret = domu_fstab.absent("/home", str(tmp_path))
    assert ret["result"] is True and ret["changes"] == {}
    assert os.listdir(tmp_path / "etc") == []
