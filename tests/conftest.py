"""Fixtures shared by every test layer."""

import logging
import os
import pathlib
import subprocess

import pytest

# Daemons stopped at the end of a session still flush log records into
# streams pytest has closed; each would print a "--- Logging error ---"
# traceback that buries the results. Such records are dropped instead.
logging.raiseExceptions = False

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
SPECIMENS_DIR = REPO / "tests" / "specimens"

# The guest fstab of the original procedure, and what domu_fstab.nfs_root makes of it.
SEED_FSTAB = (
    "/dev/sda1               /                       ext3    defaults        1 1\n"
    "none                    /dev/pts                devpts  gid=5,mode=620  0 0\n"
    "none                    /dev/shm                tmpfs   defaults        0 0\n"
    "none                    /proc                   proc    defaults        0 0\n"
    "none                    /sys                    sysfs   defaults        0 0\n"
    "/dev/sdb2               swap                    swap    defaults        0 0\n"
)
SEED_FSTAB_RESULT = (
    "#xen-nfsroot# /dev/sda1               /                       ext3    defaults        1 1\n"
    "/dev/nfs                /                       nfs     defaults        0 0\n"
    "none                    /dev/pts                devpts  gid=5,mode=620  0 0\n"
    "none                    /dev/shm                tmpfs   defaults        0 0\n"
    "none                    /proc                   proc    defaults        0 0\n"
    "none                    /sys                    sysfs   defaults        0 0\n"
    "#xen-nfsroot# /dev/sdb2               swap                    swap    defaults        0 0\n"
)


def in_isolation():
    """True when running under tests/isolate (a private mount namespace)."""
    host_namespace = os.environ.get("XEN_NFSROOT_HOST_MNTNS")
    return (
        bool(os.environ.get("XEN_NFSROOT_ISOLATED"))
        and bool(host_namespace)
        and os.readlink("/proc/self/ns/mnt") != host_namespace
    )


@pytest.fixture(scope="session")
def isolated():
    """Fail (never skip) a test that would touch this machine's own files."""
    if not in_isolation():
        pytest.fail("this test changes /etc and /var/lib/nfs: run it through tests/run")


@pytest.fixture
def system_exports(isolated):
    """A clean /etc/exports, /etc/exports.d and etab in the private namespace.

    Yields the path of /etc/exports; the files are emptied again afterwards.
    """
    exports = pathlib.Path("/etc/exports")

    def reset():
        exports.write_text("")
        subprocess.run(["rm", "-rf", "/etc/exports.d"], check=True)
        pathlib.Path("/var/lib/nfs/etab").write_text("")

    reset()
    yield exports
    reset()


def exportfs_v():
    """The real ``exportfs -v`` output."""
    proc = subprocess.run(["exportfs", "-v"], capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    """Keep every daemon's files under pytest's temporary directory."""
    return {"root_dir": str(tmp_path_factory.mktemp("salt-root"))}
