"""What a lab run found: ``RUN/results.json`` and the summary printed at the end.

``results.json`` holds the phase times (``timings``), the accelerator, every
salt CLI call's duration, each step's verdict, the dom0s' own times and job
profiles, the guests' root mount lines, the boots' proofs and the
migrations.  It is written after each step, so a run cut short still leaves
what it found; the e2e tests read it.
"""

import json
import pathlib
import statistics


def loadavg():
    """This machine's load average: 1, 5 and 15 minutes."""
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


class Results(dict):
    """The run's results, as written to ``RUN/results.json``."""

    def __init__(self, workdir, image, build_seconds, dom0s):
        """``dom0s``: [(minion id, bridge address, role)]."""
        super().__init__(
            workdir=str(workdir),
            image=str(image),
            loadavg_start=loadavg(),
            timings={"build": float(build_seconds)},
            salt_calls=[],
            steps={},
            dom0s={minion: {"address": address, "role": role}
                   for minion, address, role in dom0s},
        )
        self.path = pathlib.Path(workdir) / "results.json"

    def save(self):
        self.path.write_text(json.dumps(self, indent=2) + "\n")

    def timing(self, key, seconds):
        self["timings"][key] = round(seconds, 1)

    def salt_call(self, label, argv0, seconds):
        """One command of the run (``salt``, ``salt-run``): how long it took."""
        self["salt_calls"].append({"label": label, "argv0": argv0,
                                   "seconds": round(seconds, 2), "loadavg": loadavg()})

    def step(self, number, title, seconds, error):
        """A step's verdict (``error`` None when it passed); saved at once."""
        self["steps"][str(number)] = {
            "title": title, "seconds": seconds, "ok": error is None, "error": error,
        }
        self["timings"][f"step_{number}"] = seconds
        self.save()

    def summary(self, ok, elapsed):
        """The last figures (``elapsed``: seconds since the run started),
        saved, then printed."""
        timings = self["timings"]
        # Up to the end of the steps (not the --keep-running wait) when they ran.
        timings.setdefault("whole_run", round(elapsed + timings["build"], 1))
        self["ok"] = ok
        self["loadavg_end"] = loadavg()
        calls = [c["seconds"] for c in self["salt_calls"] if c["argv0"] == "salt"]
        if calls:
            self["salt_round_trip_median"] = round(statistics.median(calls), 2)
        self.save()
        print("\n== Xen lab summary", flush=True)
        rows = [("accelerator", self.get("accelerator", "-"))]
        rows += [(key, self[key]) for key in
                 ("guest", "marker", "root_line", "event_guest_root_line") if key in self]
        # Issue 13's three boots, as the states said them.
        proof = self.get("proof", {})
        rows += [(f"proof: {key}", proof[key]) for key in
                 ("booted", "mounted", "refused", "caught", "caught_again") if key in proof]
        for move in self.get("migrations", []):
            rows.append((f"migration {move['from']} -> {move['to']}",
                         f"{move['seconds']} s; guest n={move['counter_before']} "
                         f"uptime={move['uptime_before']} -> n={move['counter_after']} "
                         f"uptime={move['uptime_after']}"))
        for key in ("highstate_elsewhere", "double_boot_refused"):
            if key in self:
                rows.append((key, self[key]))
        rows += [(f"{key} (s)", value) for key, value in timings.items()]
        if calls:
            rows.append(("salt calls / median (s)",
                         f"{len(calls)} / {self['salt_round_trip_median']}"))
        rows.append(("load average start / end",
                     f"{self['loadavg_start']} / {self['loadavg_end']}"))
        for key, value in rows:
            print(f"  {key:44s} {value}")
        print(f"  run folder: {self['workdir']}")
        print(f"== {'PASSED' if ok else 'FAILED'}", flush=True)
