"""A guest root confined on the server: mountinfo read and indexed, what a
root needs (the real mounts are tests/functional/states/test_domu_root_confined.py)."""

import json
import pathlib
import re
import subprocess

import pytest
from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import fstab, mounts

# proc_pid_mountinfo(5): ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE
# SUPER-OPTIONS
MOUNTINFO = """\
21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
22 21 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
30 21 8:2 / /srv rw,relatime shared:3 - ext4 /dev/sda2 rw
31 30 8:2 /g\\040one /srv/xen/guest\\040one rw,nosuid,nodev,relatime - ext4 /dev/sda2 rw
40 21 8:3 / /xen rw,relatime shared:4 - xfs /dev/sdb1 rw
41 40 8:3 / /xen rw,nosuid,nodev,relatime shared:4 - xfs /dev/sdb1 rw
50 21 8:4 / /data rw,nosuid,nodev,relatime shared:5 - ext4 /dev/sdc1 rw
not a mountinfo line
"""


@pytest.fixture
def top():
    return mounts.index(mounts.parse(MOUNTINFO))


def test_mountinfo_lines_are_read_with_their_escapes():
    parsed = mounts.parse(MOUNTINFO)
    assert len(parsed) == 7
    assert parsed[3] == mounts.Mount(31, 30, "/srv/xen/guest one",
                                     frozenset({"rw", "nosuid", "nodev", "relatime"}))


def test_the_index_holds_the_mount_on_top_of_a_stack(top):
    assert top["/xen"].mount_id == 41
    # Listed the other way round, the one mounted on the other is still on top.
    lines = MOUNTINFO.splitlines()
    swapped = "\n".join([*lines[:4], lines[5], lines[4], *lines[6:]])
    assert mounts.index(mounts.parse(swapped))["/xen"].mount_id == 41


@pytest.mark.parametrize(("root", "expected"), [
    ("/srv/xen/guest one", mounts.Plan("none", "/srv/xen/guest one", ())),
    ("/xen", mounts.Plan("none", "/xen", ())),
    ("/data/guests/g1", mounts.Plan("none", "/data", ())),
    ("/srv/xen/guest2", mounts.Plan("mount", "/srv", ("nosuid", "nodev"))),
    ("/guest", mounts.Plan("mount", "/", ("nosuid", "nodev"))),
    ("/srv", mounts.Plan("refuse", "/srv", ("nosuid", "nodev"))),
])
def test_what_a_root_needs(top, root, expected):
    assert mounts.plan(top, root) == expected


def test_a_mount_with_one_flag_misses_the_other():
    top = mounts.index(mounts.parse("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                                    "2 1 8:2 / /xen rw,nosuid - ext4 /dev/sdb1 rw\n"))
    assert mounts.plan(top, "/xen") == mounts.Plan("refuse", "/xen", ("nodev",))
    assert mounts.plan(top, "/xen/g") == mounts.Plan("mount", "/xen", ("nodev",))
    err = mounts.refusal("/xen", ("nodev",))
    assert str(err).startswith("name: '/xen' is a mount point without nodev: ")
    assert "mount -o remount,nodev /xen" in str(err)
    assert "confine_roots" in str(err)


def test_a_bind_mount_updates_the_index_without_reading_it_again(top):
    after = mounts.confined(top, "/srv/xen/guest2")
    assert mounts.plan(after, "/srv/xen/guest2") == mounts.Plan("none", "/srv/xen/guest2", ())
    assert "/srv/xen/guest2" not in top


@pytest.mark.parametrize("root", ["xen", "/", "/xen/", "/xen/../etc", "/x\nen", 7])
def test_a_root_that_is_no_normalised_path_below_slash_is_refused(top, root):
    with pytest.raises(SaltInvocationError, match="^name: "):
        mounts.plan(top, root)
    with pytest.raises(SaltInvocationError, match="^name: "):
        mounts.check_root(root)


def test_the_mount_flags_are_the_kernels():
    """mount(2)'s flags as the kernel's own header defines them."""
    header = pathlib.Path("/usr/include/linux/mount.h").read_text()
    defined = {name: int(value, 0) for name, value in
               re.findall(r"^#define (MS_\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", header, re.M)}
    for name in ("MS_NOSUID", "MS_NODEV", "MS_REMOUNT", "MS_BIND"):
        assert getattr(mounts, name) == defined[name], name
    assert mounts.BIND_CALLS == (defined["MS_BIND"], defined["MS_REMOUNT"] | defined["MS_BIND"]
                                 | defined["MS_NOSUID"] | defined["MS_NODEV"])


def test_this_machines_mountinfo_reads_as_findmnt_reads_it():
    """The real reader: util-linux's findmnt, over the same table."""
    with open(mounts.MOUNTINFO, encoding="utf-8") as handle:
        top = mounts.index(mounts.parse(handle.read()))
    listed = json.loads(subprocess.run(
        ["findmnt", "--json", "--list", "-o", "TARGET,VFS-OPTIONS"],
        capture_output=True, text=True, check=True).stdout)["filesystems"]
    seen = {}
    for entry in listed:  # findmnt lists in mountinfo's order: the last one wins a stack
        seen[entry["target"]] = set(entry["vfs-options"].split(","))
    assert set(top) == set(seen)
    for point, mount in top.items():
        assert set(mount.options) == seen[point], point


def test_a_bind_line_is_stacked_beside_the_line_of_what_it_sits_on():
    text = "/dev/sdb1 /xen xfs defaults 0 2\n"
    new, changes = fstab.plan_entry(text, "/xen", "/xen", "none", ["bind", "nosuid", "nodev"],
                                    stacked=True)
    assert new == text + "/xen /xen none bind,nosuid,nodev 0 0\n"  # appended, the first kept
    assert changes == {"entry": {"old": None, "new": "/xen /xen none bind,nosuid,nodev 0 0"}}
    index = fstab.MountIndex(new)
    assert index.others_on("/xen", "/xen") == ["/dev/sdb1 /xen xfs defaults 0 2"]
    assert fstab.MountIndex(text.replace("/xen", "/srv")).others_on("/xen/", "/xen") == []
    wanted = {"device": "/xen", "name": "/xen", "fstype": "none", "opts": "bind,nosuid,nodev",
              "dump": 0, "pass_num": 0}
    assert index.holds(wanted)
    assert not fstab.MountIndex(text).holds(wanted)
    assert not fstab.MountIndex(new + new).holds(wanted)  # twice: plan_entry disables one
    assert not index.holds(dict(wanted, opts="bind"))
    # Without stacked, the entry for the mount point is rewritten instead.
    _, replaced = fstab.plan_entry(text, "/xen", "/xen", "none", "bind")
    assert replaced["entry"]["old"] == "/dev/sdb1 /xen xfs defaults 0 2"


@pytest.mark.parametrize("text", [
    "", "/dev/sda1 / ext4 defaults 0 1", "# comment\n/dev/sda1\t/\text4\tdefaults\t0 1\n",
    "/dev/sda1 / ext4 defaults 0 1\n/a /a none bind,nosuid,nodev 0 0\n",
])
def test_an_append_through_the_index_is_what_plan_entry_writes(text):
    index = fstab.MountIndex(text)
    for root in ("/srv/g1", "/srv/g 2", "/xen"):
        wanted = {"device": root, "name": root, "fstype": "none", "opts": "bind,nosuid,nodev",
                  "dump": 0, "pass_num": 0}
        expected = fstab.plan_entry(index.text, root, root, "none", "bind,nosuid,nodev",
                                    stacked=True)
        assert index.append(wanted) == expected
        assert index.holds(wanted)
        assert index.append(wanted) is None  # there now
    assert fstab.MountIndex(index.text).entries.keys() == index.entries.keys()


def test_a_line_to_restore_or_replace_is_left_to_plan_entry():
    wanted = {"device": "/xen", "name": "/xen", "fstype": "none", "opts": "bind,nosuid,nodev",
              "dump": 0, "pass_num": 0}
    assert fstab.MountIndex("#xen-nfsroot# /xen /xen none bind,nosuid,nodev 0 0\n") \
        .append(wanted) is None
    assert fstab.MountIndex("/xen /xen none bind 0 0\n").append(wanted) is None
