"""The lab's salt-master: its configuration, its start, its event bus.

It listens on this machine's loopback (ports 14505/14506), its files in the
run folder, and serves the repo's ``salt/`` state tree and the lab's pillar
(``lab/pillar``), with the formula's reactor for the boot event.  Each
dom0's minion reaches it through QEMU user networking, restricted to its two
ports (``forwards``, relayed by ``lab/relay``).  The dom0s' keys are made
with their image: exactly those are accepted.  Its log is
``RUN/master.log``; every event of its bus is recorded in ``RUN/events.log``
(``progress.EventLog``) from its start to the end of the run.
"""

import shutil
import socket
import subprocess

import salt.config
import yaml
from dom0s import LINK_PORTS
from guests import BOOT_TAG
from paths import LAB, REPO
from progress import EventLog, file_sign
from saltcli import BIN, GATHER_JOB_TIMEOUT, JOB_TIMEOUT

PUBLISH_PORT = 14505
RET_PORT = 14506


class Master:
    """The salt-master of a ``runner.Lab`` (its run folder, image and dom0s)."""

    def __init__(self, lab, error):
        self.lab = lab
        self.error = error
        self.root = lab.workdir / "master"
        self.conf_dir = self.root / "etc"

    @staticmethod
    def forwards():
        """(port in the dom0, port on the host's loopback) for each guestfwd."""
        return ((4505, PUBLISH_PORT), (4506, RET_PORT),
                (PUBLISH_PORT, PUBLISH_PORT), (RET_PORT, RET_PORT))

    def kernel_release(self):
        """The Debian kernel's release in the lab's image (its manifest)."""
        for line in (self.lab.image / "manifest").read_text().splitlines():
            if line.startswith("kernel "):
                return line.split()[1]
        raise self.error(f"no kernel release in {self.lab.image / 'manifest'}")

    def config(self):
        workdir, root = self.lab.workdir, self.root
        config = {
            "id": "labmaster",
            # Salt puts root_dir in front of every path not under it already.
            "root_dir": str(workdir),
            "pki_dir": str(root / "pki"),
            "cachedir": str(root / "cache"),
            "sock_dir": str(root / "sock"),
            "pidfile": str(root / "salt-master.pid"),
            "log_file": str(workdir / "master.log"),
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
        self.lab.results["reactor"] = config.get("reactor")
        return config

    def write_config(self):
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "master").write_text(
            yaml.safe_dump(self.config(), default_flow_style=False))
        # The dom0's key is made with its image: accept exactly that key.
        accepted = self.root / "pki" / "minions"
        accepted.mkdir(parents=True, exist_ok=True)
        for vm in self.lab.vms:
            for state in ("minions_pre", "minions_rejected", "minions_denied"):
                (self.root / "pki" / state / vm.minion).unlink(missing_ok=True)
            shutil.copy(self.lab.image / f"minion-{vm.minion}.pub", accepted / vm.minion)

    def start(self):
        """Start it once its ports (and the dom0s' link) are free here; wait
        until it listens; record its event bus (``lab.events``)."""
        lab = self.lab
        for port in (PUBLISH_PORT, RET_PORT):
            if _listening(port):
                raise self.error(f"port {port} on 127.0.0.1 is in use: another lab running?")
        for port in LINK_PORTS:
            if not _udp_free(port):
                raise self.error(
                    f"UDP port {port} on 127.0.0.1 is in use: another lab running?")
        self.write_config()
        log = open(lab.workdir / "master.stdout", "w")
        master = subprocess.Popen(
            [BIN / "salt-master", "-c", self.conf_dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        lab.procs["salt-master"] = master

        def listening():
            if master.poll() is not None:
                raise self.error(f"salt-master exited: see {lab.workdir / 'master.stdout'}")
            return True if _listening(PUBLISH_PORT) and _listening(RET_PORT) else None
        lab.wait("salt-master listening", listening,
                 [file_sign(lab.workdir / "master.log"),
                  file_sign(lab.workdir / "master.stdout")])
        opts = salt.config.master_config(str(self.conf_dir / "master"))
        lab.events = EventLog(opts, lab.workdir / "events.log")
        lab.events.start()
        lab.events.connected.wait(60)
        if lab.events.error or not lab.events.connected.is_set():
            raise self.error(f"cannot listen to the master's event bus: {lab.events.error}")
        lab.say(f"salt-master listening on 127.0.0.1:{PUBLISH_PORT}/{RET_PORT}; "
                "its event bus recorded in events.log")


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
