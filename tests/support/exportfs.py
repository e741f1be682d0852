"""The real exportfs, as the functional and integration tests run it."""

import os
import subprocess

from xen_nfsroot.modules.exportfs import _parse_listing

REAL_EXPORTFS = "/usr/sbin/exportfs"


def exportfs_v():
    """The real ``exportfs -v`` output."""
    return subprocess.run([REAL_EXPORTFS, "-v"], capture_output=True, text=True,
                          check=True).stdout


def active():
    """The real ``exportfs -v``, parsed: {path: [{hosts, options}]}."""
    return _parse_listing(exportfs_v())


def exportfs_ra():
    """Exit status and sorted messages of the real ``exportfs -ra``."""
    proc = subprocess.run([REAL_EXPORTFS, "-ra"], capture_output=True, text=True, check=False)
    return proc.returncode, sorted(proc.stderr.splitlines())


def install_exportfs_log(directory, monkeypatch):
    """Put an ``exportfs`` first on PATH that logs its arguments, then runs the real one.

    Returns the log file: one line per exportfs process.
    """
    log = directory / "exportfs.log"
    log.write_text("")
    shim = directory / "bin" / "exportfs"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{log}"\nexec {REAL_EXPORTFS} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    return log


def spawns(log):
    """The exportfs processes logged since the last call (and forget them)."""
    lines = log.read_text().splitlines()
    log.write_text("")
    return lines
