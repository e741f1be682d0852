"""The lab's two-host steps: a guest that moves live between its dom0s and
never runs on two at once (issue 14), judged from real output.

``nfsguest`` (lab/pillar: home ``labdom0-a``, may run on both) prints
``XEN-NFSROOT-GUEST-TICK n=COUNTER uptime=SECONDS`` every 2 s and keeps the
last tick in ``/tick`` on its NFS root (lab/image/guest/etc/init.d/rcS).
Its console is xenconsoled's log on whichever dom0 runs it: ``guest-NAME.log``
where it was booted, ``guest-NAME--incoming.log`` where it arrived by
migration.  A move is proven by the guest itself: the last tick the source
saw and the first the target saw are of one life (the counter and the
guest's own uptime go on), and the server reads a tick written after the
move.
"""

import json
import re
import time

import facts
import guestlog
import saltout
from guests import GUEST, GUEST_ROOT, domains
from progress import Sign

from xen_nfsroot_lib.console import log_path

MIGRATE_ORCH = "orch.xen_nfsroot_migrate"
TICKS_WANTED = 2


class Error(Exception):
    """A migration step failed (the runner reports it as a LabError)."""


class Steps:
    """The steps, on a ``runner.Lab`` (its salt CLI, results and waits)."""

    def __init__(self, lab, error):
        self.lab = lab
        self.error = error
        self.home, self.other = lab.vms[0], lab.vms[1]
        self.migrations = lab.results.setdefault("migrations", [])

    # -- what the dom0s see ---------------------------------------------------
    def look(self, label, extra=None):
        """One job on both dom0s: the guest's two console logs and xl list on
        each, the tick on its root on the NFS server: {minion: facts}."""
        wanted = {"xl-list": "xl list",
                  "console": f"cat {log_path(GUEST)} 2>/dev/null; true",
                  "console-incoming": f"cat {log_path(GUEST, incoming=True)} 2>/dev/null; true",
                  "tick-on-root": f"cat {GUEST_ROOT}/tick 2>/dev/null; true",
                  **(extra or {})}
        answers = self.lab.cli.salt_all(label, "cmd.run_all", facts.script(wanted),
                                    "python_shell=True")
        found = {}
        for minion, ret in answers.items():
            if not isinstance(ret, dict) or ret.get("retcode") != 0:
                raise self.error(f"{label} on {minion}: {ret!r}")
            found[minion] = facts.parse(ret["stdout"])
        return found

    def where(self, found):
        """{minion: [domain names]} from a look."""
        return {minion: domains(seen["xl-list"]["stdout"]) for minion, seen in found.items()}

    def wait_ticks(self, label, minion, log, since_counter, count=TICKS_WANTED):
        """Poll until ``minion``'s ``log`` ('console' or 'console-incoming')
        shows ``count`` ticks above ``since_counter``; returns the last look."""
        seen = {"size": 0, "last": ""}

        def done():
            found = self.look(label)
            text = found[minion][log]["stdout"]
            seen["size"], seen["last"] = len(text), _last_line(text)
            newer = [t for t in guestlog.ticks(text) if t.counter > since_counter]
            if len(newer) >= count:
                return found
            time.sleep(2)
            return None
        sign = Sign(f"{GUEST}'s console on {minion}", lambda: seen["size"],
                    lambda: f"{seen['size']} characters, last line {seen['last']!r}")
        return self.lab.wait(f"{count} ticks of {GUEST} on {minion} ({log})", done, [sign])

    # -- the steps ------------------------------------------------------------
    def step_runs_on_home(self):
        """(1) The guest boots on its home dom0 (step 1's orchestration) and
        its userspace ticks there; the other dom0 does not run it."""
        found = self.wait_ticks("ticks-home", self.home.minion, "console", 0)
        where = self.where(found)
        if GUEST not in where[self.home.minion] or GUEST in where[self.other.minion]:
            raise self.error(f"{GUEST} should run on {self.home.minion} only: {where}")
        ticks = guestlog.ticks(found[self.home.minion]["console"]["stdout"])
        self.lab.say(f"{GUEST} runs on {self.home.minion}: {ticks[-1].line}; xl list {where}")

    def migrate(self, label, pillar, source, target, log):
        """Run the migration orchestration; check the guest left ``source``
        for ``target`` in one life; record the migration."""
        began = time.monotonic()
        rc, answer = self.lab.cli.salt_run(label, "state.orchestrate", MIGRATE_ORCH,
                                       f"pillar={json.dumps(pillar)}", check=False)
        took = time.monotonic() - began
        states = saltout.orch_states(answer)
        failed = [saltout.brief(ret) for ret in states.values() if ret.get("result") is not True]
        if rc != 0 or not states or failed:
            raise self.error(f"{MIGRATE_ORCH} {pillar}: exit status {rc}; failed: {failed} "
                             f"{'' if states else str(answer)[:400]}")
        moved = _migrated_state(states, GUEST)
        comment = (moved or {}).get("comment", "")
        # The source's last tick and the target's (one look at both, again
        # only while the target has shown fewer than two), and the server
        # sees one written after the move.
        found = self.look(f"{label}-after")
        before = guestlog.ticks(_console_text(found[source.minion]))
        if not before:
            raise self.error(f"no tick of {GUEST} on {source.minion} before the move")
        newer = [t for t in guestlog.ticks(found[target.minion][log]["stdout"])
                 if t.counter > before[-1].counter]
        if len(newer) < TICKS_WANTED or not _tick_on_root_after(found, self.home.minion,
                                                                before[-1].counter):
            found = self.wait_ticks(f"{label}-ticks", target.minion, log, before[-1].counter)
        after = [t for t in guestlog.ticks(found[target.minion][log]["stdout"])
                 if t.counter > before[-1].counter]
        ok, why = guestlog.continued(before, after)
        if not ok:
            raise self.error(f"{GUEST} did not go on across the move: {why}")
        where = self.where(found)
        if GUEST in where[source.minion] or GUEST not in where[target.minion] or any(
                "--incoming" in name or "--migratedaway" in name
                for names in where.values() for name in names):
            raise self.error(f"after the move xl list shows {where}")
        if not _tick_on_root_after(found, self.home.minion, before[-1].counter):
            raise self.error(f"{GUEST_ROOT}/tick on the server has no tick written after "
                             f"the move: {found[self.home.minion]['tick-on-root']['stdout']!r}")
        record = {"guest": GUEST, "from": source.minion, "to": target.minion,
                  "seconds": round(_duration(moved, took), 1),
                  "orchestration_seconds": round(took, 1),
                  "uptime_before": before[-1].uptime, "uptime_after": after[0].uptime,
                  "counter_before": before[-1].counter, "counter_after": after[0].counter,
                  "console_before": before[-1].line, "console_after": after[0].line,
                  "tick_on_root": found[self.home.minion]["tick-on-root"]["stdout"].strip(),
                  "comment": comment}
        self.migrations.append(record)
        self.lab.results.save()
        self.lab.say(f"{GUEST} moved {source.minion} -> {target.minion} in "
                     f"{record['seconds']} s: {before[-1].line} -> {after[0].line}; the server "
                     f"reads {record['tick_on_root']!r}; {comment}")
        return found

    def step_migrate(self):
        """(2) The migration orchestration moves the guest live to the other dom0."""
        self.migrate("migrate", {"guest": GUEST, "to": self.other.minion}, self.home,
                     self.other, "console-incoming")

    def step_never_twice(self):
        """(3) A highstate of the home dom0 does not boot the guest again and
        says where it runs; a forced boot there is refused.  Two jobs: the
        highstate (and the guest's state arguments, for the forced one);
        the forced boots and the home dom0's xl list after them."""
        answers = self.lab.cli.compound("highstate-home", [
            ("state.apply",), ("xen_nfsroot.guest", GUEST)], vm=self.home, check=False)
        state = saltout.by_id(answers.get("state.apply")).get(f"xen_nfsroot-guest-{GUEST}")
        if not state or state.get("result") is not True or state.get("changes") or (
                self.other.minion not in (state.get("comment") or "")):
            raise self.error(f"highstate of {self.home.minion}: {GUEST}'s state should say it "
                             f"runs on {self.other.minion}, changing nothing: {state!r}")
        self.lab.results["highstate_elsewhere"] = state["comment"]
        self.lab.say(f"highstate of {self.home.minion}: {state['comment']}")
        # Forced: the boot by name the orchestration asks for, and the state
        # itself with the guest's arguments, on the home dom0.  Neither may
        # boot it: it runs on the other dom0.
        forced = self.lab.cli.compound("forced-boot", [
            ("state.apply", "xen_nfsroot.dom0",
             "pillar=" + json.dumps({"xen_nfsroot_guest": GUEST, "xen_nfsroot_boot": True})),
            ("state.single", "xen_guest.running", *running_args(
                answers.get("xen_nfsroot.guest"), self.home.minion, self.error)),
            ("cmd.run_all", facts.script({"xl-list": "xl list"}), "python_shell=True")],
            vm=self.home, check=False)
        by_name = saltout.by_id(forced.get("state.apply")).get(f"xen_nfsroot-guest-{GUEST}")
        single = forced.get("state.single")
        single = next(iter(single.values()), None) if isinstance(single, dict) else None
        listing = forced.get("cmd.run_all") or {}
        running = domains(facts.parse(listing["stdout"])["xl-list"]["stdout"]) if (
            listing.get("retcode") == 0) else None
        if running is None or GUEST in running:
            raise self.error(f"after the forced boots {self.home.minion} runs {running}")
        for label, ret in (("state.apply xen_nfsroot.dom0 (boot by name)", by_name),
                           ("state.single xen_guest.running", single)):
            if not isinstance(ret, dict) or (ret.get("changes") or {}).get("guest") or (
                    self.other.minion not in (ret.get("comment") or "")):
                raise self.error(f"{label} of {GUEST} on {self.home.minion} is not refused "
                                 f"naming {self.other.minion}: {ret!r}")
        self.lab.results["double_boot_refused"] = single["comment"]
        self.lab.results["double_boot_refused_by_name"] = by_name["comment"]
        self.lab.say(f"forced boots on {self.home.minion} refused: {single['comment']}; "
                     f"xl list there: {running}")

    def step_evacuate(self):
        """(4) Evacuating the other dom0 brings the guest back home."""
        self.migrate("evacuate", {"evacuate": self.other.minion}, self.other, self.home,
                     "console-incoming")


def running_args(guest, home, error):
    """``xen_guest.running``'s arguments for the guest, as the pillar gives
    them to its home dom0 (``xen_nfsroot.guest``), with its other dom0s:
    NAME and key=value words for ``state.single``."""
    try:
        args = dict(guest["states"]["xen_guest"])
    except (TypeError, KeyError) as err:
        raise error(f"xen_nfsroot.guest {GUEST}: {guest!r}") from err
    args["other_dom0s"] = [m for m in guest.get("dom0s") or [] if m != home]
    name = args.pop("name", GUEST)
    return [name, *(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                    for key, value in args.items())]


def _tick_on_root_after(found, server, counter):
    """Whether the tick the server reads on the guest's root is above ``counter``."""
    on_root = re.search(r"n=(\d+)", found[server]["tick-on-root"]["stdout"])
    return bool(on_root) and int(on_root.group(1)) > counter


def _last_line(text):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1][-160:] if lines else ""


def _console_text(seen):
    """Both console logs of a dom0, the one it booted first."""
    return seen["console"]["stdout"] + "\n" + seen["console-incoming"]["stdout"]




def _minion_rets(states):
    """Every minion state return inside the orchestration's salt.state steps."""
    for ret in states.values():
        for minion_ret in ((ret.get("changes") or {}).get("ret") or {}).values():
            if isinstance(minion_ret, dict):
                yield from (v for v in minion_ret.values() if isinstance(v, dict))


def _migrated_state(states, guest):
    """The state that moved ``guest`` (a xen_guest.migrated, on the source)."""
    for ret in _minion_rets(states):
        if ret.get("name") == guest and ret.get("changes"):
            return ret
    for ret in states.values():
        if guest in json.dumps(ret.get("changes") or {}) and "migrat" in json.dumps(ret):
            return ret
    return None


def _duration(state, fallback):
    """How long the move took: the migrated state's own figure (its
    ``changes.seconds``: the ``xl migrate`` alone), else ``fallback`` s."""
    try:
        return float(state["changes"]["seconds"])
    except (TypeError, KeyError, ValueError):
        return fallback



