"""The lab's two dom0s together: booted side by side, their minions
answering the master, the formula's modules synced to them, and at the end
their minions' logs read and each job's time accounted for.

Who they are is ``lab/image/dom0/etc/lab/dom0s`` (id, bridge address, role),
read by the image build and the dom0's own boot script too.  The first is
the NFS server and the home of every lab guest.  Each is one
``dom0vm.Dom0VM``; their bridges are one L2 network over a UDP socket link
between the two QEMU processes (``LINK_PORTS``, on this machine's loopback).
"""

import json
import pathlib
import time

import facts
import jobprofile
from dom0vm import Dom0VM, KvmVerdicts
from paths import CACHE_DIR, LAB
from progress import CEILING, IDLE, WaitError

DOM0S_FILE = LAB / "image" / "dom0" / "etc" / "lab" / "dom0s"
# UDP ports of the L2 link between the dom0s' QEMU processes (one per dom0).
LINK_PORTS = (14507, 14508)


def read_dom0s(path=DOM0S_FILE):
    """[(minion id, bridge address, role)] of lab/image/dom0/etc/lab/dom0s."""
    found = []
    for line in pathlib.Path(path).read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            found.append((fields[0], fields[1], fields[2]))
    return found


DOM0S = read_dom0s()
# The first dom0 is the NFS server and the home of every lab guest.
MINION = DOM0S[0][0]


def machines(lab, options):
    """One ``Dom0VM`` per dom0, each with its end of the L2 link."""
    vms = []
    for index, (minion, _address, _role) in enumerate(DOM0S):
        link = {"port": LINK_PORTS[index], "peer": LINK_PORTS[1 - index],
                "mac": f"52:54:00:99:00:{index + 1:02x}"}
        vms.append(Dom0VM(lab, minion, lab.workdir / minion, options, link))
    return vms


class Dom0s:
    """The dom0s of a ``runner.Lab`` (``lab.vms``, the first ``lab.dom0``),
    driven through its salt CLI (``lab.cli``)."""

    def __init__(self, lab, error):
        self.lab = lab
        self.error = error

    def boot(self):
        """Both dom0s, side by side (the KVM probe, when one is needed, on
        the first: its verdict serves the second)."""
        lab = self.lab
        verdicts = KvmVerdicts(CACHE_DIR / "lab" / "kvm-verdicts.json", lab.image / "xen.elf")
        for vm in lab.vms:
            try:
                vm.start(verdicts)
            except WaitError as err:
                raise self.error(str(err)) from err
        vm = lab.dom0
        lab.results["accelerator"] = vm.accelerator
        lab.results["accelerator_note"] = vm.accelerator_note
        if vm.kvm_probe_seconds is not None:
            lab.results.timing("kvm_probe", vm.kvm_probe_seconds)
        lab.results["qemu"] = {"smp": lab.options.smp, "memory_mb": lab.options.memory,
                               "xen_cmdline": vm.xen_cmdline(),
                               "l2_link": {v.minion: v.link for v in lab.vms}}
        lab.say(f"QEMU started {len(lab.vms)} times: Xen 4.17 + Debian dom0 "
                f"{', '.join(v.minion for v in lab.vms)} (accelerator: {vm.accelerator}; "
                f"{vm.accelerator_note}); Xen: {vm.xen_cmdline()}")

    def wait_minions(self):
        """Every dom0 booted, its minion started (its start event on the
        master's bus), then one test.ping to all."""
        lab = self.lab
        for vm in lab.vms:
            try:
                vm.wait_console("minion_started", (IDLE, CEILING))
            except WaitError as err:
                raise self.error(str(err)) from err
            lab.say(f"{vm.minion}: dom0 booted, salt-minion started "
                    f"({vm.console.milestones['minion_started']:.1f} s after its QEMU start)")
            start_tag = f"salt/minion/{vm.minion}/start"

            def started(vm=vm, start_tag=start_tag):
                found = lab.events.since(vm.started, vm.minion, start_tag)
                return found[0] if found else None
            event = lab.wait(f"{vm.minion}'s start event ({start_tag})", started,
                             lab.cli.progress_signs(vm.started, [vm]))
            self.record_minion_events(vm, event)
        began = time.monotonic()
        answers = lab.cli.salt_all("test-ping", "test.ping")
        wrong = {minion: ret for minion, ret in answers.items() if ret is not True}
        if wrong:
            raise self.error(f"test.ping answered {wrong}")
        lab.reached = True
        lab.results.timing("test_ping", time.monotonic() - began)
        vm = lab.dom0
        lab.results.timing("minion_ready_after_qemu_start", vm.since_start())
        lab.results.timing("qemu_start_to_minion_answers", vm.since_start())
        for other in lab.vms:
            lab.results["dom0s"][other.minion]["timings"]["qemu_start_to_minion_answers"] = (
                round(other.since_start(), 1))
        lab.say(f"{', '.join(answers)} answer test.ping ({vm.since_start():.1f} s after "
                "QEMU start)")

    def record_minion_events(self, vm, start_event):
        lab = self.lab
        timings = {f"qemu_start_to_{name}": at for name, at in vm.console.milestones.items()}
        auth = [e for e in lab.events.since(vm.started, vm.minion, "salt/auth")
                if e.data.get("result") is True]
        if auth:
            timings["qemu_start_to_minion_authenticated"] = round(auth[0].at - vm.started, 1)
        timings["qemu_start_to_minion_start_event"] = round(start_event.at - vm.started, 1)
        lab.results["dom0s"][vm.minion]["timings"] = timings
        if vm is lab.dom0:
            lab.results["timings"].update(timings)
        lab.say(f"{vm.minion} authenticated and fired {start_event.tag} "
                f"({start_event.at - vm.started:.1f} s after its QEMU start)")

    def sync(self):
        """Bring the formula's modules to every dom0 (one job for all) and ask
        them what they see: the first dom0's answers."""
        lab = self.lab
        began = time.monotonic()
        # saltenv=base: the lab's file_roots have that one environment.  Without
        # it the minion first builds a whole highstate (every loader, the top
        # file rendered) only to learn which environments the top file names.
        synced_all = lab.cli.salt_all("sync-all", "saltutil.sync_all", "saltenv=base")
        lab.results.timing("sync_all", time.monotonic() - began)
        wanted = {"exportfs", "xm", "xen_nfsroot"}
        lists = False
        for minion, ret in synced_all.items():
            if not isinstance(ret, dict):
                raise self.error(f"saltutil.sync_all on {minion}: {ret!r}")
            lab.say(f"{minion}: saltutil.sync_all: modules {ret.get('modules')}, "
                    f"states {ret.get('states')}")
            synced = {name.split(".", 1)[1] for name in ret.get("modules") or []}
            lists = lists or not wanted <= synced
        lab.say(f"saltutil.sync_all: {lab.results['timings']['sync_all']} s")
        # mine.update: the dom0s' domain lists and migration keys in the mine
        # (mine_functions, lab/pillar/mine.sls), read by a dom0 before it
        # boots a guest that may run on the other.
        calls = [("xm.toolstack",), ("xm.list_domains",), ("exportfs.list_active",),
                 ("cmd.run_all", facts.script({"xl-list": "xl list", "exportfs-v": "exportfs -v"}),
                  "python_shell=True"), ("mine.update",)]
        if lists:
            # Loading every module to list them is slow under emulation: ask
            # only when sync_all did not just bring them.
            calls.append(("sys.list_modules",))
        began = time.monotonic()
        every = lab.cli.compound("formula-modules", calls, vms=lab.vms)
        lab.results.timing("formula_modules", time.monotonic() - began)
        for minion, answers in every.items():
            synced = {name.split(".", 1)[1] for name in synced_all[minion].get("modules") or []}
            modules = set(answers.get("sys.list_modules") or []) | synced
            missing = sorted(wanted - modules)
            if missing:
                raise self.error(f"{minion} has no {missing} execution module after sync_all")
            if answers.get("mine.update") is not True:
                raise self.error(f"{minion}: mine.update: {answers.get('mine.update')!r}")
            functions = ("xm.toolstack", "xm.list_domains") + (
                ("exportfs.list_active",) if minion == MINION else ())
            for function in functions:
                lab.say(f"{minion}: {function}: {json.dumps(answers.get(function))[:300]}")
                if isinstance(answers.get(function), str) and (
                        "is not available" in answers[function]):
                    raise self.error(f"{minion}: {function}: {answers[function]}")
        return every[MINION]

    def collect(self):
        """Each minion's log, and from them and the master's events where each
        job's time went (RUN/DOM0/minion.log, RUN/job-profile.txt, results.json)."""
        lab = self.lab
        alive = [vm for vm in lab.vms if vm.alive()]
        if not lab.reached or not alive:
            return
        wanted = facts.script({"log": "cat /var/log/salt/minion"})
        try:
            answers = lab.cli.salt_all("minion-log", "cmd.run_all", wanted, "python_shell=True",
                                       check=False, vms=alive)
        except self.error as err:
            lab.say(f"could not read the minions' logs: {err}")
            return
        tables = []
        results = lab.results
        for vm in alive:
            found = facts.of_run_all((answers or {}).get(vm.minion))
            if found is None:
                lab.say(f"could not read {vm.minion}'s minion log")
                continue
            text = found["log"]["stdout"]
            (vm.files / "minion.log").write_text(text)
            rows = jobprofile.profile(lab.events.since(0.0), text, vm.minion)
            tables.append(f"== {vm.minion}\n{jobprofile.table(rows)}")
            results["dom0s"][vm.minion]["jobs"] = rows
            results["dom0s"][vm.minion]["minion_startup"] = jobprofile.startup(text)
            if vm is lab.dom0:
                results["jobs"] = rows
                results["minion_startup"] = jobprofile.startup(text)
        (lab.workdir / "job-profile.txt").write_text("\n".join(tables))
        results.save()
        lab.say(f"minion start-up {results.get('minion_startup')}; "
                f"job profile in {lab.workdir / 'job-profile.txt'}")
