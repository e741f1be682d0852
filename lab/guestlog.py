"""What a lab guest prints on its console (lab/image/guest/etc/init.d/rcS).

    XEN-NFSROOT-GUEST-UP NAME uptime=12.34s        userspace runs
    XEN-NFSROOT-GUEST-ROOT SERVER:PATH / nfs OPTS  its root, from /proc/mounts
    XEN-NFSROOT-GUEST-TICK n=COUNTER uptime=SECS   every N s with lab_tick=N

xenconsoled writes it to ``guest-NAME.log``, or ``guest-NAME--incoming.log``
for a guest that arrived by live migration (the name it first saw): the
formula's ``xen_nfsroot_lib.console.log_path``.  Shared by the runner and the
end-to-end tests.
"""

import dataclasses
import re

UP = "XEN-NFSROOT-GUEST-UP"
ROOT = "XEN-NFSROOT-GUEST-ROOT"
TICK = re.compile(r"XEN-NFSROOT-GUEST-TICK n=(\d+) uptime=(\d+(?:\.\d+)?)")


@dataclasses.dataclass(frozen=True)
class Tick:
    counter: int
    uptime: float
    line: str


def ticks(text):
    """Every tick line of a console transcript, in order."""
    found = []
    for line in (text or "").splitlines():
        match = TICK.search(line)
        if match:
            found.append(Tick(int(match.group(1)), float(match.group(2)),
                              line[match.start():].strip()))
    return found


def root_line(text):
    """The root mount line the guest printed last, or None."""
    lines = [line.split(ROOT, 1)[1].strip() for line in (text or "").splitlines()
             if ROOT in line]
    return lines[-1] if lines else None


def continued(before, after):
    """Whether the ticks ``after`` (seen on the target) go on from those
    ``before`` (seen on the source) in one life of the guest: the counter
    carries on above where it stopped, and so does the guest's own uptime
    (a reboot would start again from n=1 and a few seconds).  Returns (ok,
    why)."""
    if not before or not after:
        return False, f"ticks before the move: {len(before)}, after it: {len(after)}"
    last, first = before[-1], after[0]
    if first.counter <= last.counter:
        return False, f"counter {last.counter} then {first.counter}: not one run"
    if first.uptime <= last.uptime:
        return False, f"uptime {last.uptime} then {first.uptime}: the guest restarted"
    if any(b.counter <= a.counter or b.uptime <= a.uptime for a, b in zip(after, after[1:])):
        return False, "the ticks after the move do not count on"
    return True, (f"n={last.counter} uptime={last.uptime} -> n={first.counter} "
                  f"uptime={first.uptime}")
