"""The salt.loader entry point makes Salt load the formula with no sync."""

import pathlib
import subprocess
import sys


def test_entry_point_registers_modules_and_states(modules, states):
    assert "exportfs.list_active" in modules
    assert "nfs_export.present" in states


def test_salt_call_local_sees_the_modules(tmp_path):
    salt_call = pathlib.Path(sys.executable).with_name("salt-call")
    proc = subprocess.run(
        [str(salt_call), "--local", "--config-dir", str(tmp_path), "--out", "txt",
         "sys.list_functions", "exportfs"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exportfs.add" in proc.stdout
