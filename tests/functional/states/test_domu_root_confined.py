"""domu_root.confined through the real Salt loader, with the real readers: the
kernel (a set-id program and a device node tried by an unprivileged user),
util-linux's findmnt (the live mount and the fstab line) and mount itself.
Runs in the test namespace (tests/isolate): the mounts are private to it."""

import os
import pathlib
import shutil
import stat
import subprocess
import tarfile
import uuid

import pytest

from tests.support.formula import mounts_at

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def mounted_at(path):
    """How many mounts are stacked at path."""
    return len(mounts_at(path))


@pytest.fixture
def base():
    """A directory every user can traverse (as a server's /srv is); every
    mount made below it is undone afterwards."""
    assert os.environ.get("XEN_NFSROOT_ISOLATED"), "needs the test namespace (tests/run)"
    top = pathlib.Path("/srv") / f"xen-nfsroot-confined-{uuid.uuid4().hex[:8]}"
    top.mkdir(mode=0o755)
    os.chmod(top, 0o755)
    yield top
    for path in sorted(top.rglob("*"), reverse=True):
        while path.is_dir() and mounted_at(path):
            subprocess.run(["umount", str(path)], check=True)
    shutil.rmtree(top)


def guest_root(path):
    """A root holding a set-id root program and a device node anyone may open."""
    (path / "usr" / "bin").mkdir(parents=True)
    (path / "dev").mkdir()
    shutil.copy2("/usr/bin/id", path / "usr" / "bin" / "id")
    os.chown(path / "usr" / "bin" / "id", 0, 0)
    os.chmod(path / "usr" / "bin" / "id", 0o4755)
    os.mknod(path / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(path / "dev" / "null", 0o666)
    for directory in (path, path / "usr", path / "usr" / "bin", path / "dev"):
        os.chmod(directory, 0o755)
    return path


def as_nobody(*argv):
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, check=False)


def findmnt(*argv):
    return subprocess.run(["findmnt", "--noheadings", "--raw", *argv], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("name", ["guest", "guest with spaces"])
def test_a_local_user_loses_the_guests_set_id_programs_and_devices(states, base, name):
    root = guest_root(base / name)
    config = base / "fstab"
    config.write_text("/dev/sda1 / ext4 defaults 0 1\n")
    # Before: anyone on the server runs the guest's set-id program as root.
    assert as_nobody(str(root / "usr/bin/id"), "-u").stdout == "0\n"
    assert as_nobody("head", "-c0", str(root / "dev/null")).returncode == 0

    ret = states.domu_root.confined(name=str(root), config=str(config))
    assert ret.result is True, ret.comment
    escaped = str(root).replace(" ", "\\040")
    line = f"{escaped} {escaped} none bind,nosuid,nodev 0 0"
    assert ret.changes == {"mounted": "nosuid,nodev",
                           "fstab": {"entry": {"old": None, "new": line}}}
    assert ret.comment == f"Mounted {root} onto itself nosuid,nodev and added its line in {config}"

    # The kernel: the set-id bit is ignored, the device cannot be opened.
    assert as_nobody(str(root / "usr/bin/id"), "-u").stdout == "65534\n"
    denied = as_nobody("head", "-c0", str(root / "dev/null"))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    # What the NFS server serves the guest is unchanged: the bits are the file's.
    assert os.stat(root / "usr/bin/id").st_mode & stat.S_ISUID
    # findmnt reads the live mount and the fstab line as the formula meant them.
    assert "nosuid" in findmnt("-o", "VFS-OPTIONS", "--mountpoint", str(root)).split(",")
    assert "nodev" in findmnt("-o", "VFS-OPTIONS", "--mountpoint", str(root)).split(",")
    listed = findmnt("--fstab", "-F", str(config), "-o", "SOURCE,TARGET,FSTYPE,OPTIONS",
                     "--target", str(root))
    shown = str(root).replace(" ", "\\x20")
    assert listed == f"{shown} {shown} none bind,nosuid,nodev\n"

    again = states.domu_root.confined(name=str(root), config=str(config))
    assert (again.result, again.changes) == (True, {})
    assert again.comment == f"{root} is mounted nosuid,nodev"
    assert mounted_at(root) == 1


def test_test_mode_predicts_and_mounts_nothing(states, base):
    root = guest_root(base / "guest")
    config = base / "fstab"
    ret = states.domu_root.confined(name=str(root), config=str(config), test=True)
    assert ret.result is None
    assert ret.changes == {"mounted": "nosuid,nodev", "fstab": {"entry": {
        "old": None, "new": f"{root} {root} none bind,nosuid,nodev 0 0"}}}
    assert ret.comment == (f"Would have mounted {root} onto itself nosuid,nodev and added "
                           f"its line in {config}")
    assert mounted_at(root) == 0
    assert not config.exists()


def test_a_dedicated_file_system_needs_the_flags_on_its_own_mount(states, base):
    root = base / "dedicated"
    root.mkdir()
    config = base / "fstab"
    config.write_text(f"tmpfs {root} tmpfs defaults 0 0\n")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root)], check=True)
    ret = states.domu_root.confined(name=str(root), config=str(config))
    assert ret.result is False
    assert ret.comment.startswith(f"name: '{root}' is a mount point without nosuid,nodev")
    assert mounted_at(root) == 1
    assert config.read_text() == f"tmpfs {root} tmpfs defaults 0 0\n"

    subprocess.run(["mount", "-o", "remount,nosuid,nodev", str(root)], check=True)
    ret = states.domu_root.confined(name=str(root), config=str(config))
    assert (ret.result, ret.changes) == (True, {})
    assert ret.comment == f"{root} is mounted nosuid,nodev"
    assert config.read_text() == f"tmpfs {root} tmpfs defaults 0 0\n"  # no second line


def test_a_root_populated_confined_is_mounted_before_anyone_can_reach_it(states, base, tmp_path):
    source = tmp_path / "root.tar"
    staging = guest_root(tmp_path / "tree")
    with tarfile.open(source, "w") as tar:
        tar.add(staging, arcname=".", filter=lambda info: None if info.isdev() else info)
    root = base / "populated"
    ret = states.domu_root.populated(name=str(root), source=str(source), confine=True)
    assert ret.result is True, ret.comment
    assert ret.changes["mounted"] == "nosuid,nodev"
    assert ret.comment.endswith(" and mounted it nosuid,nodev")
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
    assert as_nobody(str(root / "usr/bin/id"), "-u").stdout == "65534\n"
    assert os.stat(root / "usr/bin/id").st_mode & stat.S_ISUID
    assert mounted_at(root) == 1
