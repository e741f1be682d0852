"""Every CLI example of every execution module runs as written.

``sys.doc`` is the formula's reference manual: each public function's
docstring has a ``CLI Example:`` block. This test reads each example, parses
its arguments as Salt's CLI does (``salt.utils.args.parse_input``: YAML
values, ``key=value`` keywords), and calls the function through the real Salt
loader, on a dom0 world made of the test doubles and fixtures: the xl double
with the seed's guest running, its config in ``/etc/xen``, its kernel in
``/boot``, its root in ``/xen`` with the seed's fstab, its export in
``/etc/exports`` and applied, the example pillar. An example that raises,
names another function, or cannot be parsed fails here. The examples of
the functions that ask other minions (``salt-run salt.cmd ...``) run on the
integration tests' master (tests/integration/test_two_dom0s.py).
"""

import os
import pathlib
import subprocess

import pytest
from saltfactories.utils.functional import Loaders

from tests.support import DATA, REPO
from tests.support.cli_examples import (
    EXAMPLES,
    FUNCTIONS,
    MASTER_EXAMPLES,
    MINION_EXAMPLES,
    examples_of,
    parse,
)
from tests.support.kernel_images import (
    DEBIAN_VERSION_STRING,
    NFS_ROOT_CONFIG,
    bzimage,
    initramfs,
    initramfs_tools_files,
    vmlinux,
)
from tests.support.seed import SEED_EXPORT_LINE, SEED_FSTAB
from tests.support.xen_double import DOUBLES, path_without_doubles

BOOTS = DATA / "consoles" / "double-boots.log"
CONSOLE_DIR = pathlib.Path("/var/log/xen/console")
GUEST_CONFIG = pathlib.Path("/etc/xen/XenGuest.cfg")
KERNEL = pathlib.Path("/boot/vmlinuz-2.6.18-53.1.14.el5.myxen")
XL_CONFIG = f"""name = "XenGuest"
kernel = "{KERNEL}"
memory = 256
vif = [ "" ]
root = "/dev/nfs"
extra = "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3"
"""
DEBIAN_RELEASE = "6.1.0-50-amd64"
#: A systemd stand-in for the examples that restart a daemon: it knows the
#: xenconsoled unit and restarts it.
SYSTEMCTL = """#!/bin/sh
case "$1" in
list-unit-files) echo "xenconsoled.service enabled enabled" ;;
restart) exit 0 ;;
*) echo "systemctl double: $*" >&2; exit 1 ;;
esac
"""
#: What an example needs besides the world, by function: the seed's guest is
#: running in the world, so creating it needs it stopped first.
PREPARE = {
    "xm.create": lambda world: subprocess.run(["xl", "destroy", "XenGuest"], check=True),
}
def test_every_public_function_has_a_cli_example():
    missing = [name for name, function in FUNCTIONS if not examples_of(function)]
    assert missing == []


def test_examples_were_found():
    assert len(EXAMPLES) >= len(FUNCTIONS)
    # The master-side ones run on the integration tests' master.
    assert {"xen_nfsroot.ask_dom0s", "xen_nfsroot.migration_plan"} <= {
        name for name, _ in MASTER_EXAMPLES}


@pytest.fixture(scope="module")
def cli_loaders(minion_opts):
    """A dom0's loader (minion id dom0-a, the example pillar), built while the
    xl double is on PATH so the xm module loads."""
    opts = dict(minion_opts, id="dom0-a",
                pillar_roots={"base": [str(REPO / "pillar")]},
                file_roots={"base": [str(REPO / "salt")]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", ":".join([str(DOUBLES / "bin"), *path_without_doubles()]))
        yield Loaders(opts, loaded_base_name="xen_nfsroot_cli_examples")


@pytest.fixture
def world(isolated, make_xen_double, cli_loaders, tmp_path, monkeypatch):
    """The seed's guest on a dom0 whose files and toolstack are the fixtures'."""
    other = make_xen_double("dom0-b")
    double = make_xen_double("dom0", apply=True, console_dir=str(CONSOLE_DIR),
                             boot={"*": {"console": str(BOOTS)}},
                             migrate_targets={"dom0-b": str(other.dir)})
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "systemctl").write_text(SYSTEMCTL)
    (tools / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    boot = pathlib.Path("/boot")
    (boot / f"vmlinuz-{DEBIAN_RELEASE}").write_bytes(bzimage(DEBIAN_VERSION_STRING))
    (boot / f"config-{DEBIAN_RELEASE}").write_bytes(
        (DATA / "kernel" / f"debian-{DEBIAN_RELEASE}.config").read_bytes())
    (boot / f"initrd.img-{DEBIAN_RELEASE}").write_bytes(
        initramfs(initramfs_tools_files(DEBIAN_RELEASE)))
    CONSOLE_DIR.mkdir(parents=True, exist_ok=True)
    KERNEL.write_bytes(vmlinux("2.6.18-53.1.14.el5.myxen", config_text=NFS_ROOT_CONFIG))
    pathlib.Path("/boot/vmlinuz-guest").write_bytes(KERNEL.read_bytes())
    GUEST_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    GUEST_CONFIG.write_text(XL_CONFIG)
    (pathlib.Path("/xen") / "etc").mkdir(parents=True, exist_ok=True)
    (pathlib.Path("/xen") / "etc" / "fstab").write_text(SEED_FSTAB)
    pathlib.Path("/etc/exports").write_bytes(SEED_EXPORT_LINE)
    subprocess.run(["exportfs", "-ra"], check=True, capture_output=True)
    subprocess.run(["xl", "create", str(GUEST_CONFIG)], check=True, capture_output=True,
                   env={**double.env, "PATH": double.env["PATH"]})
    cli_loaders.reset_state()
    yield cli_loaders
    subprocess.run(["rm", "-rf", "/xen/etc", str(GUEST_CONFIG), "/etc/exports.d",
                    "/etc/xen-nfsroot"], check=False)
    pathlib.Path("/etc/exports").write_text("")
    subprocess.run(["exportfs", "-ra"], check=False, capture_output=True)


@pytest.mark.parametrize(("name", "example"), MINION_EXAMPLES,
                         ids=[e for _, e in MINION_EXAMPLES])
def test_cli_example_runs_as_written(world, name, example):
    called, args, kwargs = parse(example)
    assert called == name, f"the example of {name} calls {called}"
    if name in PREPARE:
        PREPARE[name](world)
    world.modules[name](*args, **kwargs)
