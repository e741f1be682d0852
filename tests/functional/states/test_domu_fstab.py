"""domu_fstab states and module through the real Salt loader, on real files."""

import json
import os
import subprocess

import pytest
import salt.payload
from saltfactories.utils.functional import Loaders

from tests.support.seed import SEED_FSTAB, SEED_FSTAB_RESULT, guest_root

SEED = SEED_FSTAB
SEED_RESULT = SEED_FSTAB_RESULT
SEED_CHANGES = {
    "root": {"old": "/dev/sda1 / ext3 defaults 1 1", "new": "/dev/nfs / nfs defaults 0 0"},
    "disabled": ["/dev/sdb2 swap swap defaults 0 0"],
}


def apply_sls(modules, function, test=False, **args):
    """Apply one domu_fstab state from an SLS document (the path SLS files take).

    ``state.single`` cannot pass an ``opts`` argument (it is its own keyword, as
    for Salt's mount.mounted), an SLS can.
    """
    sls = json.dumps({"guest fstab": {f"domu_fstab.{function}": [{k: v} for k, v in args.items()]}})
    (ret,) = list(modules.state.template_str(sls, test=test))
    return ret


@pytest.fixture
def guest(tmp_path):
    """A guest root directory with an etc/ and the seed's fstab."""
    return guest_root(tmp_path)


def test_loader_has_the_state_and_the_module(states, modules):
    for name in ("nfs_root", "present", "absent"):
        assert f"domu_fstab.{name}" in states
    assert sorted(name for name in modules if name.startswith("domu_fstab.")) == [
        "domu_fstab.entries", "domu_fstab.rm_entry", "domu_fstab.set_entry",
        "domu_fstab.set_nfs_root"]


def test_nfs_root_changes_then_no_changes(states, guest):
    path = guest / "etc" / "fstab"
    inode = os.stat(path).st_ino
    ret = states.domu_fstab.nfs_root(name=str(guest))
    assert ret.result is True
    assert ret.changes == SEED_CHANGES
    assert ret.comment == (
        f"Set the root line of {path} to /dev/nfs / nfs defaults 0 0 "
        "(old root line commented out: /dev/sda1 / ext3 defaults 1 1) "
        "and commented out 1 local-disk line: /dev/sdb2 swap"
    )
    assert path.read_bytes() == SEED_RESULT.encode()
    assert os.stat(path).st_ino != inode  # replaced by rename, not rewritten in place
    assert os.listdir(guest / "etc") == ["fstab"]

    mtime = os.stat(path).st_mtime_ns
    again = states.domu_fstab.nfs_root(name=str(guest))
    assert again.result is True
    assert again.changes == {}
    assert again.comment == (
        f"{path} already mounts / from /dev/nfs (/dev/nfs / nfs defaults 0 0) "
        "and has no active local-disk line"
    )
    assert os.stat(path).st_mtime_ns == mtime


def test_test_mode_changes_nothing(states, guest):
    path = guest / "etc" / "fstab"
    before = os.stat(path)
    ret = states.domu_fstab.nfs_root(name=str(guest), test=True)
    assert ret.result is None
    assert ret.changes == SEED_CHANGES
    assert ret.comment.startswith(f"Would have set the root line of {path} to /dev/nfs /")
    assert path.read_bytes() == SEED.encode()
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_mode_and_owner_are_kept(states, guest):
    path = guest / "etc" / "fstab"
    os.chmod(path, 0o640)
    os.chown(path, 1234, 5678)
    ret = states.domu_fstab.nfs_root(name=str(guest))
    assert ret.result is True and ret.changes
    st = os.stat(path)
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ("0o640", 1234, 5678)


def test_bytes_outside_the_owned_lines_are_kept(states, tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "fstab"
    before = (
        b"# caf\xe9 \xff not utf-8\r\n"
        b"/dev/sda1\t/\text4\tdefaults\t1 1\r\n"
        b"  proc  /proc proc defaults 0 0   \n"
        b"UUID=ab12 /data xfs noatime 0 2"
    )
    path.write_bytes(before)
    ret = states.domu_fstab.nfs_root(name=str(tmp_path))
    assert ret.result is True
    assert path.read_bytes() == (
        b"# caf\xe9 \xff not utf-8\r\n"
        b"#xen-nfsroot# /dev/sda1\t/\text4\tdefaults\t1 1\r\n"
        b"/dev/nfs\t/\tnfs\tdefaults\t0 0\r\n"
        b"  proc  /proc proc defaults 0 0   \n"
        b"#xen-nfsroot# UUID=ab12 /data xfs noatime 0 2"
    )
    assert states.domu_fstab.nfs_root(name=str(tmp_path)).changes == {}


def test_missing_fstab_is_created(modules, tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "fstab"
    ret = apply_sls(modules, "nfs_root", name=str(tmp_path), fstype="nfs", opts="vers=3,tcp")
    assert ret.result is True
    assert ret.changes == {
        "root": {"old": None, "new": "/dev/nfs / nfs vers=3,tcp 0 0"},
        "created": str(path),
    }
    assert path.read_text() == (
        "/dev/nfs                /                       nfs     vers=3,tcp      0 0\n"
    )
    assert apply_sls(modules, "nfs_root", name=str(tmp_path), opts="vers=3,tcp").changes == {}


def test_root_without_etc_fails_and_creates_nothing(states, tmp_path):
    ret = states.domu_fstab.nfs_root(name=str(tmp_path))
    assert ret.result is False
    assert ret.changes == {}
    assert ret.comment == (
        f"name: {str(tmp_path)!r} {tmp_path}/etc does not exist: not a guest root "
        "filesystem (it needs an etc/ directory)"
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "xen"}, "name: 'xen' must be an absolute path"),
        ({"opts": "rw tcp"}, "opts: 'rw tcp' must not contain whitespace"),
        ({"fstype": ""}, "fstype: '' must be a non-empty string"),
        ({"dump": -1}, "dump: -1 must be an integer >= 0"),
        ({"pass_num": "x"}, "pass_num: 'x' must be an integer >= 0"),
        (
            {"disable": "/dev/sdb2"},
            "disable: '/dev/sdb2' must be a list of devices or mount points",
        ),
        (
            {"disable": ["/dev/sdb2", ""]},
            "disable: '' must be a device or mount point (a non-empty string)",
        ),
    ],
)
def test_bad_input_leaves_bytes_and_mtime(modules, guest, kwargs, expected):
    path = guest / "etc" / "fstab"
    before = os.stat(path)
    ret = apply_sls(modules, "nfs_root", **{"name": str(guest), **kwargs})
    assert ret.result is False
    assert ret.changes == {}
    assert ret.comment == expected
    assert path.read_bytes() == SEED.encode()
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_present_and_absent(states, modules, guest):
    path = guest / "etc" / "fstab"
    home = {"name": "/home", "root": str(guest), "device": "192.0.2.1:/home", "fstype": "nfs"}
    ret = apply_sls(modules, "present", **home, opts="vers=3")
    assert ret.result is True
    assert ret.changes == {"entry": {"old": None, "new": "192.0.2.1:/home /home nfs vers=3 0 0"}}
    assert path.read_text() == SEED + (
        "192.0.2.1:/home         /home                   nfs     vers=3          0 0\n"
    )
    assert {
        "device": "192.0.2.1:/home", "name": "/home", "fstype": "nfs", "opts": "vers=3",
        "dump": 0, "pass_num": 0,
    } in modules.domu_fstab.entries(str(guest))
    again = apply_sls(modules, "present", **home, opts="vers=3")
    assert again.result is True and again.changes == {}

    predicted = states.domu_fstab.absent(name="/home", root=str(guest), test=True)
    assert predicted.result is None
    assert predicted.changes == {"disabled": ["192.0.2.1:/home /home nfs vers=3 0 0"]}
    gone = states.domu_fstab.absent(name="/home", root=str(guest))
    assert gone.result is True and gone.changes == predicted.changes
    assert path.read_text() == SEED + "#xen-nfsroot# " + (
        "192.0.2.1:/home         /home                   nfs     vers=3          0 0\n"
    )
    assert states.domu_fstab.absent(name="/home", root=str(guest)).changes == {}


def test_non_utf8_lines_are_kept_and_shown_escaped_through_state_apply(minion_opts, tmp_path):
    """Through state.apply: the return must serialise (msgpack for the
    master, JSON for the outputter) although the fstab is not UTF-8."""
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    fstab = root / "etc" / "fstab"
    fstab.write_bytes(b"/dev/sda1 / ext3 defaults,comment=caf\xe9 1 1\n"
                      b"/dev/sdb2 swap swap pri=\xff 0 0\n# \xfe kept\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "guest.sls").write_text(json.dumps({f"fstab of {root}": {
        "domu_fstab.nfs_root": [{"name": str(root)}]}}))
    loaders = Loaders(dict(minion_opts, file_roots={"base": [str(tree)]}))
    ret = loaders.modules.state.apply("guest")
    (result,) = ret
    assert result.result is True, result.comment
    assert result.changes == {
        "root": {"old": "/dev/sda1 / ext3 defaults,comment=caf\\xe9 1 1",
                 "new": "/dev/nfs / nfs defaults 0 0"},
        "disabled": ["/dev/sdb2 swap swap pri=\\xff 0 0"],
    }
    assert "comment=caf\\xe9" in result.comment
    json.dumps(ret.raw)
    salt.payload.loads(salt.payload.dumps(ret.raw))
    assert fstab.read_bytes() == (b"#xen-nfsroot# /dev/sda1 / ext3 defaults,comment=caf\xe9 1 1\n"
                                  b"/dev/nfs / nfs defaults 0 0\n"
                                  b"#xen-nfsroot# /dev/sdb2 swap swap pri=\xff 0 0\n"
                                  b"# \xfe kept\n")


def findmnt(path):
    """[SOURCE, TARGET, FSTYPE, OPTIONS] of each entry libmount reads."""
    out = subprocess.run(["findmnt", "--fstab", "-F", str(path), "-J", "-o",
                          "SOURCE,TARGET,FSTYPE,OPTIONS"], capture_output=True, text=True,
                         check=False).stdout
    return [[fs["source"], fs["target"], fs["fstype"], fs["options"]]
            for fs in (json.loads(out)["filesystems"] if out else [])]


def test_a_device_libmount_reads_as_a_comment_is_refused(modules, guest):
    path = guest / "etc" / "fstab"
    ret = apply_sls(modules, "present", name="/data", root=str(guest), device="#data",
                    fstype="nfs")
    assert ret.result is False
    assert ret.comment == (
        "device: '#data' starts with '#': libmount would read the line as a comment")
    assert path.read_bytes() == SEED.encode()


@pytest.mark.parametrize("entry", [
    {"device": "192.0.2.1:/a b\\040c", "name": "/mnt/x\\134 y", "fstype": "nfs",
     "opts": ["vers=3", "x\\040y"]},
    {"device": "LABEL=a\tb#c", "name": "/mnt/#\u00e9", "fstype": "ext\\4", "opts": "ro"},
])
def test_libmount_reads_exactly_the_fields_present_wrote(modules, guest, entry):
    path = guest / "etc" / "fstab"
    ret = apply_sls(modules, "present", root=str(guest), **entry)
    assert ret.result is True, ret.comment
    opts = entry["opts"] if isinstance(entry["opts"], str) else ",".join(entry["opts"])
    assert findmnt(path)[-1] == [entry["device"], entry["name"], entry["fstype"], opts]
    again = apply_sls(modules, "present", root=str(guest), **entry)
    assert (again.result, again.changes) == (True, {})
