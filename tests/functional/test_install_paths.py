"""Both install paths load the formula and its library.

``pip install`` (the test environment's own editable install) registers the
loader modules through the ``salt.loader`` entry point and puts
``xen_nfsroot_lib`` in site-packages; ``saltutil.sync_all`` from the state
tree copies ``_modules``, ``_states`` and ``_utils`` to the minion, and Salt
puts the synced utils directory on ``sys.path`` while it loads execution and
state modules, so ``import xen_nfsroot_lib`` works there too. The second path
is checked here in a Python that cannot see the installed package at all
(``-S``: no site hooks, so neither the editable finder nor the entry point's
package), through a real ``salt-call --local`` that syncs from the repository
and then calls the modules.
"""

import json
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tests.support import REPO

#: One execution module and one state module per library concept.
MODULE_FUNCTIONS = ("exportfs.list_configured", "xm.list_domains", "domu_fstab.entries",
                    "guest_kernel.check", "guest_console.watch", "xen_migrate.public_keys",
                    "xen_nfsroot.guests")
STATE_FUNCTIONS = ("nfs_export.present", "domu_fstab.nfs_root", "domu_root.populated",
                   "xen_guest.running", "xen_console.logging", "xen_migrate.trusted")


def _salt_call(config_dir, *args):
    """salt-call --local in a Python without the installed package."""
    site_packages = sysconfig.get_paths()["purelib"]
    code = ("import sys; from salt.scripts import salt_call; "
            f"sys.argv = ['salt-call'] + {list(args)!r}; salt_call()")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": site_packages, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
             "HOME": str(config_dir)},
        capture_output=True, text=True, check=False, timeout=300,
        cwd=str(config_dir),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["local"]


@pytest.fixture(scope="module")
def synced_minion(tmp_path_factory):
    root = tmp_path_factory.mktemp("synced-minion")
    (root / "minion").write_text(json.dumps({
        "id": "synced-minion",
        "root_dir": str(root),
        "file_client": "local",
        "file_roots": {"base": [str(REPO / "salt")]},
        "pillar_roots": {"base": [str(root / "pillar")]},
        "log_file": str(root / "minion.log"),
        "enable_fqdns_grains": False,
    }))
    (root / "pillar").mkdir()
    synced = _salt_call(root, "--local", "--config-dir", str(root), "--out", "json",
                        "saltutil.sync_all")
    return root, synced


def test_the_interpreter_without_site_cannot_import_the_installed_package(synced_minion):
    root, _ = synced_minion
    site_packages = sysconfig.get_paths()["purelib"]
    proc = subprocess.run([sys.executable, "-S", "-c", "import xen_nfsroot_lib"],
                          env={"PYTHONPATH": site_packages}, capture_output=True, text=True,
                          check=False, cwd=str(root))
    assert proc.returncode != 0
    assert "No module named 'xen_nfsroot_lib'" in proc.stderr


def test_sync_all_brings_the_library_with_the_modules(synced_minion):
    root, synced = synced_minion
    assert "utils.xen_nfsroot_lib" in " ".join(synced["utils"]) or any(
        name.startswith("utils.xen_nfsroot_lib") for name in synced["utils"]), synced["utils"]
    extmods = root / "var" / "cache" / "salt" / "minion" / "extmods"
    assert (extmods / "utils" / "xen_nfsroot_lib" / "values.py").is_file()
    assert (extmods / "modules" / "exportfs.py").is_file()


def test_synced_modules_import_the_library_by_name(synced_minion):
    root, _ = synced_minion
    functions = _salt_call(root, "--local", "--config-dir", str(root), "--out", "json",
                           "sys.list_functions")
    missing = [name for name in MODULE_FUNCTIONS if name not in functions]
    # xm and guest_console need xl or xm on the dom0; the others load anywhere.
    assert [name for name in missing if not name.startswith(("xm.", "guest_console."))] == []
    states = _salt_call(root, "--local", "--config-dir", str(root), "--out", "json",
                        "sys.list_state_functions")
    assert [name for name in STATE_FUNCTIONS
            if name not in states and not name.startswith(("xen_guest.", "xen_console."))] == []


def test_a_synced_module_runs_library_code(synced_minion, tmp_path):
    root, _ = synced_minion
    exports = tmp_path / "exports"
    exports.write_text("/srv/a 192.0.2.10(rw,no_root_squash) # kept\n")
    listed = _salt_call(root, "--local", "--config-dir", str(root), "--out", "json",
                        "exportfs.list_configured", f"exports={exports}")
    assert list(listed) == ["/srv/a"], listed


def _imported_with(root, code):
    proc = subprocess.run([sys.executable, "-c", code + "; import xen_nfsroot_lib; "
                           "print(xen_nfsroot_lib.__file__)"],
                          capture_output=True, text=True, check=True, cwd=str(root))
    return pathlib.Path(proc.stdout.strip()).parent


def test_which_copy_wins_when_a_minion_has_both(synced_minion, tmp_path):
    """Salt appends the synced utils directory to sys.path (the loader's
    extra_module_dirs). A package installed into site-packages comes before
    it on sys.path and wins; an editable install (this test environment's)
    is found by its import hook only after every sys.path entry, so there
    the synced copy wins. README.md says both."""
    root, _ = synced_minion
    synced = root / "var" / "cache" / "salt" / "minion" / "extmods" / "utils"
    append = f"import sys; sys.path.append({str(synced)!r})"
    assert _imported_with(root, append) == synced / "xen_nfsroot_lib"
    # A regular install: the package in a site directory ahead of the synced one.
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "_utils" / "xen_nfsroot_lib", site / "xen_nfsroot_lib")
    installed = f"import sys; sys.path.insert(0, {str(site)!r}); {append}"
    assert _imported_with(root, installed) == site / "xen_nfsroot_lib"
