"""Boot the Xen lab and drive it with Salt, as a user would (called by lab/run).

A salt-master on this machine's loopback (ports 14505/14506, its files in the
run folder) serves the repo's ``salt/`` state tree and the lab's pillar
(``lab/pillar``).  QEMU boots two Xen hosts side by side from throw-away
overlays of the cached image (``dom0vm.Dom0VM``: KVM when it really works
here, software emulation otherwise): ``labdom0-a``, also the NFS server, and
``labdom0-b``, their bridges one L2 network over a UDP socket link between
the two QEMU processes.  Each dom0's minion reaches the master through QEMU
user networking, restricted to the master's two ports (``lab/relay``).
Then the steps, each with the real CLI:

1. ``salt-run state.orchestrate orch.xen_nfsroot``: exports, guest fstabs,
   xl configs, ``xl create``, each boot proven: ``nfsguest``'s state quotes
   its console's root mount and the NFS server confirms it; ``stockkernel``
   (the Debian kernel, no initramfs) is refused before anything is written;
   ``noexport`` (its root not exported to it) boots and is caught failing
   to mount, its console quoted;
2. ``nfsguest``'s console (xenconsoled's log, read through Salt) shows
   userspace running from its NFS root, and the file it wrote on that root
   is seen on the server;
3. a second highstate of ``labdom0-a`` changes nothing: it boots neither
   the refused guest nor the one that failed (it reports the failure);
4. the event ``xen_nfsroot/guest/boot`` boots ``nfsguest2`` through the
   reactor; a forged event for an undefined guest boots nothing;
5. ``xen_guest.absent`` and ``nfs_export.absent`` remove ``nfsguest2`` and
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
migrations).  The e2e test reads those files.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import facts
import jobprofile
import migration
import proofs
import salt.config
import saltout
import yaml
from dom0vm import Dom0VM, KvmVerdicts
from progress import EventLog, Sign, WaitError, wait_until

LAB = pathlib.Path(__file__).resolve().parent
REPO = LAB.parent
CACHE_DIR = pathlib.Path(os.environ.get("XEN_NFSROOT_CACHE", "/var/cache/xen-nfsroot"))
DOM0S_FILE = LAB / "image" / "dom0" / "etc" / "lab" / "dom0s"
PUBLISH_PORT = 14505
RET_PORT = 14506
# UDP ports of the L2 link between the dom0s' QEMU processes (one per dom0).
LINK_PORTS = (14507, 14508)
GUEST = "nfsguest"
EVENT_GUEST = "nfsguest2"
FORGED_GUEST = "nosuchguest"
# Issue 13's two failures: a kernel refused before the boot, a root mount
# caught failing after it.
REFUSED_GUEST = "stockkernel"
UNMOUNTED_GUEST = "noexport"
SERVER_ADDRESS = "10.99.0.1"
# The boot steps that fail in step 1's orchestration (and the mount checks
# that require them).
EXPECTED_FAILURES = {f"xen_nfsroot-{step}-{guest}" for step in ("boot", "mounted")
                     for guest in (REFUSED_GUEST, UNMOUNTED_GUEST)}
EXPORTS_FILE = "/etc/exports.d/xen-nfsroot.exports"
UNRELATED_EXPORT = "/srv/unrelated"
MARKER = "XEN-NFSROOT-GUEST-UP"
ROOT_MARKER = "XEN-NFSROOT-GUEST-ROOT"
BOOT_TAG = "xen_nfsroot/guest/boot"
# A guest that panics, or whose initramfs gives up and opens its shell, will
# never reach userspace (lab/specimens/console-*.log).
GUEST_FAILURES = re.compile(r"Kernel panic - not syncing|\(initramfs\) ")

# How long a wait lets nothing move (no console line, no event from the
# minion, no output) before it gives up, and the most any one wait may take.
# Both are far above what this machine needs even with a CPU hog beside the
# lab (the longest silence measured is about a minute): a machine 5x slower
# still passes.
IDLE = 900
CEILING = 3600
# ``salt -t``: how long the CLI waits for a return before it asks the minion
# (saltutil.find_job) whether the job still runs; it keeps waiting as long as
# the answer is yes.  gather_job_timeout: how long it waits for that answer.
JOB_TIMEOUT = 120
GATHER_JOB_TIMEOUT = 300


class LabError(Exception):
    """A step failed: the message says what was expected and what was seen."""


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


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def _interrupt(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


class Lab:
    def __init__(self, image, workdir, build_seconds, options):
        self.image = pathlib.Path(image)
        self.workdir = pathlib.Path(workdir)
        self.options = options
        self.out = self.workdir / "out"
        self.conf_dir = self.workdir / "master" / "etc"
        self.bin = pathlib.Path(sys.executable).parent
        self.relay = LAB / "relay"
        self.start = time.monotonic()
        self.procs = {}
        self.count = 0
        self.failures = []
        self.xl_create_at = None
        self.domains_before_event = None
        self.reached = False
        self.events = None
        self.vms = []
        for index, (minion, _address, _role) in enumerate(DOM0S):
            link = {"port": LINK_PORTS[index], "peer": LINK_PORTS[1 - index],
                    "mac": f"52:54:00:99:00:{index + 1:02x}"}
            self.vms.append(Dom0VM(self, minion, self.workdir / minion, options, link))
        self.dom0 = self.vms[0]
        self.addresses = {minion: address for minion, address, _ in DOM0S}
        self.orchestration = {}
        self.results = {
            "workdir": str(self.workdir),
            "image": str(self.image),
            "loadavg_start": _loadavg(),
            "timings": {"build": float(build_seconds)},
            "salt_calls": [],
            "steps": {},
            "dom0s": {minion: {"address": address, "role": role}
                      for minion, address, role in DOM0S},
        }
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

    def save_results(self):
        (self.workdir / "results.json").write_text(json.dumps(self.results, indent=2) + "\n")

    def timing(self, key, seconds):
        self.results["timings"][key] = round(seconds, 1)

    @staticmethod
    def forwards():
        """(port in the dom0, port on the host's loopback) for each guestfwd."""
        return ((4505, PUBLISH_PORT), (4506, RET_PORT),
                (PUBLISH_PORT, PUBLISH_PORT), (RET_PORT, RET_PORT))

    # -- processes ------------------------------------------------------------
    def command(self, label, argv, signs=(), ceiling=CEILING, check=True):
        """Run ``argv``, keep its output in RUN/out, return (rc, stdout, stderr).

        It may run as long as something moves: its own output or one of
        ``signs``; it is stopped after IDLE s of stillness or at ``ceiling``.
        """
        self.count += 1
        stem = self.out / f"{self.count:02d}-{label}"
        stem.with_suffix(".cmd").write_text(" ".join(str(a) for a in argv) + "\n")
        out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
        began = time.monotonic()
        with open(out, "w") as stdout, open(err, "w") as stderr:
            proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
        self.procs[stem.name] = proc
        try:
            wait_until(f"{label} ({pathlib.Path(str(argv[0])).name})",
                       proc.poll, [_file_sign(out), _file_sign(err), *signs],
                       (IDLE, ceiling), interval=0.1)
        except WaitError as exc:
            self.kill(proc)
            raise LabError(str(exc)) from exc
        finally:
            self.procs.pop(stem.name, None)
        took = time.monotonic() - began
        stem.with_suffix(".rc").write_text(f"{proc.returncode}\n")
        self.results["salt_calls"].append(
            {"label": label, "argv0": pathlib.Path(str(argv[0])).name,
             "seconds": round(took, 2), "loadavg": _loadavg()})
        stdout, stderr = out.read_text(), err.read_text()
        if check and proc.returncode != 0:
            raise LabError(
                f"{label}: exit status {proc.returncode}\n{_tail(stdout)}\n{_tail(stderr)}"
            )
        return proc.returncode, stdout, stderr

    def progress_signs(self, since, vms=None):
        signs = []
        for vm in vms or self.vms:
            signs += [self.events.sign(vm.minion, since), vm.console.sign()]
        return signs

    def vm(self, minion):
        return next(vm for vm in self.vms if vm.minion == minion)

    def salt(self, label, *args, check=True, ceiling=CEILING, vm=None):
        """``salt MINION ARGS`` with JSON output: the minion's return (the
        first dom0's unless ``vm``)."""
        vm = vm or self.dom0
        answers = self.salt_all(label, *args, check=check, ceiling=ceiling, vms=[vm])
        return None if answers is None else answers.get(vm.minion)

    def salt_all(self, label, *args, check=True, ceiling=CEILING, vms=None):
        """``salt -L MINION,... ARGS`` (every dom0 unless ``vms``), one job for
        all: {minion: return}."""
        vms = vms or self.vms
        target = [vms[0].minion] if len(vms) == 1 else ["-L", ",".join(v.minion for v in vms)]
        # Not --static: with it the CLI runs in batch mode, which first pings
        # every target (one more job for the minion per command).
        argv = [self.bin / "salt", "-c", self.conf_dir, "--out", "json",
                "-t", str(JOB_TIMEOUT), *target, *args]
        rc, stdout, _ = self.command(label, argv, self.progress_signs(time.monotonic(), vms),
                                     ceiling=ceiling, check=check)
        try:
            answer = saltout.objects(stdout)
        except ValueError as exc:
            raise LabError(f"{label}: output is not JSON:\n{_tail(stdout)}") from exc
        missing = [v.minion for v in vms if v.minion not in answer]
        if missing:
            if check:
                raise LabError(f"{label}: {', '.join(missing)} did not answer (exit status {rc})")
            if len(vms) == 1:
                return None
        return answer

    def salt_run(self, label, *args, check=True):
        argv = [self.bin / "salt-run", "-c", self.conf_dir, "--out", "json", *args]
        rc, stdout, _ = self.command(label, argv, self.progress_signs(time.monotonic()),
                                     check=check)
        try:
            return rc, json.loads(stdout) if stdout.strip() else None
        except ValueError:
            return rc, stdout

    def facts(self, label, wanted, vm=None):
        """Several facts of a dom0 in one cmd.run_all: {name: {stdout, stderr, retcode}}."""
        ret = self.salt(label, "cmd.run_all", facts.script(wanted), "python_shell=True", vm=vm)
        if not isinstance(ret, dict) or ret.get("retcode") != 0:
            raise LabError(f"{label}: unexpected answer {ret!r}")
        try:
            return facts.parse(ret["stdout"])
        except ValueError as exc:
            raise LabError(f"{label}: {exc}") from exc

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

    # -- the master -----------------------------------------------------------
    def master_config(self):
        root = self.workdir / "master"
        config = {
            "id": "labmaster",
            # Salt puts root_dir in front of every path not under it already.
            "root_dir": str(self.workdir),
            "pki_dir": str(root / "pki"),
            "cachedir": str(root / "cache"),
            "sock_dir": str(root / "sock"),
            "pidfile": str(root / "salt-master.pid"),
            "log_file": str(self.workdir / "master.log"),
            "key_logfile": str(root / "key.log"),
            "log_level": "warning",
            "log_level_logfile": "info",
            "interface": "127.0.0.1",
            "ipv6": False,
            "publish_port": PUBLISH_PORT,
            "ret_port": RET_PORT,
            "user": "root",
            "auto_accept": False,
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(LAB / "pillar")]},
            "timeout": JOB_TIMEOUT,
            # How long the CLI (and the orchestration's salt.state) waits for
            # the minion to say whether a job still runs (saltutil.find_job).
            "gather_job_timeout": GATHER_JOB_TIMEOUT,
            # Read by the lab's pillar: the guests' Debian kernel, by its name.
            "lab_kernel_release": self.kernel_release(),
        }
        # The formula's reactor snippet, less its salt/minion/*/start entry:
        # that one would orchestrate the autostart guests as soon as the dom0's
        # minion starts, racing step 1, which is the orchestration as a user
        # runs it.
        reactor_conf = REPO / "salt" / "reactor" / "master.conf"
        if reactor_conf.exists():
            snippet = yaml.safe_load(reactor_conf.read_text()) or {}
            config["reactor"] = [
                entry for entry in snippet.get("reactor") or [] if BOOT_TAG in entry
            ]
        self.results["reactor"] = config.get("reactor")
        return config

    def kernel_release(self):
        for line in (self.image / "manifest").read_text().splitlines():
            if line.startswith("kernel "):
                return line.split()[1]
        raise LabError(f"no kernel release in {self.image / 'manifest'}")

    def write_master_config(self):
        root = self.workdir / "master"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "master").write_text(
            yaml.safe_dump(self.master_config(), default_flow_style=False))
        # The dom0's key is made with its image: accept exactly that key.
        accepted = root / "pki" / "minions"
        accepted.mkdir(parents=True, exist_ok=True)
        for vm in self.vms:
            for state in ("minions_pre", "minions_rejected", "minions_denied"):
                (root / "pki" / state / vm.minion).unlink(missing_ok=True)
            shutil.copy(self.image / f"minion-{vm.minion}.pub", accepted / vm.minion)

    def start_master(self):
        for port in (PUBLISH_PORT, RET_PORT):
            if _listening(port):
                raise LabError(f"port {port} on 127.0.0.1 is in use: another lab running?")
        for port in LINK_PORTS:
            if not _udp_free(port):
                raise LabError(f"UDP port {port} on 127.0.0.1 is in use: another lab running?")
        self.write_master_config()
        log = open(self.workdir / "master.stdout", "w")
        master = subprocess.Popen(
            [self.bin / "salt-master", "-c", self.conf_dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs["salt-master"] = master

        def listening():
            if master.poll() is not None:
                raise LabError(f"salt-master exited: see {self.workdir / 'master.stdout'}")
            return True if _listening(PUBLISH_PORT) and _listening(RET_PORT) else None
        self.wait("salt-master listening", listening,
                  [_file_sign(self.workdir / "master.log"),
                   _file_sign(self.workdir / "master.stdout")])
        opts = salt.config.master_config(str(self.conf_dir / "master"))
        self.events = EventLog(opts, self.workdir / "events.log")
        self.events.start()
        self.events.connected.wait(60)
        if self.events.error or not self.events.connected.is_set():
            raise LabError(f"cannot listen to the master's event bus: {self.events.error}")
        self.say(f"salt-master listening on 127.0.0.1:{PUBLISH_PORT}/{RET_PORT}; "
                 "its event bus recorded in events.log")

    def wait(self, what, done, signs, limits=(IDLE, CEILING)):
        try:
            return wait_until(what, done, signs, limits)
        except WaitError as err:
            raise LabError(str(err)) from err

    # -- the dom0 -------------------------------------------------------------
    def boot(self):
        """Both dom0s, side by side (the KVM probe, when one is needed, on
        the first: its verdict serves the second)."""
        verdicts = KvmVerdicts(CACHE_DIR / "lab" / "kvm-verdicts.json", self.image / "xen.elf")
        for vm in self.vms:
            try:
                vm.start(verdicts)
            except WaitError as err:
                raise LabError(str(err)) from err
        vm = self.dom0
        self.results["accelerator"] = vm.accelerator
        self.results["accelerator_note"] = vm.accelerator_note
        if vm.kvm_probe_seconds is not None:
            self.timing("kvm_probe", vm.kvm_probe_seconds)
        self.results["qemu"] = {"smp": self.options.smp, "memory_mb": self.options.memory,
                                "xen_cmdline": vm.xen_cmdline(),
                                "l2_link": {v.minion: v.link for v in self.vms}}
        self.say(f"QEMU started {len(self.vms)} times: Xen 4.17 + Debian dom0 "
                 f"{', '.join(v.minion for v in self.vms)} (accelerator: {vm.accelerator}; "
                 f"{vm.accelerator_note}); Xen: {vm.xen_cmdline()}")

    def wait_minion(self):
        """Every dom0 booted, its minion started (its start event on the
        master's bus), then one test.ping to all."""
        for vm in self.vms:
            try:
                vm.wait_console("minion_started", (IDLE, CEILING))
            except WaitError as err:
                raise LabError(str(err)) from err
            self.say(f"{vm.minion}: dom0 booted, salt-minion started "
                     f"({vm.console.milestones['minion_started']:.1f} s after its QEMU start)")
            start_tag = f"salt/minion/{vm.minion}/start"

            def started(vm=vm, start_tag=start_tag):
                found = self.events.since(vm.started, vm.minion, start_tag)
                return found[0] if found else None
            event = self.wait(f"{vm.minion}'s start event ({start_tag})", started,
                              self.progress_signs(vm.started, [vm]))
            self.record_minion_events(vm, event)
        began = time.monotonic()
        answers = self.salt_all("test-ping", "test.ping")
        wrong = {minion: ret for minion, ret in answers.items() if ret is not True}
        if wrong:
            raise LabError(f"test.ping answered {wrong}")
        self.reached = True
        self.timing("test_ping", time.monotonic() - began)
        vm = self.dom0
        self.timing("minion_ready_after_qemu_start", vm.since_start())
        self.timing("qemu_start_to_minion_answers", vm.since_start())
        for other in self.vms:
            self.results["dom0s"][other.minion]["timings"]["qemu_start_to_minion_answers"] = (
                round(other.since_start(), 1))
        self.say(f"{', '.join(answers)} answer test.ping ({vm.since_start():.1f} s after "
                 "QEMU start)")

    def record_minion_events(self, vm, start_event):
        timings = {f"qemu_start_to_{name}": at for name, at in vm.console.milestones.items()}
        auth = [e for e in self.events.since(vm.started, vm.minion, "salt/auth")
                if e.data.get("result") is True]
        if auth:
            timings["qemu_start_to_minion_authenticated"] = round(auth[0].at - vm.started, 1)
        timings["qemu_start_to_minion_start_event"] = round(start_event.at - vm.started, 1)
        self.results["dom0s"][vm.minion]["timings"] = timings
        if vm is self.dom0:
            self.results["timings"].update(timings)
        self.say(f"{vm.minion} authenticated and fired {start_event.tag} "
                 f"({start_event.at - vm.started:.1f} s after its QEMU start)")

    # -- helpers of the steps -------------------------------------------------
    def wait_guest_console(self, guest, since, once_up):
        """Poll the guest's console log and xl list, one Salt call per poll.

        ``once_up`` ({name: command}) are facts read in the same call once
        the console shows the guest's root line, so the poll that sees the
        guest up also brings what the step checks next.
        """
        path = f"/var/log/xen/console/guest-{guest}.log"
        seen = {"text": "", "domains": ""}
        wanted = {"console": f"cat {path}", "xl-list": "xl list"}
        wanted.update({name: f"grep -q {ROOT_MARKER} {path} && {{ {command} ; }}"
                       for name, command in once_up.items()})

        def done():
            found = self.facts(f"console-{guest}", wanted)
            seen["text"] = found["console"]["stdout"] if found["console"]["retcode"] == 0 else ""
            seen["domains"] = found["xl-list"]["stdout"]
            text = seen["text"]
            if MARKER in text and ROOT_MARKER in text.split(MARKER, 1)[1]:
                return text, time.monotonic() - since, found
            failed = GUEST_FAILURES.search(text)
            if failed:
                raise LabError(f"{guest} will not boot: {failed.group(0)!r} on {path}:\n"
                               f"{_tail(text)}\nxl list:\n{seen['domains']}")
            time.sleep(2)
            return None
        console = Sign(f"{guest}'s console", lambda: len(seen["text"]),
                       lambda: f"{len(seen['text'])} characters, ending "
                               f"{_tail(seen['text'], 2)!r}; xl list {seen['domains']!r}")
        return self.wait(f"{MARKER} {guest} on {path}", done, [console])

    def check_guest_up(self, guest, export, since, once_up):
        """The guest's console and the file it wrote, checked: its root line
        and the facts ``once_up`` read in the poll that saw it up."""
        once_up = {"guest-was-here": f"cat {export}/guest-was-here", **once_up}
        text, seen, found = self.wait_guest_console(guest, since, once_up)
        up = next(line for line in text.splitlines() if MARKER in line)
        root_line = next(
            line.split(ROOT_MARKER, 1)[1].strip()
            for line in text.splitlines() if ROOT_MARKER in line
        )
        expected = f"{SERVER_ADDRESS}:{export} / nfs"
        if not root_line.startswith(expected):
            raise LabError(f"{guest}: root is {root_line!r}, expected {expected} ...")
        self.say(f"{guest} console: {up.strip()} ({seen:.1f} s)")
        self.say(f"{guest} root: {root_line}")
        written = found["guest-was-here"]
        if written["retcode"] != 0 or written["stdout"].splitlines() != [guest, root_line]:
            raise LabError(f"{export}/guest-was-here on the server: {written!r}")
        self.say(f"server sees {export}/guest-was-here: {guest} | {root_line}")
        return root_line, up, seen, found

    # -- the steps ----------------------------------------------------------------
    def specimen(self, name, text):
        """Keep a real command output."""
        folder = self.workdir / "specimens"
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(text)

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
        self.results["steps"][str(number)] = {
            "title": title, "seconds": took, "ok": error is None, "error": error,
        }
        self.results["timings"][f"step_{number}"] = took
        self.save_results()
        if error is None:
            self.say(f"step {number} passed in {took} s")
            return
        self.failures.append(f"step {number} ({title}): {error}")
        self.say(f"step {number} FAILED after {took} s: {error}")
        if fatal:
            raise LabError(f"step {number} failed: the later steps need it")

    def sync(self):
        """Bring the formula's modules to every dom0 (one job for all) and ask
        them what they see."""
        began = time.monotonic()
        # saltenv=base: the lab's file_roots have that one environment.  Without
        # it the minion first builds a whole highstate (every loader, the top
        # file rendered) only to learn which environments the top file names.
        synced_all = self.salt_all("sync-all", "saltutil.sync_all", "saltenv=base")
        self.timing("sync_all", time.monotonic() - began)
        wanted = {"exportfs", "xm", "xen_nfsroot"}
        lists = False
        for minion, ret in synced_all.items():
            if not isinstance(ret, dict):
                raise LabError(f"saltutil.sync_all on {minion}: {ret!r}")
            self.say(f"{minion}: saltutil.sync_all: modules {ret.get('modules')}, "
                     f"states {ret.get('states')}")
            synced = {name.split(".", 1)[1] for name in ret.get("modules") or []}
            lists = lists or not wanted <= synced
        self.say(f"saltutil.sync_all: {self.results['timings']['sync_all']} s")
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
        every = self.compound("formula-modules", calls, vms=self.vms)
        self.timing("formula_modules", time.monotonic() - began)
        for minion, answers in every.items():
            synced = {name.split(".", 1)[1] for name in synced_all[minion].get("modules") or []}
            modules = set(answers.get("sys.list_modules") or []) | synced
            missing = sorted(wanted - modules)
            if missing:
                raise LabError(f"{minion} has no {missing} execution module after sync_all")
            if answers.get("mine.update") is not True:
                raise LabError(f"{minion}: mine.update: {answers.get('mine.update')!r}")
            functions = ("xm.toolstack", "xm.list_domains") + (
                ("exportfs.list_active",) if minion == MINION else ())
            for function in functions:
                self.say(f"{minion}: {function}: {json.dumps(answers.get(function))[:300]}")
                if isinstance(answers.get(function), str) and (
                        "is not available" in answers[function]):
                    raise LabError(f"{minion}: {function}: {answers[function]}")
        return every[MINION]

    def compound(self, label, calls, vm=None, vms=None, check=True):
        """One job running several functions ((function, *args) each):
        {function: return} (of the first dom0 unless ``vm``), or with
        ``vms`` one job on each: {minion: {function: return}}.  ``check``:
        the salt CLI's exit status must be 0 (a failed state makes it 1)."""
        argv = [",".join(call[0] for call in calls)]
        for index, call in enumerate(calls):
            argv += (["@@"] if index else []) + list(call[1:])
        if vms:
            every = self.salt_all(label, "--args-separator", "@@", *argv, vms=vms, check=check)
            wrong = {m: a for m, a in every.items() if not isinstance(a, dict)}
            if wrong:
                raise LabError(f"{label}: {wrong!r}")
            return every
        answers = self.salt(label, "--args-separator", "@@", *argv, vm=vm, check=check)
        if not isinstance(answers, dict):
            raise LabError(f"{label}: {answers!r}")
        return answers

    def prepare(self):
        answers = self.sync()
        missing = [name for name in ("orch/xen_nfsroot.sls", "top.sls")
                   if not (REPO / "salt" / name).exists()]
        if missing:
            raise LabError(f"the formula's state tree is incomplete: no salt/{missing}")
        if not self.results.get("reactor"):
            raise LabError("no reactor configuration in salt/reactor/master.conf")
        before = _run_all_facts(answers.get("cmd.run_all"))
        if before is None:
            raise LabError(f"the dom0's xl list and exportfs -v: {answers.get('cmd.run_all')!r}")
        self.specimen("xl-list-dom0-only.txt", _ok(before, "xl-list"))
        self.specimen("exportfs-v-before.txt", _ok(before, "exportfs-v"))

    def step_orchestrate(self):
        began = time.monotonic()
        rc, answer = self.salt_run("orchestrate", "state.orchestrate", "orch.xen_nfsroot",
                                   check=False)
        self.timing("orchestrate", time.monotonic() - began)
        self.xl_create_at = began
        states = saltout.orch_states(answer)
        if not states:
            raise LabError(f"orchestrate: exit status {rc}; no state returned: "
                           f"{str(answer)[:300]}")
        self.orchestration = states
        # Issue 13's two failures fail their boot (and so the mount check
        # that requires it); nothing else may fail.
        failed = {key for key, ret in states.items() if ret.get("result") is not True}
        unexpected, missing = sorted(failed - EXPECTED_FAILURES), sorted(
            EXPECTED_FAILURES - failed)
        if unexpected or missing:
            raise LabError(f"orchestrate: exit status {rc}; failed unexpectedly: "
                           f"{[saltout.brief(states[k]) for k in unexpected]}; expected to fail "
                           f"but did not: {missing}")
        self.say(f"orchestrate: {len(states)} states, all True but the expected failures "
                 f"{sorted(failed)} (exit status {rc})")
        found = self.facts("after-orchestrate", {
            "exportfs-v": "exportfs -v", "exports-drop-in": f"cat {EXPORTS_FILE}",
            "etc-exports": "cat /etc/exports", "guest-fstab": "cat /srv/xen/guest/etc/fstab",
            "xl-config": f"cat /etc/xen/{GUEST}.cfg", "xl-list": "xl list"})
        exports = _ok(found, "exportfs-v")
        for path, client in (("/srv/xen/guest", "10.99.0.2"), (UNRELATED_EXPORT, "10.99.0.200")):
            if not re.search(rf"^{re.escape(path)}\s+{re.escape(client)}\(", exports, re.M):
                raise LabError(f"exportfs -v does not list {path} for {client}:\n{exports}")
        self.say("exportfs -v (kernel nfsd): " + " | ".join(exports.split()))
        drop_in = found["exports-drop-in"]["stdout"]
        if not re.search(r"^/srv/xen/guest\s+10\.99\.0\.2\(", drop_in, re.M):
            raise LabError(f"{EXPORTS_FILE} has no export of /srv/xen/guest:\n{drop_in}")
        seed = (LAB / "image" / "dom0" / "etc" / "exports").read_text()
        if _ok(found, "etc-exports") != seed:
            raise LabError(f"/etc/exports changed by the formula:\n{found['etc-exports']}")
        self.say(f"{EXPORTS_FILE}: " + " | ".join(
            " ".join(line.split()) for line in drop_in.splitlines() if line.strip()))
        fstab = found["guest-fstab"]["stdout"]
        if not re.search(r"^/dev/nfs\s+/\s+nfs", fstab, re.M) or not re.search(
                r"^#.*/dev/sdb2\s+swap", fstab, re.M):
            raise LabError(f"guest fstab not rewritten as expected:\n{fstab}")
        self.say("guest fstab: " + " | ".join(
            " ".join(line.split()) for line in fstab.splitlines() if "/dev/" in line))
        config = found["xl-config"]["stdout"]
        if f"nfsroot={SERVER_ADDRESS}:/srv/xen/guest" not in config:
            raise LabError(f"/etc/xen/{GUEST}.cfg: {config!r}")
        domains = _domains(_ok(found, "xl-list"))
        if GUEST not in domains:
            raise LabError(f"{GUEST} is not running after orchestrate: {domains}")
        self.say(f"xl list: {domains}")

    def step_guest_up(self):
        if self.xl_create_at is None:
            raise LabError("step 1 did not pass")
        root_line, up, seen, found = self.check_guest_up(
            GUEST, "/srv/xen/guest", self.xl_create_at,
            {"xl-list-l": "xl list -l", "exportfs-v": "exportfs -v"})
        self.results["guest"] = GUEST
        self.results["root_line"] = root_line
        self.results["marker"] = up.strip()
        self.timing("orchestrate_start_to_guest_userspace", seen)
        self.timing("qemu_start_to_guest_userspace",
                    self.xl_create_at + seen - self.dom0.started)
        self.specimen("xl-list.txt", _ok(found, "xl-list"))
        self.specimen("xl-list-l.json", _ok(found, "xl-list-l"))
        self.specimen("exportfs-v-kernel-nfsd.txt", _ok(found, "exportfs-v"))

    def step_second_highstate(self):
        # One job: the highstate, then (the same job's second function) the
        # domains running before the reactor's step.
        # Two states fail (check=False: the CLI's exit status is then 1).
        answers = self.compound("highstate-again", [
            ("state.apply",),
            ("cmd.run_all", facts.script({"xl-list": "xl list"}), "python_shell=True")],
            check=False)
        self.domains_before_event = _run_all_facts(answers.get("cmd.run_all"))
        ret = answers.get("state.apply")
        if not isinstance(ret, dict) or not ret:
            raise LabError(f"state.apply did not return states: {ret!r}")
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
            raise LabError(f"second highstate: failed {failed} (expected {sorted(again)}), "
                           f"changes {changed}, not as expected: "
                           f"{[by_id.get(k) for k in wrong]}")
        proof = self.results.setdefault("proof", {})
        proof["refused_again"] = by_id[f"xen_nfsroot-guest-{REFUSED_GUEST}"]["comment"]
        proof["caught_again"] = by_id[f"xen_nfsroot-guest-{UNMOUNTED_GUEST}"]["comment"]
        domains = _domains((self.domains_before_event or {}).get("xl-list", {}).get("stdout", ""))
        if REFUSED_GUEST in domains or UNMOUNTED_GUEST in domains:
            raise LabError(f"after the second highstate xl list shows {domains}")
        self.results["second_highstate_states"] = len(ret)
        self.say(f"second highstate: {len(ret)} states, no changes; not booted again: "
                 f"{proof['caught_again']}")

    def reactor_run(self, guest, since):
        """The reactor's orchestration for ``guest``: its return event, once in."""
        for event in self.events.since(since, tag="salt/run/"):
            if (event.tag.endswith("/ret") and event.data.get("fun") == "runner.state.orchestrate"
                    and guest in json.dumps(event.data.get("fun_args"))):
                return event
        return None

    def step_event_boot(self):
        found = self.domains_before_event or self.facts("before-event", {"xl-list": "xl list"})
        before = _domains(_ok(found, "xl-list"))
        if EVENT_GUEST in before:
            raise LabError(f"{EVENT_GUEST} is running before its event: {before}")
        began = time.monotonic()
        self.salt_run("event-forged", "event.send", BOOT_TAG,
                      json.dumps({"guest": FORGED_GUEST}))
        self.salt_run("event-boot", "event.send", BOOT_TAG, json.dumps({"guest": EVENT_GUEST}))
        self.say(f"fired {BOOT_TAG} for {FORGED_GUEST} (undefined), then for {EVENT_GUEST}")
        # Both reactions are orchestrations on the master: wait for their
        # returns (the events of their jobs are the progress), then read the
        # console, so that the polls do not compete with the boot's states.
        for guest in (EVENT_GUEST, FORGED_GUEST):
            run = self.wait(f"the reactor's orchestration for {guest}",
                            lambda guest=guest: self.reactor_run(guest, began),
                            [self.events.sign(since=began)])
            self.say(f"reactor's orchestration for {guest} returned "
                     f"({run.at - began:.1f} s): {json.dumps(run.data.get('return'))[:200]}")
        root_line, _, seen, found = self.check_guest_up(
            EVENT_GUEST, "/srv/xen/guest2", began,
            {"forged-config": f"test -e /etc/xen/{FORGED_GUEST}.cfg; echo $?"})
        self.results["event_guest_root_line"] = root_line
        self.timing("event_to_guest_userspace", seen)
        after = _domains(_ok(found, "xl-list"))
        unexpected = sorted(set(after) - set(before) - {EVENT_GUEST})
        if unexpected or FORGED_GUEST in after:
            raise LabError(f"the forged event booted something: {after}")
        if _ok(found, "forged-config").strip() != "1":
            raise LabError(f"the forged event wrote /etc/xen/{FORGED_GUEST}.cfg")
        self.say(f"xl list: {after} (nothing for {FORGED_GUEST})")

    def step_absent(self):
        ret = self.salt("guest-absent", "state.single", "xen_guest.absent", EVENT_GUEST,
                        check=False)
        _require_state(ret, "xen_guest.absent")
        # The export's removal and what the dom0 looks like after it, in one job.
        answers = self.compound("export-absent", [
            ("state.single", "nfs_export.absent", "/srv/xen/guest2", f"exports={EXPORTS_FILE}"),
            ("cmd.run_all", facts.script({
                "xl-list": "xl list", "exportfs-v": "exportfs -v",
                "absent-config": f"test -e /etc/xen/{EVENT_GUEST}.cfg; echo $?"}),
             "python_shell=True")])
        _require_state(answers.get("state.single"), "nfs_export.absent")
        found = _run_all_facts(answers.get("cmd.run_all"))
        if found is None:
            raise LabError(f"after nfs_export.absent: {answers.get('cmd.run_all')!r}")
        domains = _domains(_ok(found, "xl-list"))
        if EVENT_GUEST in domains:
            raise LabError(f"{EVENT_GUEST} still running after xen_guest.absent: {domains}")
        if _ok(found, "absent-config").strip() != "1":
            raise LabError(f"/etc/xen/{EVENT_GUEST}.cfg still there after xen_guest.absent")
        exports = _ok(found, "exportfs-v")
        if "/srv/xen/guest2" in exports:
            raise LabError(f"exportfs -v still lists /srv/xen/guest2:\n{exports}")
        if not re.search(r"^/srv/xen/guest\s", exports, re.M) or UNRELATED_EXPORT not in exports:
            raise LabError(f"exportfs -v lost an export it should keep:\n{exports}")
        self.specimen("exportfs-v-after-absent.txt", exports)
        self.say(f"xl list: {domains}; exportfs -v: " + " | ".join(exports.split()))

    def round_trips(self, count):
        """``count`` test.ping and ``cmd.run_all "xl list"`` round trips, one
        at a time: the cost of one Salt call to the dom0, end to end."""
        if count <= 0:
            return
        for label, args in (("rt-test-ping", ("test.ping",)),
                            ("rt-cmd-run-all", ("cmd.run_all", "xl list"))):
            took = []
            for _ in range(count):
                began = time.monotonic()
                self.salt(label, *args)
                took.append(time.monotonic() - began)
            key = label[3:].replace("-", "_")
            self.timing(f"round_trip_{key}_median", statistics.median(took))
            self.results.setdefault("round_trips", {})[key] = [round(t, 2) for t in took]
        self.say(f"round trips (s): {self.results['round_trips']}")

    def collect(self):
        """Each minion's log, and from them and the master's events where each
        job's time went (RUN/DOM0/minion.log, RUN/job-profile.txt, results.json)."""
        alive = [vm for vm in self.vms if vm.alive()]
        if not self.reached or not alive:
            return
        wanted = facts.script({"log": "cat /var/log/salt/minion"})
        try:
            answers = self.salt_all("minion-log", "cmd.run_all", wanted, "python_shell=True",
                                    check=False, vms=alive)
        except LabError as err:
            self.say(f"could not read the minions' logs: {err}")
            return
        tables = []
        for vm in alive:
            found = _run_all_facts((answers or {}).get(vm.minion))
            if found is None:
                self.say(f"could not read {vm.minion}'s minion log")
                continue
            text = found["log"]["stdout"]
            (vm.files / "minion.log").write_text(text)
            rows = jobprofile.profile(self.events.since(0.0), text, vm.minion)
            tables.append(f"== {vm.minion}\n{jobprofile.table(rows)}")
            self.results["dom0s"][vm.minion]["jobs"] = rows
            self.results["dom0s"][vm.minion]["minion_startup"] = jobprofile.startup(text)
            if vm is self.dom0:
                self.results["jobs"] = rows
                self.results["minion_startup"] = jobprofile.startup(text)
        (self.workdir / "job-profile.txt").write_text("\n".join(tables))
        self.save_results()
        self.say(f"minion start-up {self.results.get('minion_startup')}; "
                 f"job profile in {self.workdir / 'job-profile.txt'}")

    # -- the whole run ------------------------------------------------------------
    def hold(self):
        """Keep QEMU and the master running until Ctrl-C (lab/run --keep-running)."""
        self.say("lab kept running; Ctrl-C stops it.  Drive it with:")
        self.say(f"  {self.bin / 'salt'} -c {self.conf_dir} '*' test.ping")
        self.say(f"  {self.bin / 'salt-run'} -c {self.conf_dir} state.orchestrate orch.xen_nfsroot")
        for vm in self.vms:
            self.say(f"  tail -f {vm.console_path}")
        while all(vm.alive() for vm in self.vms):
            time.sleep(1)
        raise LabError("QEMU exited")

    def run(self, boot_only=False):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(exist_ok=True)
        self.logfile = open(self.workdir / "lab.log", "a")
        self.say(f"run folder {self.workdir}; load average {_loadavg()}")
        self.start_master()
        self.boot()
        self.wait_minion()
        if boot_only:
            self.sync()
            return
        self.prepare()
        self.step(1, "salt-run state.orchestrate orch.xen_nfsroot", self.step_orchestrate,
                  fatal=True)
        self.step(2, f"{GUEST} reaches userspace on its NFS root", self.step_guest_up)
        self.step(3, f"proven boots: {GUEST}'s root seen mounted, {REFUSED_GUEST} refused, "
                     f"{UNMOUNTED_GUEST}'s failed mount caught",
                  proofs.Proofs(self, LabError).step)
        self.step(4, f"second highstate of {MINION} changes nothing, boots no failed guest again",
                  self.step_second_highstate)
        self.step(5, f"event {BOOT_TAG} boots {EVENT_GUEST}; a forged one nothing",
                  self.step_event_boot)
        self.step(6, f"xen_guest.absent + nfs_export.absent remove {EVENT_GUEST}",
                  self.step_absent)
        two = migration.Steps(self, LabError)
        home, other = self.dom0.minion, self.vms[1].minion
        self.step(7, f"{migration.GUEST} runs on {home}", two.step_runs_on_home)
        self.step(8, f"{migration.MIGRATE_ORCH} moves {migration.GUEST} live to {other}",
                  two.step_migrate)
        self.step(9, f"a highstate of {home} does not boot {migration.GUEST} again; a forced "
                     "boot is refused", two.step_never_twice)
        self.step(10, f"evacuating {other} brings {migration.GUEST} back to {home}",
                  two.step_evacuate)
        self.timing("whole_run", self.elapsed() + self.results["timings"]["build"])
        self.round_trips(self.options.round_trips)
        if self.failures:
            raise LabError(f"{len(self.failures)} step(s) failed:\n" + "\n".join(self.failures))

    def summary(self, ok):
        timings = self.results["timings"]
        # Up to the end of the steps (not the --keep-running wait) when they ran.
        timings.setdefault("whole_run", round(self.elapsed() + timings["build"], 1))
        self.results["ok"] = ok
        self.results["loadavg_end"] = _loadavg()
        calls = [c["seconds"] for c in self.results["salt_calls"] if c["argv0"] == "salt"]
        if calls:
            self.results["salt_round_trip_median"] = round(statistics.median(calls), 2)
        self.save_results()
        print("\n== Xen lab summary", flush=True)
        rows = [("accelerator", self.results.get("accelerator", "-"))]
        rows += [(key, self.results[key]) for key in
                 ("guest", "marker", "root_line", "event_guest_root_line") if key in self.results]
        # Issue 13's three boots, as the states said them.
        proof = self.results.get("proof", {})
        rows += [(f"proof: {key}", proof[key]) for key in
                 ("booted", "mounted", "refused", "caught", "caught_again") if key in proof]
        for move in self.results.get("migrations", []):
            rows.append((f"migration {move['from']} -> {move['to']}",
                         f"{move['seconds']} s; guest n={move['counter_before']} "
                         f"uptime={move['uptime_before']} -> n={move['counter_after']} "
                         f"uptime={move['uptime_after']}"))
        for key in ("highstate_elsewhere", "double_boot_refused"):
            if key in self.results:
                rows.append((key, self.results[key]))
        rows += [(f"{key} (s)", value) for key, value in timings.items()]
        if calls:
            rows.append(("salt calls / median (s)",
                         f"{len(calls)} / {self.results['salt_round_trip_median']}"))
        rows.append(("load average start / end",
                     f"{self.results['loadavg_start']} / {self.results['loadavg_end']}"))
        for key, value in rows:
            print(f"  {key:44s} {value}")
        print(f"  run folder: {self.workdir}")
        print(f"== {'PASSED' if ok else 'FAILED'}", flush=True)


def _loadavg():
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def _file_sign(path):
    def size():
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0
    return Sign(path.name, size, lambda: f"{size()} bytes")


def _run_all_facts(ret):
    """The facts of a cmd.run_all of facts.script, or None if it failed."""
    if not isinstance(ret, dict) or ret.get("retcode") != 0:
        return None
    try:
        return facts.parse(ret["stdout"])
    except ValueError:
        return None


def _ok(found, name):
    """stdout of a fact that must have succeeded."""
    fact = found.get(name)
    if not fact or fact["retcode"] != 0:
        raise LabError(f"{name} failed on the dom0: {fact!r}")
    return fact["stdout"]


def _domains(xl_list):
    return [line.split()[0] for line in xl_list.splitlines()[1:] if line.strip()]


def _tail(text, lines=25):
    return "\n".join((text or "").splitlines()[-lines:])


def _listening(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0




def _udp_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True












def _require_state(ret, name):
    if not isinstance(ret, dict) or not ret:
        raise LabError(f"{name}: unexpected answer {ret!r}")
    for value in ret.values():
        if not value.get("result"):
            raise LabError(f"{name} failed: {value.get('comment')}")


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
        lab.collect()
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
    lab.summary(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
