"""Where a Salt job's time goes: the master's events joined to the minion's log.

For each job the master published to the dom0's minion:

    publish   the master's ``salt/job/JID/new`` event (host clock)
    received  minion log: ``Executing command FUN with jid JID``
    started   minion log: ``Starting a new job JID`` (the job's thread runs;
              before it, Salt rebuilds the minion's module loaders)
    finished  minion log: ``Job JID execution finished``
    returned  the master's ``salt/job/JID/ret/MINION`` event (host clock)

The dom0's clock is Xen's wall clock, set from the host's at boot: the two
agree to well under a second, which is why the figures are rounded to 0.1 s.
The minion's start-up is read from the same log (``startup``).
"""

import datetime
import re

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \[[^]]*\]\[\w+ *\]\[\d+\] (.*)$")
STAGES = (
    ("received", re.compile(r"Executing command (.+?) with jid (\d+)")),
    ("started", re.compile(r"Starting a new job (\d+)")),
    ("finished", re.compile(r"Job (\d+) execution finished")),
)
STARTUP = (
    ("setting_up", "Setting up the Salt Minion"),
    ("starting_up", "Starting up the Salt Minion"),
    ("process_manager", "Creating minion process manager"),
    ("ready", "Minion is ready to receive requests"),
)


def _stamp(text):
    moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def parse_minion_log(text):
    """({jid: {stage: wall time}}, {startup stage: wall time}) from the minion's log."""
    jobs, startup = {}, {}
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        when, message = _stamp(match.group(1)), match.group(2)
        for name, needle in STARTUP:
            if needle in message:
                startup[name] = when
        for stage, pattern in STAGES:
            found = pattern.search(message)
            if found:
                jid = found.group(found.lastindex)
                entry = jobs.setdefault(jid, {})
                entry.setdefault(stage, when)
                if stage == "received":
                    entry.setdefault("fun", found.group(1))
    return jobs, startup


def profile(events, minion_log, minion):
    """One row per job: {jid, fun, deliver, prepare, run, send, total} (seconds)."""
    jobs, _ = parse_minion_log(minion_log)
    published, returned = {}, {}
    for event in events:
        parts = event.tag.split("/")
        if len(parts) >= 4 and parts[:2] == ["salt", "job"]:
            if parts[3] == "new":
                published[parts[2]] = (event.wall, event.data.get("fun"))
            elif parts[3] == "ret" and parts[4:] == [minion]:
                returned[parts[2]] = event.wall
    rows = []
    for jid, (publish, fun) in sorted(published.items()):
        seen = jobs.get(jid, {})
        row = {"jid": jid, "fun": fun if isinstance(fun, str) else ",".join(fun or [])}
        marks = [publish, seen.get("received"), seen.get("started"), seen.get("finished"),
                 returned.get(jid)]
        for name, (a, b) in zip(("deliver", "prepare", "run", "send"),
                                zip(marks, marks[1:])):
            row[name] = round(b - a, 1) if a is not None and b is not None else None
        row["total"] = round(marks[-1] - publish, 1) if marks[-1] is not None else None
        rows.append(row)
    return rows


def startup(minion_log):
    """The minion's start-up stages, in seconds after ``Setting up``."""
    _, stages = parse_minion_log(minion_log)
    if "setting_up" not in stages:
        return {}
    first = stages["setting_up"]
    return {name: round(stages[name] - first, 1) for name, _ in STARTUP if name in stages}


def table(rows):
    """The rows as a fixed-width text table."""
    head = f"{'job':22s} {'function':34s} {'deliver':>7s} {'prepare':>7s} {'run':>7s} " \
           f"{'send':>7s} {'total':>7s}"
    lines = [head]
    for row in rows:
        cells = [f"{row[k]:7.1f}" if row[k] is not None else "      -"
                 for k in ("deliver", "prepare", "run", "send", "total")]
        lines.append(f"{row['jid']:22s} {row['fun'][:34]:34s} " + " ".join(cells))
    return "\n".join(lines) + "\n"
