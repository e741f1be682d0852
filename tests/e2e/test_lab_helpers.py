"""The lab runner's helpers, without QEMU: quick, so in the layers before e2e.

``lab/facts.py`` (several facts per ``cmd.run_all``), ``lab/progress.py``
(waits that follow progress), ``lab/jobprofile.py`` (where a job's time
went), ``lab/saltout.py`` (the salt CLI's JSON), ``lab/guestlog.py`` (a
guest's console: its ticks across a migration) and the dom0 initramfs
builder (``lab/image/dom0-initramfs``), each fed real inputs: a real ``sh``
runs the facts script, real threads move the signs, a minion log in Salt's
format, console lines as the lab's guests print them.
"""

import datetime
import importlib.util
import subprocess
import sys
import threading
import time

import pytest

from tests.support import REPO

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
        "salt_|-xen_nfsroot-boot-g_|-xen_nfsroot-boot-g_|-state": {
            "__id__": "xen_nfsroot-boot-g", "result": False, "comment": "Run failed",
            "changes": {"out": "highstate", "ret": {"labdom0-a": minion_ret}}}}}}
    states = saltout.orch_states(answer)
    assert list(states) == ["xen_nfsroot-boot-g"]
    inside = saltout.minion_states(states["xen_nfsroot-boot-g"], "labdom0-a")
    assert inside["xen_nfsroot-guest-g"]["comment"] == "no"
    assert saltout.minion_states(states["xen_nfsroot-boot-g"], "labdom0-b") == {}
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
    assert guestlog.log_path("g", incoming=True) == "/var/log/xen/console/guest-g--incoming.log"


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
