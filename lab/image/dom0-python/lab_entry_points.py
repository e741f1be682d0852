"""The lab dom0's Python: the installed packages' entry points, read once.

Salt's loader asks ``importlib.metadata.entry_points()`` for the
``salt.loader`` entry points each time it builds a module loader, and keeps
the answer for half a second.  A minion job builds about ten loaders; under
software emulation each scan of the 89 installed distributions takes about
0.3 s, longer than that half second, so every loader scans again: about
2.7 s of the 4.5 s a job spends before it runs (lab/README.md, "Profile").
Nothing is installed into /opt/salt while the dom0 runs, so the answer
cannot change: this keeps the first one for the life of the process.

Loaded at interpreter start by ``lab-entry-points.pth`` (site-packages).
"""

import functools
import importlib.metadata

_scan = importlib.metadata.entry_points


@functools.cache
def _entry_points(params):
    return _scan(**dict(params))


def entry_points(**params):
    """importlib.metadata.entry_points, answered from the first scan."""
    return _entry_points(tuple(sorted(params.items())))


importlib.metadata.entry_points = entry_points
