"""One salt-master and three minions on this machine: nfs1 (the NFS server),
dom0-a and dom0-b (dom0s with the xl test double, whose guests print a
Debian NFS-root boot on consoles xenconsoled would log), the repository's
salt/ and pillar/ as their trees and the repository's reactor configuration.

Everything runs inside the private mount namespace of tests/isolate, so the
minions share the namespace's /etc/exports.d, /xen, /srv and /boot, and the
real exportfs works on them.
"""

import contextlib
import pathlib
import shutil
import subprocess

import pytest
import salt.utils.yaml

from tests.support import DATA, REPO
from tests.support.formula import (
    CONFIG_DIR,
    EXPORTS_FILE,
    GUEST_ROOTS,
    KERNELS,
    SERVER_FSTAB,
    mounts_at,
)
from tests.support.kernel_images import NFS_ROOT_CONFIG, vmlinux
from tests.support.seed import SEED_FSTAB
from tests.support.xen_double import XenDouble

DOM0S = ("dom0-a", "dom0-b")
BOOTS = DATA / "consoles" / "double-boots.log"
#: The NFS server's record of mounts (the namespace's own), which the guests
#: of the doubles write to as rpc.mountd would once they run.
RMTAB = pathlib.Path("/var/lib/nfs/rmtab")
#: The example pillar's guests and the addresses they mount their roots from.
GUEST_ADDRESSES = {"XenGuest": "192.0.2.10", "StaticGuest": "192.0.2.11"}
MINIONS = ("nfs1", *DOM0S)


@pytest.fixture(scope="package")
def xen_doubles(tmp_path_factory):
    """Each dom0's double; its guests' consoles in its own console directory."""
    doubles = {}
    for minion_id in DOM0S:
        double = XenDouble(tmp_path_factory.mktemp(f"xen-{minion_id}"))
        (double.dir / "console").mkdir()
        double.configure(console_dir=str(double.dir / "console"), nfs_rmtab=str(RMTAB),
                         boot={name: {"console": str(BOOTS), "address": address}
                               for name, address in GUEST_ADDRESSES.items()})
        doubles[minion_id] = double
    # Each dom0's xl migrate reaches the other's double by its minion id.
    for minion_id, double in doubles.items():
        double.configure(migrate_targets={other: str(doubles[other].dir)
                                          for other in DOM0S if other != minion_id})
    return doubles


def override(xen_nfsroot, minion_id, xen_doubles):
    """A minion's change to the repository's pillar: no NFS service management,
    as no init system runs on the test machine (the packages are installed);
    on a dom0, its double's console directory, its own Xen settings file and
    its own migration trust files (both dom0s share this machine's /etc and
    /root), published by the mine from there; then the test's own keys."""
    data = {"server": {"manage_service": False}}
    extra = {}
    if minion_id in xen_doubles:
        double = xen_doubles[minion_id]
        trust = double.dir / "trust"
        data["dom0"] = {"console_dir": str(double.dir / "console"),
                        "xen_settings_file": str(double.dir / "default-xen"),
                        "migrate_key": str(trust / "migrate_key"),
                        "authorized_keys": str(trust / "authorized_keys"),
                        "known_hosts": str(trust / "known_hosts"),
                        "migrate_wrapper": str(trust / "migrate-receive")}
        extra["mine_functions"] = {"xm.list_domains": [{"fresh": True}],
                                   "xen_migrate.public_keys": [{"key": str(trust / "migrate_key")}]}
    data.update(xen_nfsroot)
    return {"xen_nfsroot": data, **extra}


@pytest.fixture(scope="package")
def pillar_override(tmp_path_factory, xen_doubles):
    """The directory of each minion's override (ID.yaml) and the function that
    writes them all: ``write(xen_nfsroot)``."""
    directory = tmp_path_factory.mktemp("pillar-override")

    def write(xen_nfsroot):
        # The orchestrate runner compiles the pillar under the master's own ID.
        for minion_id in (*MINIONS, "master"):
            (directory / f"{minion_id}.yaml").write_text(
                salt.utils.yaml.safe_dump(override(xen_nfsroot, minion_id, xen_doubles)))

    write({})
    return directory, write


@pytest.fixture(scope="package")
def salt_master(salt_factories, pillar_override, isolated):
    reactor = salt.utils.yaml.safe_load((REPO / "salt/reactor/master.conf").read_text())
    directory, _ = pillar_override
    overrides = {
        "file_roots": {"base": [str(REPO / "salt")]},
        "pillar_roots": {"base": [str(REPO / "pillar")]},
        # cmd_yaml replaces %s by the minion's ID.
        "ext_pillar": [{"cmd_yaml": f"cat {directory}/%s.yaml"}],
        "reactor": reactor["reactor"],
        "interface": "127.0.0.1",
    }
    factory = salt_factories.salt_master_daemon("master", overrides=overrides)
    with factory.started():
        yield factory


#: The server's fstab and the mounts at each guest root before the formula ran.
_BEFORE = {}


def unconfine_guest_roots():
    """Undo the bind mounts domu_root.confined made (the namespace's own
    mounts stay) and the server's fstab lines it added."""
    _BEFORE.setdefault("fstab", SERVER_FSTAB.read_bytes() if SERVER_FSTAB.exists() else None)
    for root in GUEST_ROOTS.values():
        _BEFORE.setdefault(root, len(mounts_at(root)))
        while len(mounts_at(root)) > _BEFORE[root]:
            subprocess.run(["umount", str(root)], check=True)
    if _BEFORE["fstab"] is None:
        SERVER_FSTAB.unlink(missing_ok=True)
    else:
        SERVER_FSTAB.write_bytes(_BEFORE["fstab"])


def prepare_guest_roots():
    unconfine_guest_roots()
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
        kernel.write_bytes(vmlinux("2.6.18-53.1.14.el5.myxen", config_text=NFS_ROOT_CONFIG))
    EXPORTS_FILE.unlink(missing_ok=True)


@pytest.fixture(scope="package")
def minions(salt_master, xen_doubles):
    """nfs1, dom0-a and dom0-b, started; the dom0s each with their own xl double."""
    prepare_guest_roots()
    factories = {
        minion_id: salt_master.salt_minion_daemon(minion_id)
        for minion_id in MINIONS
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
    _, write = pillar_override
    yield write
    write({})


@pytest.fixture
def fresh(minions, xen_doubles, salt_master):
    """Every test starts from nothing applied: seed fstabs, no exports, no
    mounts, no guest configs, no guests running (and the mine saying so), no
    console logs, no record of failed boots, empty spawn logs."""
    prepare_guest_roots()
    pathlib.Path("/var/lib/nfs/etab").write_text("")
    RMTAB.write_text("")
    for cfg in CONFIG_DIR.glob("*.cfg") if CONFIG_DIR.exists() else []:
        cfg.unlink()
    for double in xen_doubles.values():
        (double.dir / "domains.json").unlink(missing_ok=True)
        (double.dir / "default-xen").unlink(missing_ok=True)
        shutil.rmtree(double.dir / "trust", ignore_errors=True)
        for log in (double.dir / "console").iterdir():
            log.unlink()
        double.clear_spawns()
    for factory in minions.values():
        shutil.rmtree(pathlib.Path(factory.config["cachedir"], "xen_nfsroot", "boot-failures"),
                      ignore_errors=True)
    cli = salt_master.salt_cli(timeout=120)
    for minion_id in DOM0S:
        trust = xen_doubles[minion_id].dir / "trust"
        for mined in (("xm.list_domains", "fresh=True"),
                      ("xen_migrate.public_keys", f"key={trust / 'migrate_key'}")):
            ret = cli.run("mine.send", *mined, minion_tgt=minion_id)
            assert ret.returncode == 0 and ret.data is True, ret
    for double in xen_doubles.values():
        double.clear_spawns()
    return minions


@pytest.fixture(scope="package")
def run_on(salt_master):
    """Run a function on a minion daemon through the master: `salt ID FUN ...`."""
    cli = salt_master.salt_cli(timeout=180)

    def run(minion_id, *args, **kwargs):
        return cli.run(*args, minion_tgt=minion_id, **kwargs)

    return run
