"""The xl/xm test double (tests/doubles/xen_double.py) seen from a test.

A :class:`XenDouble` is one simulated dom0: its own state directory and a
``bin`` directory holding the toolstacks it has installed. ``.env`` is the
environment (PATH + XEN_DOUBLE_DIR) to give a process such as a salt-minion
daemon; the ``xen_double`` and ``make_xen_double`` fixtures (tests/conftest.py)
put it in ``os.environ`` for in-process Salt loaders. The double's
``spawn.log`` holds one JSON array per invocation (``["xl", "list"]``);
:meth:`XenDouble.spawns` reads it back. With ``console_dir`` set, each guest's
console is a file there (:meth:`XenDouble.console`); what a guest prints and
does later comes from a detached process, so tests wait for it with
:func:`poll`, never with a fixed sleep.
"""

import json
import os
import pathlib
import time

DOUBLES = pathlib.Path(__file__).resolve().parents[1] / "doubles"
PROGRAM = DOUBLES / "xen_double.py"


def path_without_doubles():
    """This process's PATH less any directory whose xl/xm is the double (so each
    double decides alone which toolstacks are installed)."""
    kept = []
    for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        tools = [pathlib.Path(entry, tool) for tool in ("xl", "xm")]
        if any(t.exists() and t.resolve() == PROGRAM for t in tools):
            continue
        kept.append(entry)
    return kept


def poll(check, timeout=15.0, interval=0.05):
    """Call ``check`` until it returns something true (returned) or ``timeout``
    seconds have passed (AssertionError with its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(interval)


class XenDouble:
    """One simulated dom0: its toolstack commands and their state directory."""

    def __init__(self, state_dir, toolstacks=("xl",), **settings):
        self.dir = pathlib.Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin = self.dir / "bin"
        self.bin.mkdir(exist_ok=True)
        for tool in ("xl", "xm"):
            link = self.bin / tool
            if tool in toolstacks and not link.exists():
                link.symlink_to(PROGRAM)
            elif tool not in toolstacks and link.is_symlink():
                link.unlink()
        self.configure(**settings)

    @property
    def env(self):
        """PATH (the double first) and XEN_DOUBLE_DIR for a process using this double."""
        return {
            "PATH": os.pathsep.join([str(self.bin), *path_without_doubles()]),
            "XEN_DOUBLE_DIR": str(self.dir),
        }

    def configure(self, **settings):
        """Merge behaviour switches into settings.json (see the double's docstring)."""
        path = self.dir / "settings.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(settings)
        path.write_text(json.dumps(current))

    def settings(self):
        path = self.dir / "settings.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def console_log(self, name):
        """Where xenconsoled logs the guest first seen as ``name``
        (``<console_dir>/guest-<name>.log``); None without ``console_dir``."""
        directory = self.settings().get("console_dir")
        return pathlib.Path(directory, f"guest-{name}.log") if directory else None

    def console(self, name):
        """The bytes of that log so far (None when there is no such file)."""
        path = self.console_log(name)
        return path.read_bytes() if path is not None and path.exists() else None

    def spawns(self, tool=None, command=None):
        """The argv of every invocation so far (optionally of one tool/subcommand)."""
        path = self.dir / "spawn.log"
        if not path.exists():
            return []
        calls = [json.loads(line) for line in path.read_text().splitlines() if line]
        if tool:
            calls = [c for c in calls if c[0] == tool]
        if command:
            calls = [c for c in calls if len(c) > 1 and c[1] == command]
        return calls

    def clear_spawns(self):
        (self.dir / "spawn.log").unlink(missing_ok=True)

    def domains(self):
        """The stored guests (Domain-0 excluded): {name: record}."""
        path = self.dir / "domains.json"
        if not path.exists():
            return {}
        return json.loads(path.read_text())["domains"]
