"""One salt-master and three minions on this machine: nfs1 (the NFS server),
dom0-a and dom0-b (dom0s with the xl test double), the repository's salt/
and pillar/ as their trees and the repository's reactor configuration.

Everything runs inside the private mount namespace of tests/isolate, so the
minions share the namespace's /etc/exports.d, /xen, /srv and /boot, and the
real exportfs works on them.
"""

import contextlib
import pathlib
import shutil

import pytest
import salt.utils.yaml

from tests.support import REPO
from tests.support.formula import CONFIG_DIR, EXPORTS_FILE, GUEST_ROOTS, KERNELS
from tests.support.seed import SEED_FSTAB
from tests.support.xen_double import XenDouble


@pytest.fixture(scope="package")
def pillar_override(tmp_path_factory):
    """The only change to the repository's pillar: no NFS service management,
    as no init system runs on the test machine (the packages are installed)."""
    path = tmp_path_factory.mktemp("pillar-override") / "override.yaml"
    path.write_text(
        salt.utils.yaml.safe_dump({"xen_nfsroot": {"server": {"manage_service": False}}})
    )
    return path


@pytest.fixture(scope="package")
def salt_master(salt_factories, pillar_override, isolated):
    reactor = salt.utils.yaml.safe_load((REPO / "salt/reactor/master.conf").read_text())
    overrides = {
        "file_roots": {"base": [str(REPO / "salt")]},
        "pillar_roots": {"base": [str(REPO / "pillar")]},
        "ext_pillar": [{"cmd_yaml": f"cat {pillar_override}"}],
        "reactor": reactor["reactor"],
        "interface": "127.0.0.1",
    }
    factory = salt_factories.salt_master_daemon("master", overrides=overrides)
    with factory.started():
        yield factory


def prepare_guest_roots():
    for root in GUEST_ROOTS.values():
        if root.exists():
            for child in root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "fstab").write_text(SEED_FSTAB)
    for kernel in KERNELS:
        kernel.write_bytes(b"\x7fELF not really a kernel")
    EXPORTS_FILE.unlink(missing_ok=True)


@pytest.fixture(scope="package")
def xen_doubles(tmp_path_factory):
    return {
        minion_id: XenDouble(tmp_path_factory.mktemp(f"xen-{minion_id}"))
        for minion_id in ("dom0-a", "dom0-b")
    }


@pytest.fixture(scope="package")
def minions(salt_master, xen_doubles):
    """nfs1, dom0-a and dom0-b, started; the dom0s each with their own xl double."""
    prepare_guest_roots()
    factories = {
        minion_id: salt_master.salt_minion_daemon(minion_id)
        for minion_id in ("nfs1", "dom0-a", "dom0-b")
    }
    for minion_id, double in xen_doubles.items():
        # The factories share one environ mapping: give each dom0 its own.
        factories[minion_id].environ = {**factories[minion_id].environ, **double.env}
    with contextlib.ExitStack() as stack:
        for factory in factories.values():
            stack.enter_context(factory.started())
        yield factories


@pytest.fixture(scope="package")
def salt_run_cli(salt_master):
    return salt_master.salt_run_cli(timeout=180)


@pytest.fixture
def set_pillar_override(pillar_override, minions):
    """Replace the test override of the pillar for one test."""

    def set_override(xen_nfsroot):
        data = {"server": {"manage_service": False}}
        data.update(xen_nfsroot)
        pillar_override.write_text(salt.utils.yaml.safe_dump({"xen_nfsroot": data}))

    yield set_override
    set_override({})


@pytest.fixture
def fresh(minions, xen_doubles):
    """Every test starts from nothing applied: seed fstabs, no exports, no
    guest configs, no guests running, empty spawn logs."""
    prepare_guest_roots()
    pathlib.Path("/var/lib/nfs/etab").write_text("")
    for cfg in CONFIG_DIR.glob("*.cfg") if CONFIG_DIR.exists() else []:
        cfg.unlink()
    for double in xen_doubles.values():
        (double.dir / "domains.json").unlink(missing_ok=True)
        double.clear_spawns()
    return minions


@pytest.fixture(scope="package")
def run_on(salt_master):
    """Run a function on a minion daemon through the master: `salt ID FUN ...`."""
    cli = salt_master.salt_cli(timeout=180)

    def run(minion_id, *args, **kwargs):
        return cli.run(*args, minion_tgt=minion_id, **kwargs)

    return run
