"""Benchmark driver: highstate cost of the formula from 1 to 1000 guests.

Started by ``bench/run`` inside ``unshare --mount`` + ``tests/isolate``: the
files it changes (/etc/exports*, /var/lib/nfs, /etc/xen, /boot, /srv) are
private copies. For each N it generates a pillar of N guests and times whole
``salt-call --local`` processes:

* ``server``: ``state.apply xen_nfsroot.server`` (packages and service off by
  pillar), the real ``exportfs`` behind a logging shim on PATH;
* ``dom0``: ``state.apply xen_nfsroot.dom0`` with the xl/xm test double
  (``tests/doubles/bin``), whose ``spawn.log`` counts its processes;
* ``floor``: as many ``test.succeed_without_changes`` states as the measured
  SLS has (Salt's state engine alone), on the formula's Salt;
* ``anchor``: Salt 3007's core ``nfs_export.present`` for the same N exports,
  from a Salt-only environment.

Each repetition starts from a clean state and times the first run
(everything changes) and the second run (nothing changes). The median over
the repetitions is reported, with peak memory (``ru_maxrss`` of the
salt-call process) and the processes spawned.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DOUBLE_BIN = REPO / "tests" / "doubles" / "bin"
SHIMS = BENCH / "shims"
ROOTS = Path("/srv/xen-nfsroot-bench")
KERNEL = Path("/boot/vmlinuz-xen-nfsroot-bench")
#: xenconsoled's log directory on the benchmark's dom0 (the double writes the
#: guests' consoles there), the Xen settings file the formula edits for it and
#: the boot every guest prints (its proof: one read of its log, no xl call).
CONSOLE_DIR = Path("/srv/xen-nfsroot-bench-console")
XEN_SETTINGS = Path("/etc/default/xen")
BOOT_CONSOLE = REPO / "tests" / "data" / "consoles" / "double-boots.log"
DROP_IN = "/etc/exports.d/xen-nfsroot.exports"
SERVER_ID = "nfs1"
DOM0_ID = "dom0-a"
OPTIONS = ["rw", "no_root_squash", "async", "no_subtree_check"]
FSTAB = (
    "# /etc/fstab of a guest installed on local disks\n"
    "/dev/sda1\t/\text3\tdefaults\t1 1\n"
    "/dev/sdb2\tswap\tswap\tdefaults\t0 0\n"
    "proc\t/proc\tproc\tdefaults\t0 0\n"
    "sysfs\t/sys\tsysfs\tdefaults\t0 0\n"
)
# Commentary appended to results.md (what the figures mean, what limits them).
NOTES = BENCH / "notes.md"
KINDS = ("server", "dom0", "anchor", "boots", "boots-serial")
RUNS = ("first", "second")


def guest_name(index):
    return f"bench{index:04d}"


def guest_root(index):
    return ROOTS / guest_name(index)


def guest_client(index):
    return f"10.1.{index // 250}.{index % 250 + 1}"


# ---------------------------------------------------------------------------
# Generated inputs
# ---------------------------------------------------------------------------


def write_pillar(directory, count, parallel=True):
    """N guests as a user with many writes them: what every guest shares
    under ``defaults``, what differs (name, root, client) per guest.
    ``parallel``: the dom0's ``parallel_boots``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "top.sls").write_text("base:\n  '*':\n    - xen_nfsroot\n")
    lines = [
        "xen_nfsroot:",
        "  server:",
        "    manage_packages: false",
        "    manage_service: false",
        "  dom0:",
        f"    console_dir: {CONSOLE_DIR}",
        f"    xen_settings_file: {XEN_SETTINGS}",
        f"    parallel_boots: {32 if parallel else 1}",
        "  defaults:",
        f"    nfs_server: {SERVER_ID}",
        "    nfs_server_address: 192.0.2.1",
        f"    dom0: {DOM0_ID}",
        f"    kernel: {KERNEL}",
        "    memory: 256",
        "    network: dhcp",
        "    toolstack: auto",
        f"    export_options: [{', '.join(OPTIONS)}]",
        "    fstab: {fstype: nfs, disable: [/dev/sdb2]}",
        "    autostart: true",
        "  guests:",
    ]
    for index in range(count):
        lines += [
            f"    {guest_name(index)}:",
            f"      nfs_root: {guest_root(index)}",
            f"      export_clients: [{guest_client(index)}]",
        ]
    (directory / "xen_nfsroot.sls").write_text("\n".join(lines) + "\n")


def write_floor(directory, states):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"floor_{states}.sls"
    if not path.exists():
        path.write_text(
            "".join(f"floor-{i}:\n  test.succeed_without_changes: []\n" for i in range(states))
        )
    return f"floor_{states}"


def write_anchor(directory, count):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"anchor_{count}.sls"
    if not path.exists():
        path.write_text(
            "".join(
                f"{guest_root(i)}:\n"
                "  nfs_export.present:\n"
                f"    - hosts: {guest_client(i)}\n"
                f"    - options: [{', '.join(OPTIONS)}]\n"
                for i in range(count)
            )
        )
    return f"anchor_{count}"


def write_config(directory, file_roots, pillar_roots):
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "root_dir": str(directory / "root"),
        "file_client": "local",
        "file_roots": {"base": [str(p) for p in file_roots]},
        "pillar_roots": {"base": [str(p) for p in pillar_roots]},
        "log_level_logfile": "warning",
    }
    (directory / "minion").write_text(json.dumps(config, indent=1) + "\n")
    return directory


# ---------------------------------------------------------------------------
# Clean state
# ---------------------------------------------------------------------------


def check_isolated():
    host = os.environ.get("XEN_NFSROOT_HOST_MNTNS")
    if not os.environ.get("XEN_NFSROOT_ISOLATED") or not host:
        sys.exit("bench/bench.py writes /etc/exports and /etc/xen: start it with bench/run")
    if os.readlink("/proc/self/ns/mnt") == host:
        sys.exit("bench/bench.py is not in a private mount namespace: start it with bench/run")


#: The server's fstab before the formula added its bind mounts (domu_root.confined).
SERVER_FSTAB = Path("/etc/fstab")
_FSTAB = SERVER_FSTAB.read_bytes() if SERVER_FSTAB.exists() else b""


def unconfine():
    """Undo the guest roots' bind mounts (confine_roots) and their fstab lines."""
    escaped = str(ROOTS).replace(" ", "\\040")
    points = [line.split(" ")[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split(" ")[4].startswith(escaped + "/")]
    for point in reversed(points):
        subprocess.run(["umount", "-l", point.replace("\\040", " ")], check=False)
    SERVER_FSTAB.write_bytes(_FSTAB)


def reset(count, double_dir, delay=0):
    """No exports, no guest configs, N guest roots with a disk fstab each;
    each guest's console shows its root ``delay`` seconds after its boot."""
    unconfine()
    Path("/etc/exports").write_text("")
    shutil.rmtree("/etc/exports.d", ignore_errors=True)
    Path("/var/lib/nfs/etab").write_text("")
    shutil.rmtree("/etc/xen", ignore_errors=True)
    shutil.rmtree(ROOTS, ignore_errors=True)
    for index in range(count):
        etc = guest_root(index) / "etc"
        etc.mkdir(parents=True)
        (etc / "fstab").write_text(FSTAB)
    KERNEL.write_bytes(b"\x7fELF not a real kernel\n")
    shutil.rmtree(double_dir, ignore_errors=True)
    double_dir.mkdir(parents=True)
    shutil.rmtree(CONSOLE_DIR, ignore_errors=True)
    CONSOLE_DIR.mkdir()
    (double_dir / "settings.json").write_text(json.dumps(
        {"console_dir": str(CONSOLE_DIR),
         "boot": {"*": {"console": str(BOOT_CONSOLE), "delay": delay}}}))


# ---------------------------------------------------------------------------
# One measured salt-call
# ---------------------------------------------------------------------------


def _tree(root_pid):
    """The pids of root_pid and its descendants, now."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grown = {root_pid}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    return tree


def _pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def left_running():
    """Salt processes of a run still alive after it (reparented here, the
    subreaper): a forked state left behind. Zombies are reaped first; the xl
    double's own helpers (its guests' consoles) are not Salt's."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    left = 0
    for pid in _tree(os.getpid()) - {os.getpid()}:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        left += b"salt" in cmdline and b"xen_double" not in cmdline
    return left


class TreeSampler(threading.Thread):
    """The peak number of processes of a salt-call's tree, and the peak sum
    of their proportional set sizes (shared pages counted once in all)."""

    def __init__(self, pid, interval=0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_processes, self.peak_pss_kib = 0, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            pids = _tree(self.pid)
            self.peak_processes = max(self.peak_processes, len(pids))
            self.peak_pss_kib = max(self.peak_pss_kib, sum(_pss_kib(pid) for pid in pids))
            self.done.wait(self.interval)


def salt_call(call, env, profile=None):
    """Run one salt-call --local; return (seconds, peak KiB, output, stderr, tree):
    tree is the peak processes and PSS of the process tree.

    call: (venv, config dir, minion id, sls); profile: a file to write
    cProfile statistics to (the run is then slower).
    """
    venv, config, minion_id, sls = call
    salt_call_script = str(Path(venv) / "bin" / "salt-call")
    prefix = [salt_call_script]
    if profile:
        prefix = [str(Path(venv) / "bin" / "python"), "-m", "cProfile", "-o", str(profile),
                  salt_call_script]
    command = [
        *prefix, "--local", "-c", str(config), "--id", minion_id,
        "-l", "quiet", "--out", "json", "state.apply", sls,
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        sampler = TreeSampler(process.pid)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - start
        sampler.done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    tree = {"peak_processes": sampler.peak_processes,
            "peak_pss_mib": round(sampler.peak_pss_kib / 1024, 1)}
    return seconds, usage.ru_maxrss, stdout, stderr, tree


def summarise(stdout, stderr):
    """States, changed, failed and the first failure of a state.apply JSON output."""
    try:
        result = json.loads(stdout)["local"]
    except (ValueError, KeyError, TypeError):
        return {"states": 0, "changed": 0, "failed": 1, "error": (stdout + stderr).strip()[-3000:]}
    if not isinstance(result, dict):
        return {"states": 0, "changed": 0, "failed": 1, "error": str(result)[-3000:]}
    failed = [r for r in result.values() if r.get("result") is not True]
    in_states = {}
    for tag, ret in result.items():
        function = ".".join(tag.split("_|-")[::3][:2])
        in_states[function] = in_states.get(function, 0) + float(ret.get("duration") or 0) / 1000
    summary = {
        "states": len(result),
        "changed": sum(1 for r in result.values() if r.get("changes")),
        "failed": len(failed),
        # Seconds inside each state function, as Salt timed them (summed).
        "in_states": {name: round(seconds, 3) for name, seconds in sorted(in_states.items())},
    }
    if failed:
        summary["error"] = f"{failed[0].get('__id__')}: {failed[0].get('comment')}"[-3000:]
    return summary


def read_lines(path):
    try:
        return [line for line in Path(path).read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def spawn_counts(exportfs_log, double_dir):
    counts = {}
    for line in read_lines(exportfs_log):
        key = f"exportfs {line}".strip()
        counts[key] = counts.get(key, 0) + 1
    for line in read_lines(Path(double_dir) / "spawn.log"):
        argv = json.loads(line)
        key = " ".join(argv[:2]) if argv[1:2] != ["list"] else " ".join(argv)
        counts[key] = counts.get(key, 0) + 1
    return counts


def plain_python():
    """The system's Python for the xl double (a real xl starts in milliseconds;
    a pyenv shim on PATH would add ~0.1 s to every call)."""
    for candidate in ("/usr/bin/python3", "/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def toolstack_seconds(log):
    """Time spent in xl/xm processes (the test double), from the timing shim."""
    total = 0
    for line in read_lines(log):
        start, end = line.split()
        total += int(end) - int(start)
    return round(total / 1e9, 4)


class Bench:
    def __init__(self, args, work):
        # Orphans of a run (a forked state left behind) become this process's
        # children, so that they are counted (PR_SET_CHILD_SUBREAPER).
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
        self.args = args
        self.work = work
        self.double_dir = work / "xen-double"
        self.exportfs_log = work / "exportfs.log"
        self.toolstack_log = work / "toolstack.log"
        self.env = dict(
            os.environ,
            PATH=os.pathsep.join([str(SHIMS), os.environ.get("PATH", "")]),
            XEN_DOUBLE_DIR=str(self.double_dir),
            BENCH_DOUBLE_BIN=str(DOUBLE_BIN),
            BENCH_DOUBLE_PYTHON=plain_python(),
            BENCH_EXPORTFS_LOG=str(self.exportfs_log),
            BENCH_TOOLSTACK_LOG=str(self.toolstack_log),
        )
        self.pillar = work / "pillar"
        self.floor = work / "floor"
        self.anchor = work / "anchor"
        empty = work / "empty-pillar"
        empty.mkdir()
        self.configs = {
            "formula": write_config(work / "conf-formula", [args.state_tree], [self.pillar]),
            "floor": write_config(work / "conf-floor", [self.floor], [empty]),
            "anchor": write_config(work / "conf-anchor", [self.anchor], [empty]),
        }
        self.samples = []  # one dict per salt-call
        self.problems = []

    def measure(self, count, repetition, kind, run, call):
        """call: (venv, config dir, minion id, sls) of the salt-call to time."""
        self.exportfs_log.unlink(missing_ok=True)
        self.toolstack_log.unlink(missing_ok=True)
        (self.double_dir / "spawn.log").unlink(missing_ok=True)
        # What reset() or the run before wrote reaches the disk before the
        # clock starts, so no run pays for another's writeback.
        os.sync()
        profile = None
        if self.args.profile:
            Path(self.args.profile).mkdir(parents=True, exist_ok=True)
            profile = Path(self.args.profile) / f"{count}-{kind}-{run}-{repetition}.prof"
        seconds, maxrss, stdout, stderr, tree = salt_call(call, self.env, profile)
        sample = {
            "n": count,
            "repetition": repetition,
            "kind": kind,
            "run": run,
            "seconds": round(seconds, 4),
            "max_rss_kib": maxrss,
            "spawns": spawn_counts(self.exportfs_log, self.double_dir),
            "toolstack_seconds": toolstack_seconds(self.toolstack_log),
            **tree,
            "left_running": left_running(),
            **summarise(stdout, stderr),
        }
        expected_changes = run == "first" and kind != "floor"
        if sample["failed"]:
            self.problems.append(f"N={count} {kind} {run}: {sample['failed']} failed: "
                                 f"{sample.get('error')}")
        elif expected_changes and not sample["changed"]:
            self.problems.append(f"N={count} {kind} {run}: nothing changed")
        elif run == "second" and sample["changed"]:
            self.problems.append(f"N={count} {kind} {run}: {sample['changed']} states changed")
        self.samples.append(sample)
        print(
            f"  N={count:<5} rep {repetition} {kind:<7} {run:<6} {seconds:8.2f} s "
            f"{maxrss / 1024:7.1f} MiB (tree: {tree['peak_processes']} processes, "
            f"{tree['peak_pss_mib']} MiB PSS)  states {sample['states']:<5} changed "
            f"{sample['changed']:<5} failed {sample['failed']}  {fmt_spawns(sample['spawns'])}",
            flush=True,
        )
        if not kind.startswith("floor") and sample.get("in_states"):
            print("    in states (Salt's durations, summed): " + ", ".join(
                f"{name} {seconds:.2f} s" for name, seconds in sample["in_states"].items()),
                flush=True)
        return sample

    def pair(self, count, repetition, kind, call):
        reset(count, self.double_dir)
        for run in RUNS:
            self.measure(count, repetition, kind, run, call)

    def boots(self, count, repetition, parallel):
        """A dom0's first run whose guests show their root ``--boot-delay``
        seconds after their boot: in parallel (``boots``) or one after the
        other (``boots-serial``, ``parallel_boots: 1``)."""
        shutil.rmtree(self.pillar, ignore_errors=True)
        write_pillar(self.pillar, count, parallel=parallel)
        reset(count, self.double_dir, delay=self.args.boot_delay)
        self.measure(count, repetition, "boots" if parallel else "boots-serial", "first",
                     (self.args.formula_venv, self.configs["formula"], DOM0_ID,
                      "xen_nfsroot.dom0"))
        shutil.rmtree(self.pillar, ignore_errors=True)
        write_pillar(self.pillar, count)

    def run(self):
        formula, anchor = self.args.formula_venv, self.args.anchor_venv
        for count in self.args.sizes:
            shutil.rmtree(self.pillar, ignore_errors=True)
            write_pillar(self.pillar, count)
            anchor_sls = write_anchor(self.anchor, count)
            # anchor: N; dom0: N+1 (console logging), N+2 with xen_boots.prepared
            # (two boots or more); server: 3N+1.
            floor_states = sorted({count, count + 1, count + 2, 3 * count + 1})
            floors = {states: write_floor(self.floor, states) for states in floor_states}
            for repetition in range(1, self.args.repeat + 1):
                conf = self.configs["formula"]
                kinds = self.args.kinds
                if "server" in kinds:
                    self.pair(count, repetition, "server",
                              (formula, conf, SERVER_ID, "xen_nfsroot.server"))
                if "dom0" in kinds:
                    self.pair(count, repetition, "dom0",
                              (formula, conf, DOM0_ID, "xen_nfsroot.dom0"))
                if "anchor" in kinds:
                    self.pair(count, repetition, "anchor",
                              (anchor, self.configs["anchor"], "anchor", anchor_sls))
                for parallel in [kind == "boots" for kind in ("boots", "boots-serial")
                                 if kind in kinds]:
                    self.boots(count, repetition, parallel)
                for states, sls in floors.items() if "floor" in kinds else ():
                    self.measure(count, repetition, f"floor{states}", "second",
                                 (formula, self.configs["floor"], "floor", sls))


def fmt_spawns(spawns):
    return ", ".join(f"{k} ×{v}" for k, v in sorted(spawns.items())) or "none"


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def median(samples, key):
    return statistics.median(s[key] for s in samples)


def aggregate(samples):
    """{(n, kind, run): row} with medians; spawns must agree across repetitions."""
    groups = {}
    for sample in samples:
        groups.setdefault((sample["n"], sample["kind"], sample["run"]), []).append(sample)
    rows = {}
    for (count, kind, run), group in groups.items():
        spawns = [json.dumps(s["spawns"], sort_keys=True) for s in group]
        rows[(count, kind, run)] = {
            "n": count,
            "kind": kind,
            "run": run,
            "repetitions": len(group),
            "seconds": round(median(group, "seconds"), 3),
            "seconds_all": [s["seconds"] for s in group],
            "max_rss_mib": round(median(group, "max_rss_kib") / 1024, 1),
            "peak_processes": max(s.get("peak_processes", 0) for s in group),
            "peak_pss_mib": round(median(group, "peak_pss_mib"), 1)
            if all("peak_pss_mib" in s for s in group) else None,
            "left_running": max(s.get("left_running", 0) for s in group),
            "toolstack_seconds": round(median(group, "toolstack_seconds"), 3),
            "net_seconds": round(statistics.median(
                s["seconds"] - s["toolstack_seconds"] for s in group), 3),
            "states": group[0]["states"],
            "changed": group[0]["changed"],
            "failed": max(s["failed"] for s in group),
            "spawns": group[0]["spawns"],
            "spawns_vary": len(set(spawns)) > 1,
            "in_states": {name: round(statistics.median(s.get("in_states", {}).get(name, 0)
                                                        for s in group), 3)
                          for name in group[0].get("in_states", {})},
        }
    return rows


def _boot_targets(rows):
    """A dom0's boots of N guests against its boot of one: 8 within 1.5×,
    32 within 2×; nothing of the run left running."""
    results = []
    for kind in ("boots", "boots-serial"):
        one = rows.get((1, kind, "first"))
        for count, limit in ((8, 1.5), (32, 2)):
            row = rows.get((count, kind, "first"))
            if one and row and kind == "boots":
                results.append(check(
                    row["seconds"] <= limit * one["seconds"],
                    f"N={count} boots: at most {limit}× the boot of one guest",
                    f"{row['seconds']:.2f} s / {one['seconds']:.2f} s = "
                    f"{row['seconds'] / one['seconds']:.2f}×"))
    for (count, kind, run), row in sorted(rows.items()):
        if kind.startswith("boots") or kind == "dom0":
            results.append(check(row.get("left_running", 0) == 0,
                                 f"N={count} {kind} {run}: no process of the run left after it",
                                 f"{row.get('left_running', 0)} left; peak "
                                 f"{row.get('peak_processes')} processes"))
    return results


def floor_of(rows, count, states):
    row = rows.get((count, f"floor{states}", "second"))
    return row["seconds"] if row else None


def add_ratios(rows):
    for (count, kind, run), row in rows.items():
        if kind.startswith("floor"):
            continue
        states = row["states"] or count
        floor = floor_of(rows, count, states)
        row["floor_states"] = states
        row["floor_seconds"] = floor
        row["ratio_floor"] = round(row["seconds"] / floor, 2) if floor else None
        row["above_floor"] = round(row["seconds"] - floor, 3) if floor else None
        row["net_ratio_floor"] = round(row["net_seconds"] / floor, 2) if floor else None
        row["net_above_floor"] = round(row["net_seconds"] - floor, 3) if floor else None
        anchor = rows.get((count, "anchor", run))
        row["ratio_anchor"] = (
            round(row["seconds"] / anchor["seconds"], 3) if anchor and kind == "server" else None
        )


def check(ok, text, measured):
    return {"ok": bool(ok), "target": text, "measured": measured}


def _spawn_targets(rows):
    """One target a run: the processes it may spawn, whatever N."""
    results = []
    for (count, kind, run), row in sorted(rows.items()):
        spawns = row["spawns"]
        if kind == "server":
            ra = spawns.get("exportfs -ra", 0)
            v = spawns.get("exportfs -v", 0)
            other = {k: c for k, c in spawns.items() if k not in ("exportfs -ra", "exportfs -v")}
            ok = ra <= (1 if run == "first" else 0) and v <= 1 and not other
            results.append(check(ok, f"N={count} server {run}: at most one exportfs -ra "
                                     "(none when nothing changed) and one exportfs -v",
                                 fmt_spawns(spawns)))
        elif kind == "dom0":
            booted = count if run == "first" else 0
            lists = sum(c for k, c in spawns.items() if k.split()[1:2] == ["list"])
            creates = sum(c for k, c in spawns.items() if k.split()[1:2] == ["create"])
            other = sum(c for k, c in spawns.items()
                        if k.split()[1:2] not in (["list"], ["create"]))
            ok = lists <= 1 and creates == booted and not other
            results.append(check(ok, f"N={count} dom0 {run}: at most one listing and "
                                     f"{booted} create", fmt_spawns(spawns)))
    return results


def targets(rows, sizes):  # noqa: C901 (one branch per target of bench/README.md)
    """The targets the formula must meet, each with its measured figures."""
    results = _spawn_targets(rows) + _boot_targets(rows)
    if 100 in sizes and 1000 in sizes:
        for kind in ("server", "dom0"):
            for run in RUNS:
                low, high = rows.get((100, kind, run)), rows.get((1000, kind, run))
                if not (low and high and low["above_floor"] and high["above_floor"] is not None):
                    continue
                growth = high["above_floor"] / low["above_floor"]
                results.append(check(
                    growth <= 11,
                    f"{kind} {run}: time − floor grows at most 11× from N=100 to N=1000",
                    f"{high['above_floor']:.2f} s / {low['above_floor']:.2f} s = {growth:.1f}×"))
                if high["toolstack_seconds"] and low["net_above_floor"] > 0:
                    growth = high["net_above_floor"] / low["net_above_floor"]
                    results.append(check(
                        growth <= 11,
                        f"{kind} {run}, toolstack time excluded: time − floor grows at most "
                        "11× from N=100 to N=1000",
                        f"{high['net_above_floor']:.2f} s / {low['net_above_floor']:.2f} s "
                        f"= {growth:.1f}×"))
        for kind in ("server", "dom0"):
            for run, limit in (("second", 1.5), ("first", 3)):
                row = rows.get((1000, kind, run))
                if row and row["ratio_floor"]:
                    results.append(check(
                        row["ratio_floor"] <= limit,
                        f"N=1000 {kind} {run}: at most {limit}× the floor",
                        f"{row['seconds']:.2f} s / {row['floor_seconds']:.2f} s "
                        f"({row['floor_states']} states) = {row['ratio_floor']:.2f}×"))
                if row and row["ratio_floor"] and row["toolstack_seconds"] > row["seconds"]:
                    results.append(check(
                        False, f"N=1000 {kind} {run}, toolstack time excluded: at most "
                        f"{limit}× the floor",
                        f"not measurable: {row['toolstack_seconds']:.2f} s in xl processes that "
                        f"overlap (parallel boots), more than the run's {row['seconds']:.2f} s"))
                elif row and row["ratio_floor"] and row["toolstack_seconds"]:
                    results.append(check(
                        row["net_ratio_floor"] <= limit,
                        f"N=1000 {kind} {run}, toolstack time excluded: at most {limit}× "
                        "the floor",
                        f"({row['seconds']:.2f} s − {row['toolstack_seconds']:.2f} s in xl) / "
                        f"{row['floor_seconds']:.2f} s = {row['net_ratio_floor']:.2f}×"))
        for run, factor in (("first", 5), ("second", 2)):
            row, anchor = rows.get((1000, "server", run)), rows.get((1000, "anchor", run))
            if row and anchor:
                speedup = anchor["seconds"] / row["seconds"]
                results.append(check(
                    speedup >= factor,
                    f"N=1000 server {run}: at least {factor}× faster than core nfs_export",
                    f"{anchor['seconds']:.2f} s / {row['seconds']:.2f} s = {speedup:.1f}×"))
    return results


def render_markdown(meta, rows, checks, problems):
    lines = [
        "# Benchmark: highstate cost from 1 to 1000 guests",
        "",
        f"Command: `{meta['command']}` — {meta['date']}, {meta['machine']}.",
        f"Load average before: {meta['load_before']}; after: {meta['load_after']}.",
        f"Formula on Salt {meta['salt']}; anchor: Salt {meta['anchor_salt']} core "
        f"`nfs_export.present`; {meta['repeat']} repetition(s), median shown.",
        "",
        "Each figure is a whole `salt-call --local state.apply` process. `first`: from a clean "
        "state (no exports, no guest configs, disk fstabs), everything changes; `second`: the "
        "same again, nothing changes. `floor` = Salt's state engine alone: as many "
        "`test.succeed_without_changes` states as the measured run has (server: 3N+1 states, "
        "dom0: N+1, or N+2 when it boots two guests or more, anchor: N). `×floor` = seconds / "
        "floor; `×anchor` = seconds / core "
        "`nfs_export`'s seconds for the same N and run (below 1 is faster). Spawns are counted "
        "by a logging `exportfs` shim on PATH and the xl double's spawn log; `in xl` is the "
        "time spent waiting for the xl test double's processes (a Python program started "
        "once per call), measured by a timing shim.",
        "",
        "`boots`: a dom0's first run whose guests show their root on their console "
        f"{meta.get('boot_delay', '')} s after `xl create` (the double's `delay`), booted in "
        "parallel; `boots-serial`: the same with `parallel_boots: 1`, one after the other. "
        "`memory MiB`: the largest process (`ru_maxrss`); `tree`: the peak number of processes "
        "of the run and the peak sum of their proportional set sizes (shared pages counted "
        "once), sampled every 0.2 s.",
        "",
        "| N | side | run | seconds | ×floor | ×anchor | in xl | states | changed | spawns "
        "| memory MiB | tree |",
        "|--:|:-----|:----|--------:|-------:|--------:|------:|-------:|--------:|:-------"
        "|-----------:|:-----|",
    ]

    def ratio(value):
        return "" if value is None else f"{value:.2f}"

    order = {"server": 0, "dom0": 1, "anchor": 2, "boots": 3, "boots-serial": 4}
    for row in sorted(rows.values(), key=lambda r: (
            r["n"], order.get(r["kind"], 3), r["kind"], r["run"] != "first")):
        kind = row["kind"]
        if kind.startswith("floor"):
            kind, run = "floor", f"{row['states']} states"
        else:
            run = row["run"]
        lines.append(
            f"| {row['n']} | {kind} | {run} | {row['seconds']:.2f} | "
            f"{ratio(row.get('ratio_floor'))} | {ratio(row.get('ratio_anchor'))} | "
            f"{ratio(row['toolstack_seconds'] or None)} | {row['states']} | {row['changed']} | "
            f"{fmt_spawns(row['spawns'])} | "
            f"{row['max_rss_mib']:.0f} | "
            f"{row.get('peak_processes', '')} procs, {row.get('peak_pss_mib') or ''} MiB |"
        )
    lines += ["", "## Targets", ""]
    for item in checks:
        lines.append(f"- {'met' if item['ok'] else '**missed**'}: {item['target']} — "
                     f"{item['measured']}")
    if problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in problems]
    if NOTES.exists():
        lines += ["", NOTES.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formula-venv")
    parser.add_argument("--salt")
    parser.add_argument("--anchor-venv")
    parser.add_argument("--anchor-salt")
    parser.add_argument("--quick", action="store_true",
                        help="N = 1, 10, 100, one repetition, results-quick.*")
    parser.add_argument("--sizes", help="comma-separated N (default 1,10,100,1000)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    parser.add_argument("--kinds", default="server,dom0,anchor,floor",
                        help="what to measure (default server,dom0,anchor,floor; also "
                             "boots,boots-serial)")
    parser.add_argument("--boot-delay", type=float, default=10.0,
                        help="seconds a guest of the boots kinds takes to show its root "
                             "(default 10)")
    parser.add_argument("--profile", metavar="DIR",
                        help="run each salt-call under cProfile, statistics into DIR")
    parser.add_argument("--state-tree", default=str(REPO / "salt"),
                        help="the formula's state tree (default: the repository's salt/)")
    parser.add_argument("--from-json", metavar="FILE",
                        help="no measurement: write the report again from a results JSON")
    parser.add_argument("--output", help="results file stem (default bench/results)")
    args = parser.parse_args()
    args.kinds = set(args.kinds.split(","))
    if args.from_json:
        return report_again(Path(args.from_json), args.output)
    if not (args.formula_venv and args.salt and args.anchor_venv and args.anchor_salt):
        parser.error("--formula-venv, --salt, --anchor-venv and --anchor-salt are needed "
                     "(bench/run gives them)")
    check_isolated()
    args.sizes = [int(n) for n in (args.sizes or ("1,10,100" if args.quick else "1,10,100,1000"))
                  .split(",")]
    args.repeat = args.repeat or (1 if args.quick else 3)
    stem = Path(args.output) if args.output else BENCH / (
        "results-quick" if args.quick else "results")
    meta = {
        "command": "bench/run " + " ".join(sys.argv[1:][8:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "salt": args.salt,
        "anchor_salt": args.anchor_salt,
        "repeat": args.repeat,
        "sizes": args.sizes,
        "load_before": loadavg(),
        "boot_delay": args.boot_delay,
    }
    meta["command"] = meta["command"].strip()
    print(f"== load average {meta['load_before']}; N = {args.sizes}, "
          f"{args.repeat} repetition(s)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="xen-nfsroot-bench."))
    try:
        bench = Bench(args, work)
        bench.run()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        unconfine()
        shutil.rmtree(ROOTS, ignore_errors=True)
    meta["load_after"] = loadavg()
    return report(meta, bench.samples, bench.problems, stem)


def report(meta, samples, problems, stem):
    """Aggregate the samples, check the targets, write STEM.md and STEM.json."""
    rows = aggregate(samples)
    add_ratios(rows)
    checks = targets(rows, meta["sizes"])
    markdown = render_markdown(meta, rows, checks, problems)
    stem.with_suffix(".md").write_text(markdown)
    stem.with_suffix(".json").write_text(json.dumps({
        "meta": meta,
        "rows": sorted(rows.values(), key=lambda r: (r["n"], r["kind"], r["run"])),
        "targets": checks,
        "problems": problems,
        "samples": samples,
    }, indent=1) + "\n")
    print()
    print(markdown)
    print(f"== written {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 1 if problems else 0


def report_again(source, output):
    data = json.loads(source.read_text())
    stem = Path(output) if output else source.with_suffix("")
    return report(data["meta"], data["samples"], data["problems"], stem)


if __name__ == "__main__":
    sys.exit(main())
