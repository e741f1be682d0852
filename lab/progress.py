"""Waits that follow progress, and the master's event bus as a record of it.

A wait in the lab never runs on a bare clock.  It watches one or more signs
of progress (the size of a console log, the events one minion fires on the
master's bus, the output of a command) and gives up only when none of them
moved for ``idle`` seconds, or at a ``ceiling`` far above what a quiet
machine needs.  When it gives up, it says what it waited for, what it saw
last and how long ago, so a slow machine is told apart from a stuck one.
"""

import dataclasses
import threading
import time

import salt.utils.event

# How long a lab wait lets nothing move (no console line, no event from the
# minion, no output) before it gives up, and the most any one wait may take.
# Both are far above what this machine needs even with a CPU hog beside the
# lab (the longest silence measured is about a minute): a machine 5x slower
# still passes.
IDLE = 900
CEILING = 3600


class WaitError(Exception):
    """A wait gave up: the message says what was seen last and when."""


@dataclasses.dataclass
class Sign:
    """One sign of progress: ``probe()`` returns a value that changes as things
    progress (a size, a count) and ``describe()`` says what was seen last."""

    name: str
    probe: object
    describe: object = None
    value: object = None
    changed_at: float = 0.0

    def poll(self, now):
        value = self.probe()
        if value != self.value:
            self.value = value
            self.changed_at = now
            return True
        return False

    def last_seen(self):
        if self.describe is None:
            return f"{self.name}: {self.value!r}"
        return f"{self.name}: {self.describe()}"


def file_sign(path):
    """A progress sign: the size of the file ``path`` (0 while it does not exist)."""
    def size():
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0
    return Sign(path.name, size, lambda: f"{size()} bytes")


def wait_until(what, done, signs, limits, interval=0.5):
    """Call ``done()`` until it returns something other than None; return it.

    ``limits`` is (idle, ceiling): give up (WaitError) when no sign in
    ``signs`` changed for ``idle`` seconds, or after ``ceiling`` seconds in
    all.  ``done`` may raise to stop at once.
    """
    idle, ceiling = limits
    began = time.monotonic()
    for sign in signs:
        sign.poll(began)
        sign.changed_at = began
    while True:
        result = done()
        if result is not None:
            return result
        now = time.monotonic()
        for sign in signs:
            sign.poll(now)
        last = max((sign.changed_at for sign in signs), default=began)
        if now - last > idle or now - began > ceiling:
            reason = (f"nothing moved for {now - last:.0f} s" if now - last > idle
                      else f"the ceiling of {ceiling:.0f} s was reached")
            seen = "; ".join(
                f"{sign.last_seen()} ({now - sign.changed_at:.0f} s ago)" for sign in signs)
            raise WaitError(f"{what}: gave up after {now - began:.0f} s, {reason}. "
                            f"Last seen: {seen or 'no sign of progress watched'}")
        time.sleep(interval)


@dataclasses.dataclass
class Event:
    at: float
    tag: str
    data: dict
    wall: float = 0.0


class EventLog(threading.Thread):
    """Every event of the master's bus, with the time it arrived.

    Runs in its own thread from the master's start to the end of the run, so
    a wait can ask what a minion did since a given moment (authenticated,
    started, returned a job) without polling the minion.
    """

    def __init__(self, master_opts, path=None):
        super().__init__(name="master-events", daemon=True)
        self.opts = master_opts
        self.path = path
        self.events = []
        self.lock = threading.Condition()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.error = None

    def run(self):
        try:
            bus = salt.utils.event.get_master_event(
                self.opts, self.opts["sock_dir"], listen=True)
            bus.connect_pub()
            self.connected.set()
            out = open(self.path, "a") if self.path else None
            while not self.stopping.is_set():
                raw = bus.get_event(wait=0.5, full=True)
                if raw:
                    self._record(raw, out)
        except Exception as err:
            self.error = err
            self.connected.set()

    def _record(self, raw, out):
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        event = Event(time.monotonic(), raw.get("tag", ""), data, time.time())
        with self.lock:
            self.events.append(event)
            self.lock.notify_all()
        if out:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.wall))
            out.write(f"{stamp}.{int(event.wall * 1000) % 1000:03d} {event.tag} {_brief(data)}\n")
            out.flush()

    def stop(self):
        self.stopping.set()

    def since(self, at, minion=None, tag=None):
        """Events received after ``at`` (from ``minion``, with ``tag`` in their tag)."""
        with self.lock:
            found = [e for e in self.events if e.at >= at]
        if minion is not None:
            found = [e for e in found if _from_minion(e, minion)]
        if tag is not None:
            found = [e for e in found if tag in e.tag]
        return found

    def sign(self, minion=None, since=0.0):
        """A progress sign: the number of events ``minion`` (or anyone) fired
        since ``since``."""
        who = minion or "anyone"

        def probe():
            return len(self.since(since, minion))

        def describe():
            events = self.since(since, minion)
            return f"{len(events)} event(s) from {who}" + (
                f", last {events[-1].tag}" if events else "")
        return Sign(f"master events from {who}", probe, describe)


def _from_minion(event, minion):
    if event.data.get("id") == minion:
        return True
    return f"/{minion}/" in event.tag or event.tag.endswith(f"/{minion}")


def _brief(data):
    keys = ("id", "fun", "jid", "success", "retcode", "act", "result", "fun_args")
    return " ".join(f"{k}={data[k]}" for k in keys if k in data)[:600]
