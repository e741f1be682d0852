"""One dom0 of the lab: its QEMU process, console, overlay, minion and links.

Each ``Dom0VM`` boots Xen and the lab's Debian dom0 from its own throw-away
qcow2 overlay of the cached image, with its own folder (serial console,
QEMU's command and log), its own minion id (``lab_id=ID`` on the dom0's
kernel command line picks its identity in the image) and its end of the
lab's L2 network: a virtio NIC on a QEMU UDP socket netdev whose peer is the
other dom0's QEMU, on this machine's loopback (the dom0 puts it in its
bridge).  The lab boots two side by side.

The accelerator is chosen at run time: KVM when ``/dev/kvm`` opens and
creates a VM and the hypervisor then really boots under it (Xen's banner and
the dom0's kernel on the console, no ``KVM internal error`` from QEMU);
otherwise QEMU's software emulation (TCG).  What was tried and why it was
left is kept in ``accelerator_note``.
"""

import datetime
import fcntl
import hashlib
import json
import os
import pathlib
import re
import subprocess
import threading
import time

from progress import Sign, WaitError, file_sign, wait_until

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CREATE_VCPU = 0xAE41

# Lines of the dom0's serial console that mark the phases of its boot, in
# the order they appear (lab/image/dom0/etc/lab/rc prints the LAB-DOM0 ones).
MILESTONES = (
    ("xen_banner", re.compile(r"\(XEN\) Xen version 4\.")),
    ("dom0_kernel", re.compile(r"Linux version \d")),
    ("dom0_init", re.compile(r"Run /init as init process")),
    ("dom0_userspace", re.compile(r"LAB-DOM0 [\d.]+s: userspace")),
    ("xen_toolstack", re.compile(r"LAB-DOM0 [\d.]+s: xen toolstack")),
    ("nfsd", re.compile(r"LAB-DOM0 [\d.]+s: nfsd")),
    ("dom0_network", re.compile(r"LAB-DOM0 [\d.]+s: eth0")),
    ("bridge", re.compile(r"LAB-DOM0 [\d.]+s: bridge")),
    ("sshd", re.compile(r"LAB-DOM0 [\d.]+s: sshd started")),
    ("minion_started", re.compile(r"LAB-DOM0-READY")),
)
FAILURES = re.compile(
    r"KVM internal error|emulation failure|\(XEN\) Panic on CPU|Kernel panic - not syncing")


def kvm_usable():
    """(True, detail) when /dev/kvm opens and creates a VM with a vCPU."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        return False, f"/dev/kvm: {err.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        try:
            os.close(fcntl.ioctl(vm, KVM_CREATE_VCPU, 0))
        finally:
            os.close(vm)
    except OSError as err:
        return False, f"/dev/kvm opens but cannot create a VM: {err.strerror}"
    finally:
        os.close(fd)
    return True, f"/dev/kvm: API {version}, a VM and a vCPU created"


class KvmVerdicts:
    """What a KVM boot of this Xen gave on this host, kept between runs.

    A KVM that opens but cannot run Xen is found out only by booting it
    (about 8 s here, 20 s on a busy machine).  The verdict is kept under a
    key of everything it depends on: the host's kernel and CPU flags, its
    loaded kvm modules, QEMU's version and the Xen binary.  Any change, or
    deleting the file, probes again.
    """

    def __init__(self, path, xen):
        self.path = pathlib.Path(path)
        self.key = self.host_key(xen)

    @staticmethod
    def host_key(xen):
        flags = next((line for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
        modules = sorted(m for m in os.listdir("/sys/module") if m.startswith("kvm"))
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                              text=True, check=False).stdout.splitlines()[:1]
        parts = [os.uname().release, flags, modules, qemu,
                 hashlib.sha256(pathlib.Path(xen).read_bytes()).hexdigest()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def _all(self):
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def get(self):
        return self._all().get(self.key)

    def put(self, works, note):
        verdicts = self._all()
        verdicts[self.key] = {"works": works, "note": note,
                              "at": datetime.datetime.now().isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(verdicts, indent=1) + "\n")


class Console(threading.Thread):
    """Follows a serial console file: every line with the time it appeared
    (seconds after QEMU started), and the first time of each milestone."""

    def __init__(self, path, started):
        super().__init__(name=f"console-{path.name}", daemon=True)
        self.path = path
        self.started = started
        self.size = 0
        self.lines = []
        self.milestones = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        partial = b""
        while not self.stopping.is_set():
            try:
                with open(self.path, "rb") as log:
                    log.seek(self.size)
                    chunk = log.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                self.size += len(chunk)
                partial = self._add(partial + chunk)
            self.stopping.wait(0.2)

    def _add(self, data):
        *complete, rest = data.split(b"\n")
        now = time.monotonic() - self.started
        with self.lock:
            for raw in complete:
                line = raw.decode(errors="replace").rstrip("\r")
                self.lines.append((now, line))
                for name, pattern in MILESTONES:
                    if name not in self.milestones and pattern.search(line):
                        self.milestones[name] = round(now, 1)
        return rest

    def text(self):
        with self.lock:
            return "\n".join(line for _, line in self.lines)

    def last_line(self):
        with self.lock:
            for _, line in reversed(self.lines):
                if line.strip():
                    return line.strip()[:160]
        return "(nothing yet)"

    def sign(self):
        return Sign(f"console {self.path.name}", lambda: self.size,
                    lambda: f"{self.size} bytes, last line {self.last_line()!r}")


class Dom0VM:
    """A Xen + Debian dom0 under QEMU, reached through its minion ``minion``."""

    def __init__(self, lab, minion, files, options, link=None):
        """``link``: this VM's end of the L2 network, {"port": its UDP port,
        "peer": the other end's, "mac": its NIC's MAC (52:54:00:99:...)}."""
        self.lab = lab
        self.minion = minion
        self.image = pathlib.Path(lab.image)
        self.files = pathlib.Path(files)
        self.overlay = self.files / "dom0.qcow2"
        self.console_path = self.files / "console.log"
        self.qemu_log = self.files / "qemu.log"
        self.qemu_cmd = self.files / "qemu.cmd"
        self.options = options
        self.link = link
        self.proc = None
        self.started = None
        self.console = None
        self.accelerator = None
        self.accelerator_note = ""
        self.kvm_probe_seconds = None

    # -- QEMU --------------------------------------------------------------
    def xen_cmdline(self):
        vcpus = self.options.dom0_vcpus
        args = [f"dom0_mem={self.options.dom0_mem}M,max:{self.options.dom0_mem}M",
                f"dom0_max_vcpus={vcpus}", "console=com1", "com1=115200,8n1", "noreboot"]
        if not self.options.bootscrub:
            args.append("bootscrub=false")
        return " ".join(args)

    def argv(self, accelerator):
        dom0_cmdline = ("root=/dev/vda rw console=hvc0 init=/sbin/lab-init net.ifnames=0 "
                        f"lab_id={self.minion}")
        relay = self.lab.relay
        forwards = ",".join(
            f"guestfwd=tcp:10.0.2.100:{guest_port}-cmd:{relay} {host_port}"
            for guest_port, host_port in self.lab.master.forwards()
        )
        accel = (["-accel", "kvm", "-cpu", "host"] if accelerator == "kvm"
                 else ["-accel", "tcg,thread=multi", "-cpu", "qemu64,+svm"])
        link = []
        if self.link:
            link = ["-netdev", f"socket,id=l2,udp=127.0.0.1:{self.link['peer']},"
                               f"localaddr=127.0.0.1:{self.link['port']}",
                    "-device", f"virtio-net-pci,netdev=l2,mac={self.link['mac']}"]
        return [
            "qemu-system-x86_64", *accel,
            "-smp", str(self.options.smp), "-m", str(self.options.memory),
            "-kernel", self.image / "xen.elf",
            "-append", self.xen_cmdline(),
            "-initrd", f"{self.image / 'vmlinuz'} {dom0_cmdline},{self.image / 'initrd.img'}",
            "-drive", f"file={self.overlay},if=virtio,format=qcow2",
            "-nic", f"user,model=virtio-net-pci,restrict=on,{forwards}",
            *link,
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{self.console_path}",
        ]

    def check_paths(self):
        paths = [self.image / "xen.elf", self.image / "vmlinuz", self.image / "initrd.img",
                 self.overlay, self.console_path, self.lab.relay]
        for path in paths:
            if "," in str(path) or " " in str(path):
                raise WaitError(f"QEMU cannot take a path with a comma or a space: {path}")

    def launch(self, accelerator):
        self.check_paths()
        self.files.mkdir(parents=True, exist_ok=True)
        for path in (self.overlay, self.console_path):
            path.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                        "-b", self.image / "dom0.img", self.overlay], check=True)
        argv = [str(a) for a in self.argv(accelerator)]
        self.qemu_cmd.write_text(" ".join(argv) + "\n")
        log = open(self.qemu_log, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.lab.procs[f"qemu-{self.minion}"] = self.proc
        self.console = Console(self.console_path, self.started)
        self.console.start()
        self.accelerator = accelerator

    def start(self, verdicts):
        """Boot under KVM when it works here, else under TCG.

        ``verdicts`` (KvmVerdicts) spares a KVM boot already seen failing
        on this host; ``--accel kvm`` always tries.
        """
        wanted = self.options.accel
        if wanted == "tcg":
            self.accelerator_note = "--accel tcg asked for"
            self.launch("tcg")
            return
        usable, detail = kvm_usable()
        seen = verdicts.get() if wanted == "auto" else None
        if not usable:
            self.accelerator_note = f"{detail}: TCG"
        elif seen and not seen["works"]:
            self.accelerator_note = (f"{detail}, but {seen['note']} (seen {seen['at']} with this "
                                     f"host, QEMU and Xen: {verdicts.path}): TCG")
        elif self.try_kvm(detail, verdicts):
            return
        if wanted == "kvm":
            raise WaitError(f"--accel kvm: {self.accelerator_note}")
        self.launch("tcg")

    def try_kvm(self, detail, verdicts):
        """Boot under KVM; True if Xen and the dom0's kernel run, else stop it."""
        began = time.monotonic()
        self.launch("kvm")
        failure = self.kvm_failure()
        self.kvm_probe_seconds = round(time.monotonic() - began, 1)
        if failure is None:
            self.accelerator_note = f"{detail}; Xen and the dom0 boot under KVM"
            verdicts.put(True, "Xen and the dom0 boot under KVM")
            return True
        self.accelerator_note = f"{detail}, but under KVM {failure}: TCG instead"
        verdicts.put(False, f"under KVM {failure}")
        self.lab.say(f"{self.minion}: KVM unusable ({failure}); software emulation")
        self.stop()
        return False

    def kvm_failure(self):
        """None once the dom0's kernel runs under KVM, else what went wrong."""
        def done():
            if self.proc.poll() is not None:
                return f"QEMU exited with status {self.proc.returncode}"
            seen = FAILURES.search(self.console.text() + self.qemu_log.read_text(errors="replace"))
            if seen:
                return f"{seen.group(0)!r} ({_first_line(self.qemu_log)})"
            if "dom0_init" in self.console.milestones:
                return "ok"
            return None
        try:
            # Under KVM the dom0's kernel starts within seconds: a console
            # silent for a minute, with QEMU's log silent too, is a stuck boot.
            result = wait_until("KVM probe", done, [self.console.sign(), file_sign(self.qemu_log)],
                                (60, 600))
        except WaitError as err:
            return str(err)
        return None if result == "ok" else result

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def since_start(self):
        return time.monotonic() - self.started

    def stop(self):
        if self.console:
            self.console.stopping.set()
        proc = self.lab.procs.pop(f"qemu-{self.minion}", None)
        if proc is not None:
            self.lab.kill(proc)

    # -- waits ---------------------------------------------------------------
    def wait_console(self, milestone, limits):
        """Wait for a milestone line of the console; progress: the console grows."""
        def done():
            if milestone in self.console.milestones:
                return self.console.milestones[milestone]
            if not self.alive():
                raise WaitError(f"QEMU exited while waiting for {milestone}: "
                                f"{_first_line(self.qemu_log)}; console ends with "
                                f"{self.console.last_line()!r}")
            return None
        return wait_until(f"{self.minion}: {milestone} on the console", done,
                          [self.console.sign()], limits)


def _first_line(path):
    try:
        text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return "no QEMU log"
    return text.splitlines()[0][:200] if text else "QEMU printed nothing"
