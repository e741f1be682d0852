"""Migration trust with the real Salt loader, the real ssh-keygen, ssh and
a real sshd.

The module's states set the trust up in a temporary tree, as on a dom0
whose peer is itself: ``xen_migrate.key`` makes the key and publishes it to
the (masterless, local) mine, the mine then gets the temporary sshd's host
key as this dom0's host key, and ``xen_migrate.trusted`` writes the
authorized_keys, known_hosts and wrapper the sshd and ssh use. The sshd
(``/usr/sbin/sshd -D`` on 127.0.0.1 with a configuration of its own) reads
that authorized_keys; ``SetEnv PATH`` puts a fake ``xl`` first, which
records its arguments and copies its input to its output. Every connection
is made as ``xl migrate`` makes it: ``sh -c "exec SSH HOST COMMAND"`` with
the ``ssh_command`` of the library (``xen_nfsroot_lib.trust``). Nothing
under /root/.ssh or /etc/ssh is read or written (sshd needs its privilege
separation directory /run/sshd, created when missing).
"""

import os
import pathlib
import shlex
import socket
import subprocess
import time

import pytest

from xen_nfsroot_lib import trust as trust_plans

SSHD = "/usr/sbin/sshd"
INPUT = bytes(range(256)) * 64  # a migration stream is binary


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """The temporary dom0: its paths, its sshd and the ways to reach it."""

    def __init__(self, root, minion_id):
        self.root = root
        self.minion_id = minion_id
        self.key = root / "etc" / "xen-nfsroot" / "migrate_key"
        self.known_hosts = root / "etc" / "xen-nfsroot" / "known_hosts"
        self.authorized = root / "root" / ".ssh" / "authorized_keys"
        self.wrapper = root / "usr" / "local" / "sbin" / "xen-nfsroot-migrate-receive"
        self.host_key = root / "etc" / "ssh" / "ssh_host_ed25519_key"
        self.record = root / "xl.argv"
        self.bin = root / "bin"
        self.log = root / "sshd.log"
        self.port = free_port()
        self.ssh_command = None
        self.results = {}

    def peers(self):
        return {self.minion_id: {"address": "127.0.0.1", "port": self.port}}

    def run(self, remote, key=None, known_hosts=None, ssh_options="", stdin=b""):
        """Run ``exec SSH 127.0.0.1 REMOTE`` through sh -c, as xl does."""
        self.record.unlink(missing_ok=True)
        command = self.ssh_command
        if key is not None:
            command = command.replace(f"-i {self.key}", f"-i {key}")
        if known_hosts is not None:
            command = command.replace(f"UserKnownHostsFile={self.known_hosts}",
                                      f"UserKnownHostsFile={known_hosts}")
        rune = f"exec {command}{ssh_options} 127.0.0.1 {remote}".rstrip()
        proc = subprocess.run(["sh", "-c", rune], input=stdin, capture_output=True,
                              timeout=60, check=False)
        argv = self.record.read_text().splitlines() if self.record.exists() else None
        return proc, argv

    def sshd_log(self):
        return self.log.read_text(errors="replace")


def unlock_root():
    """sshd without PAM refuses every login of an account whose password field
    starts with "!" (locked), keys included, and Debian often locks root.
    Under tests/isolate /etc is this run's own overlay: there root gets "*"
    (no password, not locked); the machine's own /etc/shadow is not touched."""
    shadow = pathlib.Path("/etc/shadow")
    lines = shadow.read_text().splitlines(keepends=True)
    unlocked = ["root:*:" + line.split(":", 2)[2] if line.startswith("root:!") else line
                for line in lines]
    if unlocked != lines:
        assert os.environ.get("XEN_NFSROOT_ISOLATED"), "root is locked: run through tests/run"
        shadow.write_text("".join(unlocked))


def start_sshd(lab):
    config = lab.root / "sshd_config"
    config.write_text(
        f"Port {lab.port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {lab.host_key}\n"
        f"PidFile {lab.root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {lab.authorized}\n"
        "AuthorizedPrincipalsFile none\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "UseDNS no\n"
        "LogLevel VERBOSE\n"
        f"SetEnv PATH={lab.bin}:/usr/bin:/bin\n"
    )
    unlock_root()
    # sshd's privilege separation directory, as the openssh-server service makes it.
    pathlib.Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(lab.log)])
    deadline = time.monotonic() + 20
    while "Server listening on 127.0.0.1" not in (
            lab.log.read_text() if lab.log.exists() else ""):
        assert proc.poll() is None, lab.sshd_log() if lab.log.exists() else "sshd exited"
        assert time.monotonic() < deadline, "sshd did not start listening in 20 s"
        time.sleep(0.05)
    return proc


@pytest.fixture(scope="module")
def lab(tmp_path_factory, loaders, minion_opts):
    """The trust set up by the states, and an sshd that uses it."""
    root = tmp_path_factory.mktemp("xen-migrate")
    lab = Lab(root, minion_opts["id"])
    (root / "usr" / "local" / "sbin").mkdir(parents=True)
    (root / "root").mkdir(mode=0o700)
    lab.host_key.parent.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@lab",
                    "-f", str(lab.host_key)], check=True)
    lab.bin.mkdir()
    xl = lab.bin / "xl"
    xl.write_text(  # its arguments, and TTY when it runs on a terminal
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" >{lab.record}.new\n'
        f"if [ -t 0 ] || [ -t 1 ]; then echo TTY >>{lab.record}.new; fi\n"
        f"mv {lab.record}.new {lab.record}\n"
        "exec cat\n")
    xl.chmod(0o755)

    loaders.reset_state()
    states, modules = loaders.states, loaders.modules
    lab.results["key"] = states.xen_migrate.key(name=str(lab.key))
    lab.results["key again"] = states.xen_migrate.key(name=str(lab.key))
    lab.results["mine"] = modules.mine.get(lab.minion_id, "xen_migrate.public_keys")
    # This dom0's host key is the test sshd's.
    lab.results["send"] = modules.mine.send(
        "xen_migrate.public_keys", key=str(lab.key),
        host_keys=str(lab.host_key.parent / "ssh_host_*_key.pub"))
    trust = {"name": str(lab.authorized), "peers": lab.peers(),
             "known_hosts": str(lab.known_hosts), "wrapper": str(lab.wrapper)}
    lab.results["predicted"] = states.xen_migrate.trusted(test=True, **trust)
    lab.results["trusted"] = states.xen_migrate.trusted(**trust)
    lab.results["trusted again"] = states.xen_migrate.trusted(**trust)
    lab.trust = trust
    lab.ssh_command = trust_plans.ssh_command(
        port=lab.port, key=str(lab.key), known_hosts=str(lab.known_hosts))
    sshd = start_sshd(lab)
    try:
        yield lab
    finally:
        sshd.terminate()
        sshd.wait(timeout=20)


def test_the_states_set_up_the_trust(lab):
    key, again = lab.results["key"], lab.results["key again"]
    public = (lab.key.parent / "migrate_key.pub").read_text().strip()
    assert key.result is True
    assert key.changes == {"created": {"path": str(lab.key), "type": "ssh-ed25519",
                                       "comment": f"xen-nfsroot-migrate@{lab.minion_id}"}}
    assert key.comment == (f"Created the ed25519 migration key {lab.key}: {public}. "
                           "Published to the mine (xen_migrate.public_keys).")
    assert (again.result, again.changes) == (True, {})
    assert lab.results["mine"][lab.minion_id]["migrate_key"] == public
    assert os.stat(lab.key).st_mode & 0o777 == 0o600
    assert os.stat(lab.key.parent).st_mode & 0o777 == 0o700

    assert lab.results["send"] is True
    predicted, trusted = lab.results["predicted"], lab.results["trusted"]
    assert trusted.result is True
    assert trusted.changes == {
        "wrapper": {"path": str(lab.wrapper), "created": True},
        "known_hosts": {"path": str(lab.known_hosts), "created": True,
                        "added": [lab.minion_id]},
        "authorized_keys": {"path": str(lab.authorized), "created": True,
                            "added": [lab.minion_id]},
    }
    assert (predicted.result, predicted.changes) == (None, trusted.changes)
    assert predicted.comment == trusted.comment.replace("Updated", "Would have updated")
    again = lab.results["trusted again"]
    assert (again.result, again.changes) == (True, {})
    assert again.comment == (f"The migration trust of {lab.minion_id} is in place "
                             f"({lab.wrapper}, {lab.known_hosts}, {lab.authorized}).")

    key_type, blob = public.split()[:2]
    assert lab.authorized.read_text() == (
        f'restrict,from="127.0.0.1",command="{lab.wrapper}" {key_type} {blob} '
        f"xen-nfsroot-migrate@{lab.minion_id}\n")
    host_type, host_blob = lab.host_key.with_suffix(".pub").read_text().split()[:2]
    assert lab.known_hosts.read_text().splitlines()[-1] == (
        f"[127.0.0.1]:{lab.port} {host_type} {host_blob} {lab.minion_id}")
    assert os.stat(lab.wrapper).st_mode & 0o777 == 0o755
    assert os.stat(lab.authorized).st_mode & 0o777 == 0o600
    assert os.stat(lab.authorized.parent).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("words", [
    "xl migrate-receive",
    "xl migrate-receive -e",
    "xl migrate-receive -d",
    "xl migrate-receive -p",
    "xl migrate-receive -e -d -p",
    "xl -t migrate-receive -e",
    "xl -T migrate-receive -p",
    "xl -vv migrate-receive -d",
    "xl -t -T -vvvv migrate-receive -e -d -p",
])
def test_the_key_runs_xl_migrate_receive_with_what_xl_passes(lab, words):
    proc, argv = lab.run(words, stdin=INPUT)
    assert proc.returncode == 0, proc.stderr.decode()
    assert argv == words.split()[1:]
    assert proc.stdout == INPUT


@pytest.mark.parametrize("remote", [
    "xl list",
    "xl destroy guest",
    "sh",
    "id",
    "'xl migrate-receive; id'",
    "'xl migrate-receive && id'",
    "'xl migrate-receive $(id)'",
    "xl migrate-receive -r",
    "xl -f migrate-receive",
    "cat /etc/shadow",
    "",
])
def test_anything_else_is_refused(lab, remote):
    proc, argv = lab.run(remote)
    assert proc.returncode == 1, proc.stderr.decode()
    assert argv is None
    assert proc.stdout == b""
    assert "xen-nfsroot-migrate-receive: refused (" in proc.stderr.decode()


def test_the_request_is_never_run_by_a_shell(lab):
    marker = lab.root / "ran"
    proc, argv = lab.run(shlex.quote(f"xl migrate-receive; touch {marker}"))
    assert (proc.returncode, argv) == (1, None)
    proc, argv = lab.run(shlex.quote(f"xl migrate-receive `touch {marker}`"))
    assert (proc.returncode, argv) == (1, None)
    assert not marker.exists()


def test_port_forwarding_is_refused(lab):
    proc, argv = lab.run("", ssh_options=f" -W 127.0.0.1:{lab.port}")
    assert proc.returncode == 255
    assert "administratively prohibited" in proc.stderr.decode()
    proc, argv = lab.run("", ssh_options=f" -N -o ExitOnForwardFailure=yes "
                                         f"-R 127.0.0.1:{free_port()}:127.0.0.1:{lab.port}")
    assert proc.returncode == 255
    assert "remote port forwarding failed" in proc.stderr.decode()
    assert argv is None


def test_no_pty_is_given(lab):
    proc, _ = lab.run("xl migrate-receive", ssh_options=" -tt", stdin=b"stream")
    assert "PTY allocation request failed on channel 0" in proc.stderr.decode()
    deadline = time.monotonic() + 20
    while not lab.record.exists():  # the command runs on, without a terminal
        assert time.monotonic() < deadline, "xl did not run"
        time.sleep(0.05)
    assert lab.record.read_text().splitlines() == ["migrate-receive"]


def test_a_key_admitted_from_another_address_is_refused(lab, loaders):
    modules = loaders.modules
    other = lab.root / "other_key"
    modules.xen_migrate.create_key(str(other), comment="xen-nfsroot-migrate@dom0-elsewhere")
    line = other.with_suffix(".pub").read_text().strip()
    current = lab.authorized.read_text()
    for address, admitted in (("192.0.2.99", False), ("127.0.0.1", True)):
        text = trust_plans.plan_authorized(current, {
            lab.minion_id: None,
            "dom0-elsewhere": {"key": line, "address": address}}, str(lab.wrapper))
        lab.authorized.write_text(text)
        proc, argv = lab.run("xl migrate-receive -e", key=other, stdin=b"x")
        if admitted:
            assert (proc.returncode, argv, proc.stdout) == (0, ["migrate-receive", "-e"], b"x")
        else:
            assert proc.returncode == 255
            assert "Permission denied (publickey)" in proc.stderr.decode()
            assert argv is None
            assert ("Authentication tried for root with correct key but not from a permitted "
                    "host (host=127.0.0.1, ip=127.0.0.1, required=192.0.2.99)") in lab.sshd_log()
    # The trust state takes the unlisted peer out again.
    ret = loaders.states.xen_migrate.trusted(**lab.trust)
    assert (ret.result, ret.changes) == (True, {"authorized_keys": {
        "path": str(lab.authorized), "removed": ["dom0-elsewhere"]}})
    assert lab.authorized.read_text() == current
    proc, argv = lab.run("xl migrate-receive", key=other)
    assert (proc.returncode, argv) == (255, None)


def test_a_host_whose_key_is_not_trusted_is_not_reached(lab, loaders):
    stranger = lab.root / "stranger_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    known_hosts = lab.root / "other_known_hosts"
    known_hosts.write_text(trust_plans.plan_known_hosts({lab.minion_id: {
        "address": "127.0.0.1", "port": lab.port,
        "host_keys": [stranger.with_suffix(".pub").read_text()]}}))
    proc, argv = lab.run("xl migrate-receive", known_hosts=known_hosts)
    assert proc.returncode == 255
    assert "Host key verification failed." in proc.stderr.decode()
    assert argv is None
    known_hosts.write_text("")
    proc, argv = lab.run("xl migrate-receive", known_hosts=known_hosts)
    assert proc.returncode == 255
    assert "Host key verification failed." in proc.stderr.decode()


@pytest.mark.parametrize("address", [
    # Old code: written as from="fe80::1%x,127.0.0.1",port-forwarding,permitopen="*:*":
    # the real sshd then admitted the key from here with forwarding to anywhere.
    'fe80::1%x,127.0.0.1",port-forwarding,permitopen="*:*',
    # ... or from every host, and a known_hosts pattern matching every host.
    "fe80::1%x,*",
    "127.0.0.1\n",
])
def test_a_hostile_peer_address_changes_nothing_and_sshd_still_refuses(lab, loaders, address):
    before = {path: path.read_bytes() for path in (lab.authorized, lab.known_hosts)}
    peers = {lab.minion_id: {"address": address, "port": lab.port}}
    ret = loaders.states.xen_migrate.trusted(**dict(lab.trust, peers=peers))
    assert ret.result is False
    assert ret.changes == {}
    assert ret.comment.startswith(f"peers.{lab.minion_id}.address: {address!r} ")
    assert {path: path.read_bytes() for path in before} == before
    # sshd reads the one entry it had: forwarding is still refused, the forced
    # command still runs, and ssh still finds only this host in known_hosts.
    proc, argv = lab.run("", ssh_options=f" -W 127.0.0.1:{lab.port}")
    assert proc.returncode == 255
    assert "administratively prohibited" in proc.stderr.decode()
    proc, argv = lab.run("xl migrate-receive", stdin=b"x")
    assert (proc.returncode, argv, proc.stdout) == (0, ["migrate-receive"], b"x")
    found = subprocess.run(["ssh-keygen", "-F", "other.example.org", "-f",
                            str(lab.known_hosts)], capture_output=True, check=False)
    assert found.returncode == 1
