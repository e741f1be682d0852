"""Boot the Xen lab and drive it with Salt, as a user would (called by lab/run).

A salt-master on this machine's loopback (ports 14505/14506, its files in the
run folder) serves the repo's ``salt/`` state tree and the lab's pillar
(``lab/pillar``).  QEMU boots Xen and the lab's Debian dom0 from a throw-away
overlay of the cached image; the dom0's minion (``labdom0``) reaches the
master through QEMU user networking, restricted to the master's two ports
(``lab/relay``).  Then five steps, each with the real CLI:

1. ``salt-run state.orchestrate orch.xen_nfsroot``: exports, guest fstab,
   xl config, ``xl create``;
2. the guest's console (xenconsoled's log, read through Salt) shows userspace
   running from its NFS root, and the file it wrote on that root is seen on
   the server;
3. a second highstate of the dom0 minion changes nothing;
4. the event ``xen_nfsroot/guest/boot`` boots the second guest through the
   reactor; a forged event for an undefined guest boots nothing;
5. ``xen_guest.absent`` and ``nfs_export.absent`` remove the second guest and
   its export; ``exportfs -v`` no longer lists it.

Every command's real output is kept in ``RUN/out/`` (``NN-label.out`` /
``.err`` / ``.rc``), along with QEMU's serial console (``RUN/console.log``),
the master's log (``RUN/master.log``) and ``RUN/results.json`` (timings, the
guests' root mount lines).  The e2e test reads those files.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import yaml

LAB = pathlib.Path(__file__).resolve().parent
REPO = LAB.parent
CACHE_DIR = pathlib.Path(os.environ.get("XEN_NFSROOT_CACHE", "/var/cache/xen-nfsroot"))
MINION = "labdom0"
PUBLISH_PORT = 14505
RET_PORT = 14506
GUEST = "nfsguest"
EVENT_GUEST = "nfsguest2"
FORGED_GUEST = "nosuchguest"
SERVER_ADDRESS = "10.99.0.1"
EXPORTS_FILE = "/etc/exports.d/xen-nfsroot.exports"
UNRELATED_EXPORT = "/srv/unrelated"
MARKER = "XEN-NFSROOT-GUEST-UP"
ROOT_MARKER = "XEN-NFSROOT-GUEST-ROOT"
BOOT_TAG = "xen_nfsroot/guest/boot"


class LabError(Exception):
    """A step failed: the message says what was expected and what was seen."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def _interrupt(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


class Lab:
    def __init__(self, image, workdir, build_seconds):
        self.image = pathlib.Path(image)
        self.workdir = pathlib.Path(workdir)
        self.out = self.workdir / "out"
        self.conf_dir = self.workdir / "master" / "etc"
        self.bin = pathlib.Path(sys.executable).parent
        self.start = time.monotonic()
        self.qemu_start = None
        self.procs = {}
        self.count = 0
        self.failures = []
        self.xl_create_at = None
        self.results = {
            "workdir": str(self.workdir),
            "image": str(self.image),
            "timings": {"build": float(build_seconds)},
            "steps": {},
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

    # -- processes ------------------------------------------------------------
    def command(self, label, argv, timeout=300, check=True):
        """Run ``argv``, keep its output in RUN/out, return (rc, stdout, stderr)."""
        self.count += 1
        stem = self.out / f"{self.count:02d}-{label}"
        (stem.with_suffix(".cmd")).write_text(" ".join(str(a) for a in argv) + "\n")
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs[stem.name] = proc
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self._kill(proc)
            stdout, stderr = proc.communicate()
            raise LabError(f"{label}: no answer within {timeout} s ({argv[0]})") from exc
        finally:
            self.procs.pop(stem.name, None)
        stem.with_suffix(".out").write_text(stdout)
        stem.with_suffix(".err").write_text(stderr)
        stem.with_suffix(".rc").write_text(f"{proc.returncode}\n")
        if check and proc.returncode != 0:
            raise LabError(
                f"{label}: exit status {proc.returncode}\n{_tail(stdout)}\n{_tail(stderr)}"
            )
        return proc.returncode, stdout, stderr

    def salt(self, label, *args, timeout=300, check=True, wait=None):
        """``salt labdom0 ARGS`` with JSON output: the minion's return.

        ``wait`` limits the whole command (default: the job's timeout plus
        the master's gather_job_timeout and a margin).
        """
        argv = [self.bin / "salt", "-c", self.conf_dir, "--out", "json", "--static",
                "-t", str(timeout), MINION, *args]
        rc, stdout, _ = self.command(label, argv, timeout=wait or timeout + 90, check=check)
        try:
            answer = json.loads(stdout) if stdout.strip() else {}
        except ValueError as exc:
            raise LabError(f"{label}: output is not JSON:\n{_tail(stdout)}") from exc
        if MINION not in answer:
            if check:
                raise LabError(f"{label}: {MINION} did not answer (exit status {rc})")
            return None
        return answer[MINION]

    def salt_run(self, label, *args, timeout=600, check=True):
        argv = [self.bin / "salt-run", "-c", self.conf_dir, "--out", "json", *args]
        rc, stdout, stderr = self.command(label, argv, timeout=timeout, check=check)
        try:
            return rc, json.loads(stdout) if stdout.strip() else None
        except ValueError:
            return rc, stdout

    def sh(self, label, command, timeout=120):
        """A fixed command line on the dom0 (cmd.run_all): (retcode, stdout, stderr)."""
        ret = self.salt(label, "cmd.run_all", command, timeout=timeout)
        if not isinstance(ret, dict):
            raise LabError(f"{label}: unexpected answer {ret!r}")
        return ret["retcode"], ret["stdout"], ret["stderr"]

    def read(self, label, path):
        """A file of the dom0 (file.read), or None when it cannot be read."""
        text = self.salt(label, "file.read", path, check=False)
        if not isinstance(text, str) or text.startswith(
                ("ERROR", "The minion function caused an exception")):
            return None
        return text

    def exists(self, label, path):
        return self.salt(label, "file.file_exists", path) is True

    @staticmethod
    def _kill(proc):
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
        for name, proc in list(self.procs.items()):
            self.say(f"stopping {name} (process group {proc.pid})")
            self._kill(proc)
            # The group leader is gone: make sure no member of its group lingers.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.procs.pop(name, None)

    # -- the master -----------------------------------------------------------
    def write_master_config(self):
        root = self.workdir / "master"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
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
            "timeout": 60,
            # The minion runs under software emulation: give it time to answer
            # saltutil.find_job while a long state runs.
            "gather_job_timeout": 60,
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
        (self.conf_dir / "master").write_text(yaml.safe_dump(config, default_flow_style=False))
        # The dom0's key is made with its image: accept exactly that key.
        accepted = root / "pki" / "minions"
        accepted.mkdir(parents=True, exist_ok=True)
        for state in ("minions_pre", "minions_rejected", "minions_denied"):
            stale = root / "pki" / state / MINION
            stale.unlink(missing_ok=True)
        shutil.copy(self.image / "minion.pub", accepted / MINION)

    def start_master(self):
        for port in (PUBLISH_PORT, RET_PORT):
            if _listening(port):
                raise LabError(f"port {port} on 127.0.0.1 is in use: another lab running?")
        self.write_master_config()
        log = open(self.workdir / "master.stdout", "w")
        self.procs["salt-master"] = subprocess.Popen(
            [self.bin / "salt-master", "-c", self.conf_dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not (_listening(PUBLISH_PORT) and _listening(RET_PORT)):
            if self.procs["salt-master"].poll() is not None:
                raise LabError(f"salt-master exited: see {self.workdir / 'master.stdout'}")
            if time.monotonic() > deadline:
                raise LabError("salt-master does not listen on 14505/14506 after 60 s")
            time.sleep(0.5)
        self.say(f"salt-master listening on 127.0.0.1:{PUBLISH_PORT}/{RET_PORT}")

    # -- QEMU -------------------------------------------------------------------
    def start_qemu(self):
        overlay = self.workdir / "dom0.qcow2"
        paths = [self.image / "xen.elf", self.image / "vmlinuz", self.image / "initrd.img",
                 overlay, self.workdir / "console.log", LAB / "relay"]
        for path in paths:
            if "," in str(path) or " " in str(path):
                raise LabError(f"QEMU cannot take a path with a comma or a space: {path}")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                        "-b", self.image / "dom0.img", overlay], check=True)
        dom0_cmdline = "root=/dev/vda rw console=hvc0 init=/sbin/lab-init net.ifnames=0"
        relay = LAB / "relay"
        forwards = ",".join(
            f"guestfwd=tcp:10.0.2.100:{guest_port}-cmd:{relay} {host_port}"
            for guest_port, host_port in ((4505, PUBLISH_PORT), (4506, RET_PORT),
                                          (PUBLISH_PORT, PUBLISH_PORT), (RET_PORT, RET_PORT))
        )
        argv = [
            "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "qemu64,+svm",
            "-smp", "2", "-m", "3072",
            "-kernel", self.image / "xen.elf",
            "-append", "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 console=com1 "
                       "com1=115200,8n1 noreboot",
            "-initrd", f"{self.image / 'vmlinuz'} {dom0_cmdline},{self.image / 'initrd.img'}",
            "-drive", f"file={overlay},if=virtio,format=qcow2",
            "-nic", f"user,model=virtio-net-pci,restrict=on,{forwards}",
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{self.workdir / 'console.log'}",
        ]
        (self.workdir / "qemu.cmd").write_text(" ".join(map(str, argv)) + "\n")
        qemu_log = open(self.workdir / "qemu.log", "w")
        self.qemu_start = time.monotonic()
        self.procs["qemu"] = subprocess.Popen(
            [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=qemu_log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.say("QEMU started: Xen 4.17 + Debian dom0 (software emulation)")

    def since_qemu(self):
        return time.monotonic() - self.qemu_start

    def console(self):
        path = self.workdir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_console(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while needle not in self.console():
            if self.procs["qemu"].poll() is not None:
                raise LabError(f"QEMU exited while waiting for {needle!r}:\n"
                               f"{_tail(self.console())}")
            if time.monotonic() > deadline:
                raise LabError(f"{needle!r} not on the dom0 console after {timeout} s:\n"
                               f"{_tail(self.console())}")
            time.sleep(0.5)

    def wait_minion(self, timeout=240):
        self.wait_console("LAB-DOM0-READY", timeout)
        self.say(f"dom0 booted, salt-minion started ({self.since_qemu():.1f} s after QEMU start)")
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.salt("test-ping", "test.ping", timeout=10, wait=25, check=False) is True:
                    break
            except LabError:
                pass  # no answer yet: the command was stopped after 25 s
            if self.procs["qemu"].poll() is not None:
                raise LabError("QEMU exited while waiting for the minion")
            if time.monotonic() > deadline:
                raise LabError(f"{MINION} does not answer test.ping after {timeout} s; "
                               f"see {self.workdir / 'master.log'}")
            time.sleep(1)
        self.results["timings"]["minion_ready_after_qemu_start"] = round(self.since_qemu(), 1)
        self.say(f"{MINION} answers test.ping ({self.since_qemu():.1f} s after QEMU start)")

    # -- helpers of the steps -------------------------------------------------
    def domains(self, label):
        rc, stdout, stderr = self.sh(label, "xl list")
        if rc != 0:
            raise LabError(f"xl list failed: {stderr}")
        return [line.split()[0] for line in stdout.splitlines()[1:] if line.strip()]

    def exportfs_v(self, label):
        rc, stdout, stderr = self.sh(label, "exportfs -v")
        if rc != 0:
            raise LabError(f"exportfs -v failed: {stderr}")
        return stdout

    def wait_guest_console(self, guest, since, timeout=240):
        """Poll the guest's console log (through Salt) for the marker."""
        path = f"/var/log/xen/console/guest-{guest}.log"
        deadline = time.monotonic() + timeout
        text = None
        while time.monotonic() < deadline:
            if not self.exists(f"console-{guest}-exists", path):
                time.sleep(2)
                continue
            text = self.read(f"console-{guest}", path)
            if text and MARKER in text and ROOT_MARKER in text.split(MARKER, 1)[1]:
                seen = time.monotonic() - since
                return text, seen
            time.sleep(2)
        domains = self.sh(f"xl-list-no-{guest}", "xl list")[1]
        raise LabError(f"{guest}: no {MARKER!r} on its console {path} after {timeout} s:\n"
                       f"{_tail(text or '(no console log)')}\nxl list:\n{domains}")

    def check_guest_up(self, guest, export, seconds):
        """The guest's console and the file it wrote, checked: its root line."""
        text, seen = self.wait_guest_console(guest, seconds)
        up = next(line for line in text.splitlines() if MARKER in line)
        root_line = next(
            line.split(ROOT_MARKER, 1)[1].strip()
            for line in text.splitlines() if ROOT_MARKER in line
        )
        expected = f"{SERVER_ADDRESS}:{export} / nfs"
        if not root_line.startswith(expected):
            raise LabError(f"{guest}: root is {root_line!r}, expected {expected} ...")
        self.say(f"{guest} console: {up.strip()}")
        self.say(f"{guest} root: {root_line}")
        written = self.read(f"guest-was-here-{guest}", f"{export}/guest-was-here")
        if not written or guest not in written or root_line not in written:
            raise LabError(f"{export}/guest-was-here on the server: {written!r}")
        self.say(f"server sees {export}/guest-was-here: {written.splitlines()[0]} ...")
        return root_line, up, seen

    # -- the steps ----------------------------------------------------------------
    def specimen(self, name, text):
        """Keep a real command output (cmd.run_all strips the last newline)."""
        folder = self.workdir / "specimens"
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(text if text.endswith("\n") else text + "\n")

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
        self.save_results()
        if error is None:
            self.say(f"step {number} passed in {took} s")
            return
        self.failures.append(f"step {number} ({title}): {error}")
        self.say(f"step {number} FAILED after {took} s: {error}")
        if fatal:
            raise LabError(f"step {number} failed: the later steps need it")

    def sync(self):
        """Load the formula's modules on the dom0 and ask them what they see."""
        ret = self.salt("sync-all", "saltutil.sync_all", timeout=180)
        self.say(f"saltutil.sync_all: modules {ret.get('modules')}, states {ret.get('states')}")
        wanted = {"exportfs", "xm", "xen_nfsroot"}
        synced = {name.split(".", 1)[1] for name in ret.get("modules") or []}
        # Loading every module to list them takes a minute under emulation:
        # ask only when sync_all did not just bring them.
        modules = synced if wanted <= synced else self.salt("list-modules", "sys.list_modules")
        missing = sorted(wanted - set(modules))
        if missing:
            raise LabError(f"the minion has no {missing} execution module after sync_all")
        for function in ("xm.toolstack", "xm.list_domains", "exportfs.list_active"):
            ret = self.salt(function.replace(".", "-"), function, check=False)
            self.say(f"{function}: {json.dumps(ret)[:300]}")

    def prepare(self):
        self.sync()
        missing = [name for name in ("orch/xen_nfsroot.sls", "top.sls")
                   if not (REPO / "salt" / name).exists()]
        if missing:
            raise LabError(f"the formula's state tree is incomplete: no salt/{missing}")
        if not self.results.get("reactor"):
            raise LabError("no reactor configuration in salt/reactor/master.conf")
        self.specimen("xl-list-dom0-only.txt", self.sh("xl-list-dom0", "xl list")[1])
        self.specimen("exportfs-v-before.txt", self.exportfs_v("exportfs-v-before"))

    def step_orchestrate(self):
        began = time.monotonic()
        rc, answer = self.salt_run("orchestrate", "state.orchestrate", "orch.xen_nfsroot",
                                   check=False)
        failed = _failed_states(answer)
        if rc != 0 or failed:
            raise LabError(f"orchestrate: exit status {rc}; failed: {failed}")
        self.results["timings"]["orchestrate"] = round(time.monotonic() - began, 1)
        self.xl_create_at = began
        exports = self.exportfs_v("exportfs-v-after-orchestrate")
        for path, client in (("/srv/xen/guest", "10.99.0.2"), (UNRELATED_EXPORT, "10.99.0.200")):
            if not re.search(rf"^{re.escape(path)}\s+{re.escape(client)}\(", exports, re.M):
                raise LabError(f"exportfs -v does not list {path} for {client}:\n{exports}")
        self.say("exportfs -v (kernel nfsd): " + " | ".join(exports.split()))
        drop_in = self.read("exports-drop-in", EXPORTS_FILE) or ""
        if not re.search(r"^/srv/xen/guest\s+10\.99\.0\.2\(", drop_in, re.M):
            raise LabError(f"{EXPORTS_FILE} has no export of /srv/xen/guest:\n{drop_in}")
        admin_exports = self.read("etc-exports", "/etc/exports")
        seed = (LAB / "image" / "dom0" / "etc" / "exports").read_text()
        if admin_exports is None or admin_exports.rstrip("\n") != seed.rstrip("\n"):
            raise LabError(f"/etc/exports changed by the formula:\n{admin_exports}")
        self.say(f"{EXPORTS_FILE}: " + " | ".join(
            " ".join(line.split()) for line in drop_in.splitlines() if line.strip()))
        fstab = self.read("guest-fstab", "/srv/xen/guest/etc/fstab") or ""
        if not re.search(r"^/dev/nfs\s+/\s+nfs", fstab, re.M) or not re.search(
                r"^#.*/dev/sdb2\s+swap", fstab, re.M):
            raise LabError(f"guest fstab not rewritten as expected:\n{fstab}")
        self.say("guest fstab: " + " | ".join(
            " ".join(line.split()) for line in fstab.splitlines() if "/dev/" in line))
        config = self.read("xl-config", f"/etc/xen/{GUEST}.cfg")
        if not config or f"nfsroot={SERVER_ADDRESS}:/srv/xen/guest" not in config:
            raise LabError(f"/etc/xen/{GUEST}.cfg: {config!r}")
        domains = self.domains("xl-list-after-orchestrate")
        if GUEST not in domains:
            raise LabError(f"{GUEST} is not running after orchestrate: {domains}")
        self.say(f"xl list: {domains}")

    def step_guest_up(self):
        if self.xl_create_at is None:
            raise LabError("step 1 did not pass")
        root_line, up, seen = self.check_guest_up(GUEST, "/srv/xen/guest", self.xl_create_at)
        self.results["guest"] = GUEST
        self.results["root_line"] = root_line
        self.results["marker"] = up.strip()
        self.results["timings"]["orchestrate_start_to_guest_userspace"] = round(seen, 1)
        self.results["timings"]["qemu_start_to_guest_userspace"] = round(
            self.xl_create_at + seen - self.qemu_start, 1)
        rc, stdout, _ = self.sh("xl-list", "xl list")
        rc_l, stdout_l, _ = self.sh("xl-list-l", "xl list -l")
        if rc or rc_l:
            raise LabError("xl list / xl list -l failed")
        self.specimen("xl-list.txt", stdout)
        self.specimen("xl-list-l.json", stdout_l)
        self.specimen("exportfs-v-kernel-nfsd.txt", self.exportfs_v("exportfs-v-guest-up"))

    def step_second_highstate(self):
        ret = self.salt("highstate-again", "state.apply", timeout=600, check=False)
        if not isinstance(ret, dict) or not ret:
            raise LabError(f"state.apply did not return states: {ret!r}")
        failed = [k for k, v in ret.items() if not v.get("result")]
        changed = {v.get("__id__", k): v["changes"] for k, v in ret.items() if v.get("changes")}
        if failed or changed:
            raise LabError(f"second highstate: failed {failed}, changes {changed}")
        self.results["second_highstate_states"] = len(ret)
        self.say(f"second highstate: {len(ret)} states, all True, no changes")

    def step_event_boot(self):
        before = self.domains("xl-list-before-event")
        if EVENT_GUEST in before:
            raise LabError(f"{EVENT_GUEST} is running before its event: {before}")
        # The forged event goes first: by the time the real one has booted its
        # guest, the reactor has handled the forged one too.
        self.salt_run("event-forged", "event.send", BOOT_TAG,
                      json.dumps({"guest": FORGED_GUEST}))
        began = time.monotonic()
        self.salt_run("event-boot", "event.send", BOOT_TAG, json.dumps({"guest": EVENT_GUEST}))
        self.say(f"fired {BOOT_TAG} for {FORGED_GUEST} (undefined), then for {EVENT_GUEST}")
        root_line, up, seen = self.check_guest_up(EVENT_GUEST, "/srv/xen/guest2", began)
        self.results["event_guest_root_line"] = root_line
        self.results["timings"]["event_to_guest_userspace"] = round(seen, 1)
        time.sleep(5)
        after = self.domains("xl-list-after-events")
        unexpected = sorted(set(after) - set(before) - {EVENT_GUEST})
        if unexpected or FORGED_GUEST in after:
            raise LabError(f"the forged event booted something: {after}")
        if self.exists("forged-config-exists", f"/etc/xen/{FORGED_GUEST}.cfg"):
            raise LabError(f"the forged event wrote /etc/xen/{FORGED_GUEST}.cfg")
        self.say(f"xl list: {after} (nothing for {FORGED_GUEST})")

    def step_absent(self):
        ret = self.salt("guest-absent", "state.single", "xen_guest.absent", EVENT_GUEST,
                        check=False)
        _require_state(ret, "xen_guest.absent")
        ret = self.salt("export-absent", "state.single", "nfs_export.absent", "/srv/xen/guest2",
                        f"exports={EXPORTS_FILE}", check=False)
        _require_state(ret, "nfs_export.absent")
        domains = self.domains("xl-list-after-absent")
        if EVENT_GUEST in domains:
            raise LabError(f"{EVENT_GUEST} still running after xen_guest.absent: {domains}")
        if self.exists("absent-config-exists", f"/etc/xen/{EVENT_GUEST}.cfg"):
            raise LabError(f"/etc/xen/{EVENT_GUEST}.cfg still there after xen_guest.absent")
        exports = self.exportfs_v("exportfs-v-after-absent")
        if "/srv/xen/guest2" in exports:
            raise LabError(f"exportfs -v still lists /srv/xen/guest2:\n{exports}")
        if not re.search(r"^/srv/xen/guest\s", exports, re.M) or UNRELATED_EXPORT not in exports:
            raise LabError(f"exportfs -v lost an export it should keep:\n{exports}")
        self.specimen("exportfs-v-after-absent.txt", exports)
        self.say(f"xl list: {domains}; exportfs -v: " + " | ".join(exports.split()))

    # -- the whole run ------------------------------------------------------------
    def hold(self):
        """Keep QEMU and the master running until Ctrl-C (lab/run --keep-running)."""
        self.say("lab kept running; Ctrl-C stops it.  Drive it with:")
        self.say(f"  {self.bin / 'salt'} -c {self.conf_dir} {MINION} test.ping")
        self.say(f"  {self.bin / 'salt-run'} -c {self.conf_dir} state.orchestrate orch.xen_nfsroot")
        self.say(f"  tail -f {self.workdir / 'console.log'}")
        while self.procs["qemu"].poll() is None:
            time.sleep(1)
        raise LabError("QEMU exited")

    def run(self, boot_only=False):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(exist_ok=True)
        self.logfile = open(self.workdir / "lab.log", "a")
        self.say(f"run folder {self.workdir}")
        self.start_master()
        self.start_qemu()
        self.wait_minion()
        if boot_only:
            self.sync()
            return
        self.prepare()
        self.step(1, "salt-run state.orchestrate orch.xen_nfsroot", self.step_orchestrate,
                  fatal=True)
        self.step(2, f"{GUEST} reaches userspace on its NFS root", self.step_guest_up)
        self.step(3, "second highstate of labdom0 changes nothing", self.step_second_highstate)
        self.step(4, f"event {BOOT_TAG} boots {EVENT_GUEST}; a forged one nothing",
                  self.step_event_boot)
        self.step(5, f"xen_guest.absent + nfs_export.absent remove {EVENT_GUEST}",
                  self.step_absent)
        if self.failures:
            raise LabError(f"{len(self.failures)} step(s) failed:\n" + "\n".join(self.failures))

    def summary(self, ok):
        timings = self.results["timings"]
        timings["whole_run"] = round(self.elapsed() + timings["build"], 1)
        self.results["ok"] = ok
        self.save_results()
        print("\n== Xen lab summary", flush=True)
        for key in ("guest", "marker", "root_line", "event_guest_root_line"):
            if key in self.results:
                print(f"  {key:24s} {self.results[key]}")
        for key, value in timings.items():
            print(f"  {key + ' (s)':40s} {value}")
        print(f"  run folder: {self.workdir}")
        print(f"== {'PASSED' if ok else 'FAILED'}", flush=True)


def _tail(text, lines=25):
    return "\n".join((text or "").splitlines()[-lines:])


def _listening(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _state_returns(answer):
    """Every state return (dicts with 'result') found in a runner's JSON answer."""
    if isinstance(answer, dict):
        if "result" in answer and ("__id__" in answer or "changes" in answer):
            yield answer
        else:
            for value in answer.values():
                yield from _state_returns(value)


def _failed_states(answer):
    if not isinstance(answer, dict):
        return [f"unparsable answer: {str(answer)[:300]}"]
    found = list(_state_returns(answer))
    if not found:
        return ["no state returned"]
    return [r.get("__id__") or r.get("comment") for r in found if r.get("result") is not True]


def _require_state(ret, name):
    if not isinstance(ret, dict) or not ret:
        raise LabError(f"{name}: unexpected answer {ret!r}")
    for value in ret.values():
        if not value.get("result"):
            raise LabError(f"{name} failed: {value.get('comment')}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--build-seconds", default="0")
    parser.add_argument("--workdir")
    parser.add_argument("--boot-only", action="store_true")
    parser.add_argument("--save-specimens", action="store_true")
    parser.add_argument("--keep-running", action="store_true")
    args = parser.parse_args(argv)
    workdir = args.workdir or CACHE_DIR / "lab" / time.strftime("run-%Y%m%d-%H%M%S")
    lab = Lab(args.image, workdir, args.build_seconds)
    # Ctrl-C even when started in the background by a non-interactive shell
    # (which leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    ok = False
    try:
        lab.run(boot_only=args.boot_only)
        ok = True
        if args.keep_running:
            lab.hold()
    except LabError as err:
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
