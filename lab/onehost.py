"""The lab's one-host steps, on the first dom0 (``labdom0-a``, also the NFS
server), each with the real CLI and judged from real output:

1. ``salt-run state.orchestrate orch.xen_nfsroot``: exports, guest fstabs,
   xl configs, ``xl create``; every state True but issue 13's two failures
   (``stockkernel`` refused, ``noexport``'s failed mount caught);
2. ``nfsguest``'s console (xenconsoled's log, read through Salt) shows
   userspace running from its NFS root, and the file it wrote on that root
   is seen on the server;
4. a second highstate changes nothing: it boots neither the refused guest
   nor the one that failed (it reports the failure);
5. the event ``xen_nfsroot/guest/boot`` boots ``nfsguest2`` through the
   reactor; a forged event for an undefined guest boots nothing;
6. ``xen_guest.absent`` and ``nfs_export.absent`` remove ``nfsguest2`` and
   its export; ``exportfs -v`` no longer lists it.

Step 3 (the proofs of step 1's boots) is ``proofs.py``; steps 7 to 10 (two
hosts) ``migration.py``.
"""

import json
import re
import time

import facts
import guestlog
import saltout
from guests import (
    BOOT_TAG,
    EVENT_GUEST,
    EVENT_GUEST_ROOT,
    FORGED_GUEST,
    GUEST,
    GUEST_ADDRESS,
    GUEST_ROOT,
    REFUSED_GUEST,
    SERVER_ADDRESS,
    UNMOUNTED_GUEST,
    domains,
)
from paths import LAB, REPO
from progress import Sign
from saltcli import tail

from xen_nfsroot_lib.console import log_path

# The steps that fail in step 1's orchestration: the one boot step (two of
# its guests fail), their verdicts and the mount checks that require them.
EXPECTED_FAILURES = {"xen_nfsroot-boot"} | {
    f"xen_nfsroot-{step}-{guest}" for step in ("booted", "mounted")
    for guest in (REFUSED_GUEST, UNMOUNTED_GUEST)}
EXPORTS_FILE = "/etc/exports.d/xen-nfsroot.exports"
UNRELATED_EXPORT = "/srv/unrelated"
# A guest that panics, or whose initramfs gives up and opens its shell, will
# never reach userspace (tests/data/specimens/console-*.log).
GUEST_FAILURES = re.compile(r"Kernel panic - not syncing|\(initramfs\) ")


class Steps:
    """The steps, on a ``runner.Lab`` (its salt CLI, results and waits)."""

    def __init__(self, lab, error):
        self.lab = lab
        self.error = error
        self.cli = lab.cli
        self.results = lab.results
        # Step 1's: when it started the boots, and its states ({id: return},
        # step 3's evidence).
        self.xl_create_at = None
        self.orchestration = {}
        # Step 4's: the domains running before step 5's event.
        self.domains_before_event = None

    # -- what the dom0 says ---------------------------------------------------
    def ok(self, found, name):
        """stdout of a fact that must have succeeded."""
        fact = found.get(name)
        if not fact or fact["retcode"] != 0:
            raise self.error(f"{name} failed on the dom0: {fact!r}")
        return fact["stdout"]

    def require_state(self, ret, name):
        if not isinstance(ret, dict) or not ret:
            raise self.error(f"{name}: unexpected answer {ret!r}")
        for value in ret.values():
            if not value.get("result"):
                raise self.error(f"{name} failed: {value.get('comment')}")

    def wait_guest_console(self, guest, since, once_up):
        """Poll the guest's console log and xl list, one Salt call per poll.

        ``once_up`` ({name: command}) are facts read in the same call once
        the console shows the guest's root line, so the poll that sees the
        guest up also brings what the step checks next.
        """
        path = log_path(guest)
        seen = {"text": "", "domains": ""}
        wanted = {"console": f"cat {path}", "xl-list": "xl list"}
        wanted.update({name: f"grep -q {guestlog.ROOT} {path} && {{ {command} ; }}"
                       for name, command in once_up.items()})

        def done():
            found = self.cli.facts(f"console-{guest}", wanted)
            seen["text"] = found["console"]["stdout"] if found["console"]["retcode"] == 0 else ""
            seen["domains"] = found["xl-list"]["stdout"]
            text = seen["text"]
            if guestlog.UP in text and guestlog.ROOT in text.split(guestlog.UP, 1)[1]:
                return text, time.monotonic() - since, found
            failed = GUEST_FAILURES.search(text)
            if failed:
                raise self.error(f"{guest} will not boot: {failed.group(0)!r} on {path}:\n"
                                 f"{tail(text)}\nxl list:\n{seen['domains']}")
            time.sleep(2)
            return None
        console = Sign(f"{guest}'s console", lambda: len(seen["text"]),
                       lambda: f"{len(seen['text'])} characters, ending "
                               f"{tail(seen['text'], 2)!r}; xl list {seen['domains']!r}")
        return self.lab.wait(f"{guestlog.UP} {guest} on {path}", done, [console])

    def check_guest_up(self, guest, export, since, once_up):
        """The guest's console and the file it wrote, checked: its root line
        and the facts ``once_up`` read in the poll that saw it up."""
        once_up = {"guest-was-here": f"cat {export}/guest-was-here", **once_up}
        text, seen, found = self.wait_guest_console(guest, since, once_up)
        up = next(line for line in text.splitlines() if guestlog.UP in line)
        root_line = next(
            line.split(guestlog.ROOT, 1)[1].strip()
            for line in text.splitlines() if guestlog.ROOT in line
        )
        expected = f"{SERVER_ADDRESS}:{export} / nfs"
        if not root_line.startswith(expected):
            raise self.error(f"{guest}: root is {root_line!r}, expected {expected} ...")
        self.lab.say(f"{guest} console: {up.strip()} ({seen:.1f} s)")
        self.lab.say(f"{guest} root: {root_line}")
        written = found["guest-was-here"]
        if written["retcode"] != 0 or written["stdout"].splitlines() != [guest, root_line]:
            raise self.error(f"{export}/guest-was-here on the server: {written!r}")
        self.lab.say(f"server sees {export}/guest-was-here: {guest} | {root_line}")
        return root_line, up, seen, found

    # -- before step 1 --------------------------------------------------------
    def prepare(self):
        """The formula's modules synced to the dom0s, its state tree and
        reactor in place; what the dom0 runs and exports before step 1 kept."""
        answers = self.lab.dom0s.sync()
        missing = [name for name in ("orch/xen_nfsroot.sls", "top.sls")
                   if not (REPO / "salt" / name).exists()]
        if missing:
            raise self.error(f"the formula's state tree is incomplete: no salt/{missing}")
        if not self.results.get("reactor"):
            raise self.error("no reactor configuration in salt/reactor/master.conf")
        before = facts.of_run_all(answers.get("cmd.run_all"))
        if before is None:
            raise self.error(
                f"the dom0's xl list and exportfs -v: {answers.get('cmd.run_all')!r}")
        self.lab.specimen("xl-list-dom0-only.txt", self.ok(before, "xl-list"))
        self.lab.specimen("exportfs-v-before.txt", self.ok(before, "exportfs-v"))

    # -- the steps ------------------------------------------------------------
    def step_orchestrate(self):
        began = time.monotonic()
        rc, answer = self.cli.salt_run("orchestrate", "state.orchestrate", "orch.xen_nfsroot",
                                       check=False)
        self.results.timing("orchestrate", time.monotonic() - began)
        self.xl_create_at = began
        states = saltout.orch_states(answer)
        if not states:
            raise self.error(f"orchestrate: exit status {rc}; no state returned: "
                             f"{str(answer)[:300]}")
        self.orchestration.update(states)
        # Issue 13's two failures fail the boot step and their own verdicts
        # (and so the mount checks that require them); nothing else may fail.
        failed = {key for key, ret in states.items() if ret.get("result") is not True}
        unexpected, missing = sorted(failed - EXPECTED_FAILURES), sorted(
            EXPECTED_FAILURES - failed)
        if unexpected or missing:
            raise self.error(f"orchestrate: exit status {rc}; failed unexpectedly: "
                             f"{[saltout.brief(states[k]) for k in unexpected]}; expected to "
                             f"fail but did not: {missing}")
        self.lab.say(f"orchestrate: {len(states)} states, all True but the expected failures "
                     f"{sorted(failed)} (exit status {rc})")
        found = self.cli.facts("after-orchestrate", {
            "exportfs-v": "exportfs -v", "exports-drop-in": f"cat {EXPORTS_FILE}",
            "etc-exports": "cat /etc/exports", "guest-fstab": f"cat {GUEST_ROOT}/etc/fstab",
            "xl-config": f"cat /etc/xen/{GUEST}.cfg", "xl-list": "xl list"})
        exports = self.ok(found, "exportfs-v")
        for path, client in ((GUEST_ROOT, GUEST_ADDRESS), (UNRELATED_EXPORT, "10.99.0.200")):
            if not re.search(rf"^{re.escape(path)}\s+{re.escape(client)}\(", exports, re.M):
                raise self.error(f"exportfs -v does not list {path} for {client}:\n{exports}")
        self.lab.say("exportfs -v (kernel nfsd): " + " | ".join(exports.split()))
        drop_in = found["exports-drop-in"]["stdout"]
        if not re.search(rf"^{re.escape(GUEST_ROOT)}\s+{re.escape(GUEST_ADDRESS)}\(", drop_in,
                         re.M):
            raise self.error(f"{EXPORTS_FILE} has no export of {GUEST_ROOT}:\n{drop_in}")
        seed = (LAB / "image" / "dom0" / "etc" / "exports").read_text()
        if self.ok(found, "etc-exports") != seed:
            raise self.error(f"/etc/exports changed by the formula:\n{found['etc-exports']}")
        self.lab.say(f"{EXPORTS_FILE}: " + " | ".join(
            " ".join(line.split()) for line in drop_in.splitlines() if line.strip()))
        fstab = found["guest-fstab"]["stdout"]
        if not re.search(r"^/dev/nfs\s+/\s+nfs", fstab, re.M) or not re.search(
                r"^#.*/dev/sdb2\s+swap", fstab, re.M):
            raise self.error(f"guest fstab not rewritten as expected:\n{fstab}")
        self.lab.say("guest fstab: " + " | ".join(
            " ".join(line.split()) for line in fstab.splitlines() if "/dev/" in line))
        config = found["xl-config"]["stdout"]
        if f"nfsroot={SERVER_ADDRESS}:{GUEST_ROOT}" not in config:
            raise self.error(f"/etc/xen/{GUEST}.cfg: {config!r}")
        running = domains(self.ok(found, "xl-list"))
        if GUEST not in running:
            raise self.error(f"{GUEST} is not running after orchestrate: {running}")
        self.lab.say(f"xl list: {running}")

    def step_guest_up(self):
        if self.xl_create_at is None:
            raise self.error("step 1 did not pass")
        root_line, up, seen, found = self.check_guest_up(
            GUEST, GUEST_ROOT, self.xl_create_at,
            {"xl-list-l": "xl list -l", "exportfs-v": "exportfs -v"})
        self.results["guest"] = GUEST
        self.results["root_line"] = root_line
        self.results["marker"] = up.strip()
        self.results.timing("orchestrate_start_to_guest_userspace", seen)
        self.results.timing("qemu_start_to_guest_userspace",
                            self.xl_create_at + seen - self.lab.dom0.started)
        self.lab.specimen("xl-list.txt", self.ok(found, "xl-list"))
        self.lab.specimen("xl-list-l.json", self.ok(found, "xl-list-l"))
        self.lab.specimen("exportfs-v-kernel-nfsd.txt", self.ok(found, "exportfs-v"))

    def step_second_highstate(self):
        # One job: the highstate, then (the same job's second function) the
        # domains running before the reactor's step.
        # Two states fail (check=False: the CLI's exit status is then 1).
        answers = self.cli.compound("highstate-again", [
            ("state.apply",),
            ("cmd.run_all", facts.script({"xl-list": "xl list"}), "python_shell=True")],
            check=False)
        self.domains_before_event = facts.of_run_all(answers.get("cmd.run_all"))
        ret = answers.get("state.apply")
        if not isinstance(ret, dict) or not ret:
            raise self.error(f"state.apply did not return states: {ret!r}")
        by_id = {v.get("__id__", k): v for k, v in ret.items() if isinstance(v, dict)}
        changed = {key: v["changes"] for key, v in by_id.items() if v.get("changes")}
        # The two guests that cannot boot are not booted again: each fails,
        # saying why, and changes nothing.
        again = {f"xen_nfsroot-guest-{REFUSED_GUEST}": "CONFIG_ROOT_NFS",
                 f"xen_nfsroot-guest-{UNMOUNTED_GUEST}": "failed to boot with this config and "
                                                         "kernel"}
        failed = sorted(k for k, v in by_id.items() if v.get("result") is not True)
        wrong = [key for key, words in again.items()
                 if key not in by_id or by_id[key].get("result") is not False
                 or words not in (by_id[key].get("comment") or "")]
        if changed or wrong or set(failed) != set(again):
            raise self.error(f"second highstate: failed {failed} (expected {sorted(again)}), "
                             f"changes {changed}, not as expected: "
                             f"{[by_id.get(k) for k in wrong]}")
        proof = self.results.setdefault("proof", {})
        proof["refused_again"] = by_id[f"xen_nfsroot-guest-{REFUSED_GUEST}"]["comment"]
        proof["caught_again"] = by_id[f"xen_nfsroot-guest-{UNMOUNTED_GUEST}"]["comment"]
        running = domains((self.domains_before_event or {}).get("xl-list", {}).get("stdout", ""))
        if REFUSED_GUEST in running or UNMOUNTED_GUEST in running:
            raise self.error(f"after the second highstate xl list shows {running}")
        self.results["second_highstate_states"] = len(ret)
        self.lab.say(f"second highstate: {len(ret)} states, no changes; not booted again: "
                     f"{proof['caught_again']}")

    def reactor_run(self, guest, since):
        """The reactor's orchestration for ``guest``: its return event, once in."""
        for event in self.lab.events.since(since, tag="salt/run/"):
            if (event.tag.endswith("/ret") and event.data.get("fun") == "runner.state.orchestrate"
                    and guest in json.dumps(event.data.get("fun_args"))):
                return event
        return None

    def step_event_boot(self):
        found = self.domains_before_event or self.cli.facts("before-event",
                                                            {"xl-list": "xl list"})
        before = domains(self.ok(found, "xl-list"))
        if EVENT_GUEST in before:
            raise self.error(f"{EVENT_GUEST} is running before its event: {before}")
        began = time.monotonic()
        self.cli.salt_run("event-forged", "event.send", BOOT_TAG,
                          json.dumps({"guest": FORGED_GUEST}))
        self.cli.salt_run("event-boot", "event.send", BOOT_TAG,
                          json.dumps({"guest": EVENT_GUEST}))
        self.lab.say(f"fired {BOOT_TAG} for {FORGED_GUEST} (undefined), then for {EVENT_GUEST}")
        # Both reactions are orchestrations on the master: wait for their
        # returns (the events of their jobs are the progress), then read the
        # console, so that the polls do not compete with the boot's states.
        for guest in (EVENT_GUEST, FORGED_GUEST):
            run = self.lab.wait(f"the reactor's orchestration for {guest}",
                                lambda guest=guest: self.reactor_run(guest, began),
                                [self.lab.events.sign(since=began)])
            self.lab.say(f"reactor's orchestration for {guest} returned "
                         f"({run.at - began:.1f} s): {json.dumps(run.data.get('return'))[:200]}")
        root_line, _, seen, found = self.check_guest_up(
            EVENT_GUEST, EVENT_GUEST_ROOT, began,
            {"forged-config": f"test -e /etc/xen/{FORGED_GUEST}.cfg; echo $?"})
        self.results["event_guest_root_line"] = root_line
        self.results.timing("event_to_guest_userspace", seen)
        after = domains(self.ok(found, "xl-list"))
        unexpected = sorted(set(after) - set(before) - {EVENT_GUEST})
        if unexpected or FORGED_GUEST in after:
            raise self.error(f"the forged event booted something: {after}")
        if self.ok(found, "forged-config").strip() != "1":
            raise self.error(f"the forged event wrote /etc/xen/{FORGED_GUEST}.cfg")
        self.lab.say(f"xl list: {after} (nothing for {FORGED_GUEST})")

    def step_absent(self):
        ret = self.cli.salt("guest-absent", "state.single", "xen_guest.absent", EVENT_GUEST,
                            check=False)
        self.require_state(ret, "xen_guest.absent")
        # The export's removal and what the dom0 looks like after it, in one job.
        answers = self.cli.compound("export-absent", [
            ("state.single", "nfs_export.absent", EVENT_GUEST_ROOT, f"exports={EXPORTS_FILE}"),
            ("cmd.run_all", facts.script({
                "xl-list": "xl list", "exportfs-v": "exportfs -v",
                "absent-config": f"test -e /etc/xen/{EVENT_GUEST}.cfg; echo $?"}),
             "python_shell=True")])
        self.require_state(answers.get("state.single"), "nfs_export.absent")
        found = facts.of_run_all(answers.get("cmd.run_all"))
        if found is None:
            raise self.error(f"after nfs_export.absent: {answers.get('cmd.run_all')!r}")
        running = domains(self.ok(found, "xl-list"))
        if EVENT_GUEST in running:
            raise self.error(f"{EVENT_GUEST} still running after xen_guest.absent: {running}")
        if self.ok(found, "absent-config").strip() != "1":
            raise self.error(f"/etc/xen/{EVENT_GUEST}.cfg still there after xen_guest.absent")
        exports = self.ok(found, "exportfs-v")
        if EVENT_GUEST_ROOT in exports:
            raise self.error(f"exportfs -v still lists {EVENT_GUEST_ROOT}:\n{exports}")
        if not re.search(rf"^{re.escape(GUEST_ROOT)}\s", exports, re.M) or (
                UNRELATED_EXPORT not in exports):
            raise self.error(f"exportfs -v lost an export it should keep:\n{exports}")
        self.lab.specimen("exportfs-v-after-absent.txt", exports)
        self.lab.say(f"xl list: {running}; exportfs -v: " + " | ".join(exports.split()))
