"""End to end: the Xen lab (``lab/run``) under QEMU, judged from its real output.

One run of the lab per test session: a real Xen 4.17 with a Debian dom0 under
QEMU, its salt-minion driven by a real salt-master on this machine, the
formula exporting each guest's root with the kernel NFS server and booting it
with ``xl``.  The lab keeps every command's output in ``RUN/out/`` (the
``salt`` CLI's JSON, ``NN-label.out``); these tests read those outputs and
the QEMU serial console, never the lab's own verdict.

Missing QEMU or debootstrap is a broken setup: the lab installs them, and
fails (never skips) when it cannot.
"""

import json
import os
import pathlib
import re
import subprocess

import pytest

from tests.support import REPO

pytestmark = pytest.mark.e2e

SERVER = "10.99.0.1"
GUEST = "nfsguest"
EVENT_GUEST = "nfsguest2"
FORGED_GUEST = "nosuchguest"
MINION = "labdom0"
LAB_TIMEOUT = 60 * 60


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Run the whole lab once; yield its run folder and exit status."""
    workdir = tmp_path_factory.mktemp("xen-lab")
    proc = subprocess.Popen(
        [str(REPO / "lab" / "run"), "--workdir", str(workdir)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        stdout, _ = proc.communicate(timeout=LAB_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the lab stop QEMU and its salt-master itself.
        proc.terminate()
        stdout, _ = proc.communicate(timeout=120)
        pytest.fail(f"the lab did not finish within {LAB_TIMEOUT} s:\n{stdout[-3000:]}")
    (workdir / "lab-run.log").write_text(stdout)
    print(stdout)
    return LabRun(workdir, proc.returncode, stdout)


class LabRun:
    def __init__(self, workdir, returncode, stdout):
        self.workdir = pathlib.Path(workdir)
        self.returncode = returncode
        self.stdout = stdout

    def outputs(self, label):
        """Raw stdout of every command the lab ran under LABEL, in order."""
        pattern = re.compile(rf"^\d+-{re.escape(label)}\.out$")
        paths = sorted(
            (path for path in (self.workdir / "out").iterdir() if pattern.match(path.name)),
            key=lambda path: int(path.name.split("-", 1)[0]),
        )
        assert paths, (
            f"the lab ran no command {label!r}; its output ends with:\n"
            + "\n".join(self.stdout.splitlines()[-30:])
        )
        return [path.read_text() for path in paths]

    def minion(self, label, index=-1):
        """The dom0 minion's return for a ``salt labdom0 ...`` command."""
        answer = json.loads(self.outputs(label)[index])
        assert MINION in answer, answer
        return answer[MINION]

    def shell(self, label, index=-1):
        """stdout of a ``cmd.run_all`` on the dom0 (its exit status checked)."""
        ret = self.minion(label, index)
        assert ret["retcode"] == 0, ret
        return ret["stdout"]


def export_lines(exportfs_v):
    """``exportfs -v`` output as {path: client(options)} (long paths wrap)."""
    entries = {}
    path = None
    for line in exportfs_v.splitlines():
        fields = line.split()
        if not fields:
            continue
        if not line[0].isspace():
            path = fields[0]
            fields = fields[1:]
        if fields:
            entries[path] = fields[0]
    return entries


def test_lab_passes(lab):
    assert lab.returncode == 0, "\n".join(lab.stdout.splitlines()[-40:])


def test_xen_hypervisor_booted_the_dom0(lab):
    console = (lab.workdir / "console.log").read_text(errors="replace")
    assert re.search(r"\(XEN\) Xen version 4\.17\.\d+", console)
    assert "LAB-DOM0-READY" in console
    assert lab.minion("test-ping") is True


def test_orchestrate_exports_with_the_kernel_nfsd(lab):
    orchestrate = json.loads(lab.outputs("orchestrate")[-1])
    assert "xen_nfsroot-export-nfsguest" in json.dumps(orchestrate)
    exports = export_lines(lab.shell("exportfs-v-after-orchestrate"))
    client = exports["/srv/xen/guest"]
    assert client.startswith("10.99.0.2(")
    options = client[client.index("(") + 1:-1].split(",")
    assert {"rw", "no_root_squash", "async", "no_subtree_check"} <= set(options)
    # The admin's own export in /etc/exports is kept, and the file untouched.
    assert exports["/srv/unrelated"].startswith("10.99.0.200(")
    seed = (REPO / "lab" / "image" / "dom0" / "etc" / "exports").read_text()
    assert lab.minion("etc-exports").rstrip("\n") == seed.rstrip("\n")
    drop_in = lab.minion("exports-drop-in")
    assert re.search(r"^/srv/xen/guest\s+10\.99\.0\.2\(", drop_in, re.M), drop_in
    fstab = lab.minion("guest-fstab")
    assert re.search(r"^/dev/nfs\s+/\s+nfs\s", fstab, re.M), fstab
    assert re.search(r"^#.*/dev/sdb2\s+swap", fstab, re.M), fstab
    config = lab.minion("xl-config")
    assert f"nfsroot={SERVER}:/srv/xen/guest" in config
    assert "/dev/nfs" in config
    domains = lab.shell("xl-list-after-orchestrate")
    assert re.search(rf"^{GUEST}\s+\d+\s", domains, re.M), domains


def root_line(console):
    lines = [line for line in console.splitlines() if "XEN-NFSROOT-GUEST-ROOT" in line]
    assert lines, console
    return lines[-1].split("XEN-NFSROOT-GUEST-ROOT", 1)[1].strip()


def test_guest_reaches_userspace_on_its_nfs_root(lab):
    console = lab.minion(f"console-{GUEST}")
    assert f"XEN-NFSROOT-GUEST-UP {GUEST} " in console
    line = root_line(console)
    assert line.startswith(f"{SERVER}:/srv/xen/guest / nfs "), line
    assert "vers=3" in line
    # The guest's kernel command line was built by the formula from pillar.
    assert re.search(r"nfsroot=10\.99\.0\.1:/srv/xen/guest\b", console)
    assert "ip=10.99.0.2:" in console


def test_server_reads_the_file_the_guest_wrote(lab):
    written = lab.minion(f"guest-was-here-{GUEST}")
    console = lab.minion(f"console-{GUEST}")
    assert written.splitlines() == [GUEST, root_line(console)]


def test_second_highstate_changes_nothing(lab):
    states = lab.minion("highstate-again")
    assert isinstance(states, dict) and states, states
    assert all(state["result"] is True for state in states.values()), states
    assert {key: state["changes"] for key, state in states.items() if state["changes"]} == {}


def test_event_boots_a_defined_guest_and_a_forged_one_nothing(lab):
    console = lab.minion(f"console-{EVENT_GUEST}")
    assert f"XEN-NFSROOT-GUEST-UP {EVENT_GUEST} " in console
    assert root_line(console).startswith(f"{SERVER}:/srv/xen/guest2 / nfs ")
    domains = lab.shell("xl-list-after-events")
    names = [line.split()[0] for line in domains.splitlines()[1:]]
    assert sorted(names) == sorted(["Domain-0", GUEST, EVENT_GUEST]), domains
    assert lab.minion("forged-config-exists") is False


def test_absent_removes_guest_config_and_export(lab):
    domains = lab.shell("xl-list-after-absent")
    assert EVENT_GUEST not in domains and GUEST in domains
    assert lab.minion("absent-config-exists") is False
    exports = export_lines(lab.shell("exportfs-v-after-absent"))
    assert "/srv/xen/guest2" not in exports
    assert set(exports) == {"/srv/xen/guest", "/srv/unrelated"}


def test_no_lab_process_left_behind(lab):
    leftovers = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        mine = str(lab.workdir) in cmdline or str(REPO / "lab" / "relay") in cmdline
        if mine and proc.name != str(os.getpid()):
            leftovers.append(cmdline)
    assert leftovers == []
