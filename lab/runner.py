"""Boot the Xen lab and drive it with Salt, as a user would (called by lab/run).

A salt-master on this machine's loopback (ports 14505/14506, its files in the
run folder) serves the repo's ``salt/`` state tree and the lab's pillar
(``lab/pillar``; ``master.py``).  QEMU boots two Xen hosts side by side from
throw-away overlays of the cached image (``dom0vm.Dom0VM``: KVM when it
really works here, software emulation otherwise): ``labdom0-a``, also the
NFS server, and ``labdom0-b``, their bridges one L2 network over a UDP
socket link between the two QEMU processes (``dom0s.py``).  Each dom0's
minion reaches the master through QEMU user networking, restricted to the
master's two ports (``lab/relay``).  Then the steps, in this order, each
with the real CLI (``saltcli.py``):

1. ``salt-run state.orchestrate orch.xen_nfsroot``: exports, guest fstabs,
   xl configs, ``xl create`` (``onehost.py``, as are 2 and 4 to 6);
2. ``nfsguest``'s console (xenconsoled's log, read through Salt) shows
   userspace running from its NFS root, and the file it wrote on that root
   is seen on the server;
3. each boot of step 1 proven (``proofs.py``): ``nfsguest``'s state quotes
   its console's root mount and the NFS server confirms it; ``stockkernel``
   (the Debian kernel, no initramfs) is refused before anything is written;
   ``noexport`` (its root not exported to it) boots and is caught failing
   to mount, its console quoted;
4. a second highstate of ``labdom0-a`` changes nothing: it boots neither
   the refused guest nor the one that failed (it reports the failure);
5. the event ``xen_nfsroot/guest/boot`` boots ``nfsguest2`` through the
   reactor; a forged event for an undefined guest boots nothing;
6. ``xen_guest.absent`` and ``nfs_export.absent`` remove ``nfsguest2`` and
   its export; ``exportfs -v`` no longer lists it;
7. to 10., two hosts (``migration.py``): ``nfsguest`` runs on ``labdom0-a``;
   ``orch.xen_nfsroot_migrate`` moves it live to ``labdom0-b`` (its own
   counter and uptime go on); a highstate of ``labdom0-a`` does not boot it
   again and a forced boot there is refused; evacuating ``labdom0-b``
   brings it back.

Every wait follows a sign of progress (the dom0s' consoles, the minions'
events on the master's bus, a command's output; ``progress.wait_until``) and
gives up only when nothing moved for a long while, saying what it saw last.
Facts of a dom0 are read several at a time, in one ``cmd.run_all``
(``facts``).

Every command's real output is kept in ``RUN/out/`` (``NN-label.out`` /
``.err`` / ``.rc``), along with each dom0's serial console
(``RUN/DOM0/console.log``), the master's log and event bus
(``RUN/master.log``, ``RUN/events.log``) and ``RUN/results.json`` (phase
times, accelerator, the guests' root mount lines, the boots' proofs, the
migrations; ``results.py``).  The e2e test reads those files.
"""

import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import dom0s
import master
import migration
import onehost
import proofs
import saltcli
from dom0s import MINION
from guests import BOOT_TAG, EVENT_GUEST, GUEST, REFUSED_GUEST, UNMOUNTED_GUEST
from paths import CACHE_DIR, LAB
from progress import CEILING, IDLE, WaitError, wait_until
from results import Results, loadavg


class LabError(Exception):
    """A step failed: the message says what was expected and what was seen."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def _interrupt(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


class Lab:
    """One run: its folder, its processes, and the parts that drive it:
    ``master`` (master.py), ``cli`` (saltcli.py), ``vms`` and ``dom0s``
    (dom0vm.py, dom0s.py), ``results`` (results.py); the steps are
    onehost.py, proofs.py and migration.py."""

    def __init__(self, image, workdir, build_seconds, options):
        self.image = pathlib.Path(image)
        self.workdir = pathlib.Path(workdir)
        self.options = options
        self.out = self.workdir / "out"
        self.relay = LAB / "relay"
        self.start = time.monotonic()
        self.procs = {}
        self.failures = []
        self.reached = False
        self.events = None
        self.results = Results(self.workdir, self.image, build_seconds, dom0s.DOM0S)
        self.master = master.Master(self, LabError)
        self.cli = saltcli.SaltCLI(self, LabError)
        self.vms = dom0s.machines(self, options)
        self.dom0 = self.vms[0]
        self.dom0s = dom0s.Dom0s(self, LabError)
        self.logfile = None

    # -- output ---------------------------------------------------------------
    def elapsed(self):
        return time.monotonic() - self.start

    def say(self, message):
        line = f"[{self.elapsed():7.1f}s] {message}"
        print(line, flush=True)
        if self.logfile:
            self.logfile.write(line + "\n")
            self.logfile.flush()

    def specimen(self, name, text):
        """Keep a real command output (RUN/specimens; ``--save-specimens``
        copies them to lab/specimens)."""
        folder = self.workdir / "specimens"
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(text)

    def wait(self, what, done, signs, limits=(IDLE, CEILING)):
        try:
            return wait_until(what, done, signs, limits)
        except WaitError as err:
            raise LabError(str(err)) from err

    # -- processes ------------------------------------------------------------
    @staticmethod
    def kill(proc):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop(self):
        for vm in self.vms:
            vm.stop()
        for name, proc in list(self.procs.items()):
            self.say(f"stopping {name} (process group {proc.pid})")
            self.kill(proc)
            # The group leader is gone: make sure no member of its group lingers.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.procs.pop(name, None)
        if self.events:
            self.events.stop()

    # -- the whole run --------------------------------------------------------
    def step(self, number, title, function, fatal=False):
        """Run one step; a failed step is reported and the next one still runs
        (unless ``fatal``: nothing after it can work)."""
        self.say(f"step {number}: {title}")
        began = time.monotonic()
        error = None
        try:
            function()
        except LabError as err:
            error = str(err)
        took = round(time.monotonic() - began, 1)
        self.results.step(number, title, took, error)
        if error is None:
            self.say(f"step {number} passed in {took} s")
            return
        self.failures.append(f"step {number} ({title}): {error}")
        self.say(f"step {number} FAILED after {took} s: {error}")
        if fatal:
            raise LabError(f"step {number} failed: the later steps need it")

    def hold(self):
        """Keep QEMU and the master running until Ctrl-C (lab/run --keep-running)."""
        conf_dir = self.master.conf_dir
        self.say("lab kept running; Ctrl-C stops it.  Drive it with:")
        self.say(f"  {saltcli.BIN / 'salt'} -c {conf_dir} '*' test.ping")
        self.say(f"  {saltcli.BIN / 'salt-run'} -c {conf_dir} state.orchestrate orch.xen_nfsroot")
        for vm in self.vms:
            self.say(f"  tail -f {vm.console_path}")
        while all(vm.alive() for vm in self.vms):
            time.sleep(1)
        raise LabError("QEMU exited")

    def run(self, boot_only=False):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(exist_ok=True)
        self.logfile = open(self.workdir / "lab.log", "a")
        self.say(f"run folder {self.workdir}; load average {loadavg()}")
        self.master.start()
        self.dom0s.boot()
        self.dom0s.wait_minions()
        if boot_only:
            self.dom0s.sync()
            return
        one = onehost.Steps(self, LabError)
        one.prepare()
        self.step(1, "salt-run state.orchestrate orch.xen_nfsroot", one.step_orchestrate,
                  fatal=True)
        self.step(2, f"{GUEST} reaches userspace on its NFS root", one.step_guest_up)
        self.step(3, f"proven boots: {GUEST}'s root seen mounted, {REFUSED_GUEST} refused, "
                     f"{UNMOUNTED_GUEST}'s failed mount caught",
                  proofs.Proofs(self, LabError, one.orchestration).step)
        self.step(4, f"second highstate of {MINION} changes nothing, boots no failed guest again",
                  one.step_second_highstate)
        self.step(5, f"event {BOOT_TAG} boots {EVENT_GUEST}; a forged one nothing",
                  one.step_event_boot)
        self.step(6, f"xen_guest.absent + nfs_export.absent remove {EVENT_GUEST}",
                  one.step_absent)
        two = migration.Steps(self, LabError)
        home, other = self.dom0.minion, self.vms[1].minion
        self.step(7, f"{migration.GUEST} runs on {home}", two.step_runs_on_home)
        self.step(8, f"{migration.MIGRATE_ORCH} moves {migration.GUEST} live to {other}",
                  two.step_migrate)
        self.step(9, f"a highstate of {home} does not boot {migration.GUEST} again; a forced "
                     "boot is refused", two.step_never_twice)
        self.step(10, f"evacuating {other} brings {migration.GUEST} back to {home}",
                  two.step_evacuate)
        self.results.timing("whole_run", self.elapsed() + self.results["timings"]["build"])
        self.cli.round_trips(self.options.round_trips)
        if self.failures:
            raise LabError(f"{len(self.failures)} step(s) failed:\n" + "\n".join(self.failures))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--build-seconds", default="0")
    parser.add_argument("--workdir")
    parser.add_argument("--boot-only", action="store_true")
    parser.add_argument("--save-specimens", action="store_true")
    parser.add_argument("--keep-running", action="store_true")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"),
                        default=os.environ.get("LAB_ACCEL", "auto"))
    # One vCPU: measured faster for everything after the boot, and the only
    # setting that kept booting beside a CPU hog (lab/README.md).
    parser.add_argument("--smp", type=int, default=1)
    parser.add_argument("--dom0-vcpus", type=int, default=1)
    parser.add_argument("--bootscrub", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--memory", type=int, default=3072)
    parser.add_argument("--dom0-mem", type=int, default=1024)
    parser.add_argument("--round-trips", type=int, default=3,
                        help="test.ping and cmd.run_all calls timed after the steps")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    workdir = args.workdir or CACHE_DIR / "lab" / time.strftime("run-%Y%m%d-%H%M%S")
    lab = Lab(args.image, workdir, args.build_seconds, args)
    # Ctrl-C even when started in the background by a non-interactive shell
    # (which leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    ok = False
    try:
        try:
            lab.run(boot_only=args.boot_only)
            ok = True
        except LabError as err:
            lab.say(f"FAILED: {err}")
        lab.dom0s.collect()
        if ok and args.keep_running:
            lab.hold()
    except LabError as err:
        ok = False
        lab.say(f"FAILED: {err}")
    except (KeyboardInterrupt, Interrupted) as err:
        lab.say(f"interrupted ({type(err).__name__} {err})")
    finally:
        lab.stop()
        lab.say("QEMU and salt-master stopped")
    if ok and args.save_specimens:
        target = LAB / "specimens"
        target.mkdir(exist_ok=True)
        for path in sorted((lab.workdir / "specimens").glob("*")):
            shutil.copy(path, target / path.name)
        lab.say(f"specimens copied to {target}")
    lab.results.summary(ok, lab.elapsed())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
