"""Fixtures shared by every test layer, and the ``--corpus`` option.

Every input the tests read is in the repository (tests/data, tests/support).
A collection of real-world files (exports, fstabs, Xen configs) can be checked
as well with ``--corpus DIR`` (``tests/run --corpus DIR``; CI passes it): the
tests parametrized over ``corpus_exports``, ``corpus_fstab`` or
``corpus_xen`` exist only then, so a run without it deselects them, and never
skips them.
"""

import logging
import os
import pathlib
import subprocess

import pytest

from tests.support.exportfs import install_exportfs_log
from tests.support.xen_double import XenDouble

# Daemons stopped at the end of a session still flush log records into
# streams pytest has closed; each would print a "--- Logging error ---"
# traceback that buries the results. Such records are dropped instead.
logging.raiseExceptions = False

CORPUS_KINDS = {"corpus_exports": ("exports", "*.exports"), "corpus_fstab": ("fstab", "*.fstab"),
                "corpus_xen": ("xen", "*.cfg")}


def pytest_addoption(parser):
    parser.addoption("--corpus", metavar="DIR", default=None,
                     help="also check the real-world files of DIR (exports/, fstab/, xen/)")


def pytest_configure(config):
    corpus = config.getoption("--corpus")
    if corpus and not all((pathlib.Path(corpus) / kind).is_dir()
                          for kind, _ in CORPUS_KINDS.values()):
        raise pytest.UsageError(f"--corpus {corpus}: no exports/, fstab/ and xen/ in it")


def pytest_report_header(config):
    corpus = config.getoption("--corpus")
    return f"corpus: {corpus}" if corpus else "corpus: not checked (no --corpus)"


def pytest_generate_tests(metafunc):
    corpus = metafunc.config.getoption("--corpus")
    for fixture, (kind, pattern) in CORPUS_KINDS.items():
        if fixture not in metafunc.fixturenames:
            continue
        files = sorted((pathlib.Path(corpus) / kind).glob(pattern)) if corpus else [None]
        metafunc.parametrize(fixture, files, ids=[f.name if f else "no-corpus" for f in files])


def pytest_collection_modifyitems(config, items):
    """Without --corpus, the corpus tests do not exist (deselected, not skipped)."""
    if config.getoption("--corpus"):
        return
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (dropped if any(params.get(name, 0) is None for name in CORPUS_KINDS) else kept).append(
            item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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


@pytest.fixture
def exportfs_log(tmp_path, monkeypatch):
    """Every exportfs process the test starts, logged (see support.exportfs.spawns)."""
    return install_exportfs_log(tmp_path, monkeypatch)


@pytest.fixture
def local_host_lookups(isolated):
    """Resolve host names from /etc/hosts only (in the private /etc).

    There is no DNS here: each unknown host name in an exports file would cost
    exportfs a resolver timeout (30 s for one file). The messages are the same.
    """
    nsswitch = pathlib.Path("/etc/nsswitch.conf")
    original = nsswitch.read_bytes()
    lines = [
        "hosts: files" if line.startswith("hosts:") else line
        for line in original.decode().splitlines()
    ]
    nsswitch.write_text("\n".join(lines) + "\n")
    yield
    nsswitch.write_bytes(original)


@pytest.fixture
def make_xen_double(tmp_path, monkeypatch):
    """A factory of xl/xm test doubles: ``make_xen_double(name, toolstacks=("xl",),
    apply=False, **settings)``; ``apply=True`` puts its PATH and
    XEN_DOUBLE_DIR in os.environ for the test."""

    def make(name="dom0", toolstacks=("xl",), apply=False, **settings):
        double = XenDouble(tmp_path / "xen-double" / name, toolstacks, **settings)
        if apply:
            for key, value in double.env.items():
                monkeypatch.setenv(key, value)
        return double

    return make


@pytest.fixture
def xen_double(make_xen_double):
    """One dom0's double (xl, hypervisor answering), in os.environ for the test."""
    return make_xen_double("dom0", apply=True)


@pytest.fixture
def boot(tmp_path):
    """An empty /boot of the test's own, for kernel and initramfs images."""
    folder = tmp_path / "boot"
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    """Keep every daemon's files under pytest's temporary directory."""
    return {"root_dir": str(tmp_path_factory.mktemp("salt-root"))}
