"""The lab runner's helpers, without QEMU: quick, so in the layers before e2e.

``lab/facts.py`` (several facts per ``cmd.run_all``), ``lab/progress.py``
(waits that follow progress), ``lab/jobprofile.py`` (where a job's time
went), ``lab/saltout.py`` (the salt CLI's JSON), ``lab/guestlog.py`` (a
guest's console: its ticks across a migration) and the dom0 initramfs
builder (``lab/image/dom0-initramfs``), each fed real inputs: a real ``sh``
runs the facts script, real threads move the signs, a minion log in Salt's
format, console lines as the lab's guests print them.  Then the runner
itself, wired as ``lab/run`` runs it but without QEMU: its ten steps in
their order, the dom0s' QEMU command line, the master's configuration, the
salt CLI (a stand-in ``salt`` that answers for each minion it is given) and
``results.json`` with the summary.
"""

import datetime
import importlib.util
import json
import subprocess
import sys
import threading
import time

import pytest

from tests.support import REPO
from xen_nfsroot_lib import console

LAB = REPO / "lab"


def load(name, path):
    sys.path.insert(0, str(LAB))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(LAB))
    return module


facts = load("lab_facts", LAB / "facts.py")
progress = load("lab_progress", LAB / "progress.py")
jobprofile = load("lab_jobprofile", LAB / "jobprofile.py")
saltout = load("lab_saltout", LAB / "saltout.py")
guestlog = load("lab_guestlog", LAB / "guestlog.py")
initramfs = load("lab_initramfs", LAB / "image" / "dom0-initramfs" / "build.py")


def run_script(wanted):
    proc = subprocess.run(["sh", "-c", facts.script(wanted)], capture_output=True, text=True,
                          check=True)
    # cmd.run_all strips the output's trailing whitespace: so does this.
    return facts.parse(proc.stdout.rstrip())


def test_facts_keep_each_output_byte_for_byte_and_its_status():
    found = run_script({
        "two-lines": "printf 'a\\nb\\n'",
        "no-newline": "printf 'x'",
        "fails": "echo oops >&2; exit 3",
        "quiet": "true",
        "forged": "echo '@@LAB-FACT-000000000000 quiet rc 9'",
    })
    assert found["two-lines"] == {"stdout": "a\nb\n", "stderr": "", "retcode": 0}
    assert found["no-newline"]["stdout"] == "x"
    assert found["fails"] == {"stdout": "", "stderr": "oops\n", "retcode": 3}
    assert found["quiet"] == {"stdout": "", "stderr": "", "retcode": 0}
    # An output cannot forge a header: the boundary is made for each call.
    assert found["forged"]["stdout"] == "@@LAB-FACT-000000000000 quiet rc 9\n"


def test_facts_refuse_an_output_without_them():
    with pytest.raises(ValueError):
        facts.parse("ERROR: something else")


def moving_sign(stop_after):
    """A sign that changes every 0.1 s for ``stop_after`` seconds."""
    began = time.monotonic()
    return progress.Sign("ticks", lambda: min(time.monotonic() - began, stop_after) // 0.1)


def test_a_wait_goes_on_while_a_sign_moves_and_returns_the_result():
    began = time.monotonic()
    ready = threading.Timer(1.5, lambda: None)
    ready.start()
    result = progress.wait_until("ready", lambda: None if ready.is_alive() else "done",
                                 [moving_sign(10)], (1.0, 30), interval=0.05)
    assert result == "done"
    # Longer than the idle limit: the moving sign kept it waiting.
    assert time.monotonic() - began >= 1.4


def test_a_wait_gives_up_when_nothing_moves_and_says_what_it_saw():
    with pytest.raises(progress.WaitError) as caught:
        progress.wait_until("the marker", lambda: None, [moving_sign(0.3)], (0.8, 30),
                            interval=0.05)
    message = str(caught.value)
    assert message.startswith("the marker: gave up after")
    assert "nothing moved for" in message and "ticks:" in message


def test_a_wait_stops_at_its_ceiling_even_when_things_move():
    with pytest.raises(progress.WaitError, match="ceiling of 1 s"):
        progress.wait_until("forever", lambda: None, [moving_sign(60)], (10, 1), interval=0.05)


JID = "20261202005630000000"


def log_line(clock, message):
    """One line of a minion log in Salt's log_fmt_logfile."""
    return f"2026-12-02 {clock} [salt.minion      :2454][INFO    ][207] {message}"


MINION_LOG = "\n".join([
    log_line("00:56:10,000", 'Setting up the Salt Minion "labdom0"'),
    log_line("00:56:15,500", "Starting up the Salt Minion"),
    log_line("00:56:21,000", "Creating minion process manager"),
    log_line("00:56:29,100", "Minion is ready to receive requests!"),
    log_line("00:56:30,100", f"User root Executing command test.ping with jid {JID}"),
    log_line("00:56:31,100", f"Starting a new job {JID} with PID 207"),
    log_line("00:56:31,300", f"Job {JID} execution finished, return_data: True"),
]) + "\n"


def wall(text):
    moment = datetime.datetime.strptime(text, "%H:%M:%S.%f")
    moment = moment.replace(year=2026, month=12, day=2, tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def test_job_profile_splits_a_job_in_its_phases():
    jid = JID
    events = [progress.Event(0, f"salt/job/{jid}/new", {"fun": "test.ping"}, wall("00:56:30.000")),
              progress.Event(0, f"salt/job/{jid}/ret/labdom0", {}, wall("00:56:31.500"))]
    (row,) = jobprofile.profile(events, MINION_LOG, "labdom0")
    assert row == {"jid": jid, "fun": "test.ping", "deliver": 0.1, "prepare": 1.0, "run": 0.2,
                   "send": 0.2, "total": 1.5}
    assert jobprofile.startup(MINION_LOG) == {
        "setting_up": 0.0, "starting_up": 5.5, "process_manager": 11.0, "ready": 19.1}
    assert "test.ping" in jobprofile.table([row])


def test_dom0_initramfs_loads_each_module_after_its_dependencies(tmp_path):
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\n"
        "kernel/lib/crc16.ko:\n"
        "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko "
        "kernel/drivers/virtio/virtio.ko\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/drivers/virtio/virtio.ko:\n"
        "kernel/crypto/crc32c_generic.ko:\n"
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko "
        "kernel/drivers/virtio/virtio.ko\n")
    order = initramfs.load_order(tmp_path, ["virtio_pci", "virtio_blk", "ext4"])
    names = [path.rsplit("/", 1)[1] for path in order]
    assert names == ["virtio.ko", "virtio_ring.ko", "virtio_pci.ko", "virtio_blk.ko",
                     "jbd2.ko", "crc16.ko", "ext4.ko"]


def test_dom0_initramfs_is_a_newc_archive_with_a_console_node():
    archive = initramfs.Cpio()
    archive.add("dev", 0o40755)
    archive.add("dev/console", 0o20600, rdev=(5, 1))
    data = archive.finish()
    assert data.startswith(b"070701") and b"dev/console\0" in data and b"TRAILER!!!\0" in data
    assert len(data) % 4 == 0


def test_salt_cli_json_of_several_minions_is_merged():
    text = '{"labdom0-a": {"x": 1}}\n{"labdom0-b": true}\n'
    assert saltout.objects(text) == {"labdom0-a": {"x": 1}, "labdom0-b": True}
    assert saltout.objects("") == {}
    with pytest.raises(ValueError):
        saltout.objects("[1]")


def test_orchestration_states_and_the_minion_states_inside_them():
    minion_ret = {"xen_guest_|-xen_nfsroot-guest-g_|-g_|-running": {
        "__id__": "xen_nfsroot-guest-g", "result": False, "comment": "no", "changes": {}}}
    answer = {"data": {"labmaster": {
        "salt_|-xen_nfsroot-boot_|-xen_nfsroot-boot_|-state": {
            "__id__": "xen_nfsroot-boot", "result": False, "comment": "Run failed",
            "changes": {"out": "highstate", "ret": {"labdom0-a": minion_ret}}}}}}
    states = saltout.orch_states(answer)
    assert list(states) == ["xen_nfsroot-boot"]
    inside = saltout.minion_states(states["xen_nfsroot-boot"], "labdom0-a")
    assert inside["xen_nfsroot-guest-g"]["comment"] == "no"
    assert saltout.minion_states(states["xen_nfsroot-boot"], "labdom0-b") == {}
    assert saltout.orch_states("not json") == {}


CONSOLE_A = """\r
XEN-NFSROOT-GUEST-UP nfsguest uptime=41.20s\r
XEN-NFSROOT-GUEST-TICK n=1 uptime=41.31\r
XEN-NFSROOT-GUEST-TICK n=2 uptime=43.40\r
XEN-NFSROOT-GUEST-TICK n=3 uptime=45.52\r
"""


def test_guest_ticks_are_read_from_its_console():
    ticks = guestlog.ticks(CONSOLE_A)
    assert [(t.counter, t.uptime) for t in ticks] == [(1, 41.31), (2, 43.4), (3, 45.52)]
    assert ticks[0].line == "XEN-NFSROOT-GUEST-TICK n=1 uptime=41.31"
    # Where the lab reads a migrated guest's console: the formula's log name.
    assert console.log_path("g", incoming=True) == "/var/log/xen/console/guest-g--incoming.log"


def test_a_move_continues_the_ticks_a_reboot_does_not():
    before = guestlog.ticks(CONSOLE_A)
    moved = guestlog.ticks("XEN-NFSROOT-GUEST-TICK n=4 uptime=63.9\n"
                           "XEN-NFSROOT-GUEST-TICK n=5 uptime=66.0\n")
    assert guestlog.continued(before, moved) == (
        True, "n=3 uptime=45.52 -> n=4 uptime=63.9")
    rebooted = guestlog.ticks("XEN-NFSROOT-GUEST-TICK n=1 uptime=30.1\n")
    ok, why = guestlog.continued(before, rebooted)
    assert not ok and "not one run" in why
    assert guestlog.continued(before, [])[0] is False


# -- the runner and its parts, wired together without QEMU -----------------------

@pytest.fixture
def lab_code():
    """lab/runner.py and the lab modules it imports (by their plain names, as
    lab/run runs it), dropped from sys.modules afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(LAB))
    try:
        yield importlib.import_module("runner")
    finally:
        sys.path.remove(str(LAB))
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(LAB)):
                del sys.modules[name]


def make_lab(runner, tmp_path, *args):
    image = tmp_path / "image"
    image.mkdir()
    (image / "manifest").write_text("debian bookworm\nkernel 6.1.0-50-amd64\n")
    options = runner.parse_args(["--image", str(image), "--round-trips", "0", *args])
    return runner.Lab(image, tmp_path / "run", "1.5", options)


STEPS = [
    (1, "salt-run state.orchestrate orch.xen_nfsroot", "onehost.Steps.step_orchestrate", True),
    (2, "nfsguest reaches userspace on its NFS root", "onehost.Steps.step_guest_up", False),
    (3, "proven boots: nfsguest's root seen mounted, stockkernel refused, noexport's failed "
        "mount caught", "proofs.Proofs.step", False),
    (4, "second highstate of labdom0-a changes nothing, boots no failed guest again",
     "onehost.Steps.step_second_highstate", False),
    (5, "event xen_nfsroot/guest/boot boots nfsguest2; a forged one nothing",
     "onehost.Steps.step_event_boot", False),
    (6, "xen_guest.absent + nfs_export.absent remove nfsguest2", "onehost.Steps.step_absent",
     False),
    (7, "nfsguest runs on labdom0-a", "migration.Steps.step_runs_on_home", False),
    (8, "orch.xen_nfsroot_migrate moves nfsguest live to labdom0-b",
     "migration.Steps.step_migrate", False),
    (9, "a highstate of labdom0-a does not boot nfsguest again; a forced boot is refused",
     "migration.Steps.step_never_twice", False),
    (10, "evacuating labdom0-b brings nfsguest back to labdom0-a",
     "migration.Steps.step_evacuate", False),
]


def test_the_runner_runs_the_ten_steps_in_their_order(lab_code, tmp_path, monkeypatch):
    lab = make_lab(lab_code, tmp_path)
    before = []
    monkeypatch.setattr(lab.master, "start", lambda: before.append("master"))
    monkeypatch.setattr(lab.dom0s, "boot", lambda: before.append("boot"))
    monkeypatch.setattr(lab.dom0s, "wait_minions", lambda: before.append("minions"))
    monkeypatch.setattr(lab_code.onehost.Steps, "prepare", lambda self: before.append("prepare"))
    steps = []

    def step(number, title, function, fatal=False):
        steps.append((number, title,
                      f"{function.__func__.__module__}.{function.__qualname__}", fatal))
    monkeypatch.setattr(lab, "step", step)
    lab.run()
    lab.logfile.close()
    assert before == ["master", "boot", "minions", "prepare"]
    assert steps == STEPS
    assert lab.results["timings"]["whole_run"] >= 1.5


def test_the_dom0s_reach_the_master_through_its_ports(lab_code, tmp_path):
    lab = make_lab(lab_code, tmp_path)
    assert [vm.minion for vm in lab.vms] == ["labdom0-a", "labdom0-b"]
    assert lab.dom0 is lab.vms[0]
    assert [vm.link["port"] for vm in lab.vms] == [vm.link["peer"] for vm in lab.vms[::-1]]
    argv = " ".join(str(a) for a in lab.dom0.argv("tcg"))
    assert f"guestfwd=tcp:10.0.2.100:4506-cmd:{LAB / 'relay'} 14506" in argv
    assert "lab_id=labdom0-a" in argv and "-accel tcg,thread=multi" in argv


def test_the_master_serves_the_formula_and_only_the_boot_reactor(lab_code, tmp_path):
    lab = make_lab(lab_code, tmp_path)
    config = lab.master.config()
    assert config["lab_kernel_release"] == "6.1.0-50-amd64"
    assert (config["publish_port"], config["ret_port"]) == (14505, 14506)
    assert config["file_roots"] == {"base": [str(REPO / "salt")]}
    assert config["pillar_roots"] == {"base": [str(LAB / "pillar")]}
    assert config["reactor"] == [
        {"xen_nfsroot/guest/boot": ["salt://reactor/xen_nfsroot/boot.sls"]}]
    assert lab.results["reactor"] == config["reactor"]
    (lab.image / "manifest").write_text("debian bookworm\n")
    with pytest.raises(lab_code.LabError, match="no kernel release"):
        lab.master.kernel_release()


FAKE_SALT = """\
import json, subprocess, sys
args = sys.argv[1:]
target = args[args.index("-t") + 2:]
minions = target[1].split(",") if target[0] == "-L" else target[:1]
if "cmd.run_all" in args:
    script = args[args.index("cmd.run_all") + 1]
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    answer = {"retcode": proc.returncode, "stdout": proc.stdout.rstrip(), "stderr": ""}
else:
    answer = {"argv": args}
for minion in minions:
    print(json.dumps({minion: answer}))
sys.exit(1 if "fail" in args else 0)
"""


@pytest.fixture
def cli_lab(lab_code, tmp_path, monkeypatch):
    """A lab whose salt CLI is a stand-in that answers for each minion it is
    given: its own argv, or a cmd.run_all it really runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    salt = bin_dir / "salt"
    salt.write_text(f"#!{sys.executable}\n{FAKE_SALT}")
    salt.chmod(0o755)
    monkeypatch.setattr(lab_code.saltcli, "BIN", bin_dir)
    lab = make_lab(lab_code, tmp_path)
    lab.out.mkdir(parents=True)
    progress_module = sys.modules["progress"]
    lab.events = type("Events", (), {"sign": lambda self, minion=None, since=0.0:
                                     progress_module.Sign("events", lambda: 0)})()
    for vm in lab.vms:
        vm.console = type("Console", (), {"sign": lambda self:
                                          progress_module.Sign("console", lambda: 0)})()
    return lab


def test_salt_cli_keeps_every_output_and_answers_per_minion(cli_lab):
    lab = cli_lab
    argv = lab.cli.salt("ping", "test.ping")["argv"]
    assert argv == ["-c", str(lab.master.conf_dir), "--out", "json", "-t", "120",
                    "labdom0-a", "test.ping"]
    both = lab.cli.salt_all("ping-all", "test.ping")
    assert both["labdom0-b"]["argv"][6:8] == ["-L", "labdom0-a,labdom0-b"]
    assert sorted(path.name for path in lab.out.iterdir()) == [
        f"{n}-{label}.{kind}" for n, label in (("01", "ping"), ("02", "ping-all"))
        for kind in ("cmd", "err", "out", "rc")]
    assert [(c["label"], c["argv0"]) for c in lab.results["salt_calls"]] == [
        ("ping", "salt"), ("ping-all", "salt")]


def test_salt_cli_runs_several_functions_and_facts_in_one_job(cli_lab):
    lab = cli_lab
    answer = lab.cli.compound("two", [("state.apply",), ("state.single", "a", "b=1")])
    assert answer["argv"][-6:] == ["--args-separator", "@@", "state.apply,state.single",
                                   "@@", "a", "b=1"]
    found = lab.cli.facts("look", {"one": "echo 1", "two": "echo 2 >&2; exit 3"})
    assert found["one"] == {"stdout": "1\n", "stderr": "", "retcode": 0}
    assert found["two"]["retcode"] == 3
    with pytest.raises(lab.cli.error, match="^fails: exit status 1"):
        lab.cli.salt("fails", "fail")
    assert lab.cli.salt("fails-unchecked", "fail", check=False)["argv"][-1] == "fail"


def test_results_record_each_step_and_print_the_summary(lab_code, tmp_path, capsys):
    lab = make_lab(lab_code, tmp_path)
    lab.workdir.mkdir()
    lab.results.step(1, "first", 2.5, None)
    lab.results.step(2, "second", 1.0, "it broke")
    lab.results.salt_call("ping", "salt", 0.5)
    lab.results.summary(False, 10.0)
    written = json.loads((lab.workdir / "results.json").read_text())
    assert list(written) == ["workdir", "image", "loadavg_start", "timings", "salt_calls",
                             "steps", "dom0s", "ok", "loadavg_end", "salt_round_trip_median"]
    assert written["steps"]["2"] == {"title": "second", "seconds": 1.0, "ok": False,
                                     "error": "it broke"}
    assert written["timings"] == {"build": 1.5, "step_1": 2.5, "step_2": 1.0,
                                  "whole_run": 11.5}
    assert written["dom0s"]["labdom0-b"] == {"address": "10.99.0.10", "role": "dom0"}
    out = capsys.readouterr().out
    assert "\n== Xen lab summary\n" in out and out.endswith("== FAILED\n")
    assert f"  {'whole_run (s)':44s} 11.5\n" in out
    assert f"  {'salt calls / median (s)':44s} 1 / 0.5\n" in out
