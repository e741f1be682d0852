"""Pytest support for the xl/xm test double (tests/doubles/xen_double.py).

Fixtures:

* ``xen_double`` -- one double (xl only, hypervisor answering) whose ``PATH``
  and ``XEN_DOUBLE_DIR`` are set in ``os.environ`` for the test (monkeypatch),
  so in-process Salt loaders and the processes they spawn use it.
* ``make_xen_double`` -- a factory: ``make_xen_double(name, toolstacks=("xl",),
  apply=False, **settings)`` returns a :class:`XenDouble` with its own state
  directory; ``.env`` is the environment (PATH + XEN_DOUBLE_DIR) to give a
  process such as a salt-minion daemon, ``apply=True`` puts it in
  ``os.environ`` for the test.

The double's ``spawn.log`` holds one JSON array per invocation
(``["xl", "list"]``); :meth:`XenDouble.spawns` reads it back.
"""

import json
import os
import pathlib

import pytest

DOUBLES = pathlib.Path(__file__).resolve().parent / "doubles"
PROGRAM = DOUBLES / "xen_double.py"


def _path_without_doubles():
    """This process's PATH less any directory whose xl/xm is the double (so each
    double decides alone which toolstacks are installed)."""
    kept = []
    for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        tools = [pathlib.Path(entry, tool) for tool in ("xl", "xm")]
        if any(t.exists() and t.resolve() == PROGRAM for t in tools):
            continue
        kept.append(entry)
    return kept


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
            "PATH": os.pathsep.join([str(self.bin), *_path_without_doubles()]),
            "XEN_DOUBLE_DIR": str(self.dir),
        }

    def configure(self, **settings):
        """Merge behaviour switches into settings.json (see the double's docstring)."""
        path = self.dir / "settings.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(settings)
        path.write_text(json.dumps(current))

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


@pytest.fixture
def make_xen_double(tmp_path, monkeypatch):
    made = {}

    def make(name="dom0", toolstacks=("xl",), apply=False, **settings):
        double = XenDouble(tmp_path / "xen-double" / name, toolstacks, **settings)
        made[name] = double
        if apply:
            for key, value in double.env.items():
                monkeypatch.setenv(key, value)
        return double

    return make


@pytest.fixture
def xen_double(make_xen_double):
    return make_xen_double("dom0", apply=True)


@pytest.fixture(scope="module")
def xen_loaders(minion_opts):
    """A Salt loader (functional tests) built while the double is on PATH.

    The xm module's ``__virtual__`` looks for xl/xm once, when the loader first
    loads it; this loader is created with the double's bin directory on PATH
    so it does. Each test then points PATH/XEN_DOUBLE_DIR at its own double
    (``xen_double``/``make_xen_double(apply=True)``): every process spawned
    reads them afresh. Needs ``minion_opts`` from tests/functional/conftest.py.
    """
    from saltfactories.utils.functional import Loaders  # noqa: PLC0415

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", os.pathsep.join([str(DOUBLES / "bin"), *_path_without_doubles()]))
        yield Loaders(minion_opts, loaded_base_name="xen_nfsroot_xen_tests")
