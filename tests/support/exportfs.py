"""exportfs in the tests: the real one, as the functional and integration tests
run it, and the unit tests' ``cmd.run_all`` fake for it."""

import os
import subprocess

from tests.support.commands import Commands
from xen_nfsroot_lib import export_table

REAL_EXPORTFS = "/usr/sbin/exportfs"


def exportfs_v():
    """The real ``exportfs -v`` output."""
    return subprocess.run([REAL_EXPORTFS, "-v"], capture_output=True, text=True,
                          check=True).stdout


def active():
    """The real ``exportfs -v``, parsed: {path: [{hosts, options}]}."""
    return export_table.parse_listing(exportfs_v())


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


class CommandsInTurn(Commands):
    """The shared ``cmd.run_all`` fake, answering one command differently call
    after call where a test needs it (``exportfs -ra`` failing, then passing
    once the files are restored)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.turns = {}

    def answer_in_turn(self, prefix, *results):
        """Answer the next calls starting with prefix (a list of arguments, the
        program by its base name) with results (``commands.result(...)``), one
        each, in order; then as before."""
        self.turns.setdefault(tuple(prefix), []).extend(results)
        return self

    def __call__(self, cmd, python_shell=None, timeout=None, **kwargs):
        answer = super().__call__(cmd, python_shell=python_shell, timeout=timeout, **kwargs)
        argv = (cmd[0].rsplit("/", 1)[-1], *cmd[1:])
        for length in range(len(argv), 0, -1):
            queue = self.turns.get(argv[:length])
            if queue:
                return dict(queue.pop(0))
        return answer
