"""The salt.loader entry point makes Salt load the formula with no sync."""

import pathlib
import subprocess
import sys

MODULES = ("domu_fstab", "exportfs", "guest_console", "guest_kernel", "domu_root",
           "xen_config", "xen_migrate", "xen_nfsroot")
STATES = ("domu_fstab.nfs_root", "domu_root.populated", "nfs_export.present")


def test_entry_point_registers_modules_and_states(modules, states):
    for name in MODULES:
        assert any(function.startswith(f"{name}.") for function in modules), name
    for name in STATES:
        assert name in states


def test_salt_call_local_sees_the_modules(tmp_path):
    salt_call = pathlib.Path(sys.executable).with_name("salt-call")
    proc = subprocess.run(
        [str(salt_call), "--local", "--config-dir", str(tmp_path), "--out", "txt",
         "sys.list_functions", "exportfs"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exportfs.add" in proc.stdout


def test_the_old_name_of_domu_root_still_works(modules):
    """nfsroot_files held the file routine once; its one operation kept the
    old name as an alias (``__virtual_aliases__``)."""
    assert "domu_root.populate_root" in modules
    assert "nfsroot_files.populate_root" in modules
