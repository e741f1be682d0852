"""The xl/xm test double itself, against the specimens and the real tools' messages."""

import json
import os
import re
import subprocess
import time

import pytest

from tests.support import DATA
from tests.support import SPECIMENS as SPECIMENS_DIR
from tests.support.xen_double import poll

SEED_KERNEL = "vmlinuz-2.6.18-53.1.14.el5.myxen"


@pytest.fixture
def kernel(tmp_path):
    path = tmp_path / "boot" / SEED_KERNEL
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF kernel")
    return str(path)


def run(double, *argv):
    return subprocess.run(list(argv), env={**os.environ, **double.env}, capture_output=True,
                          text=True, check=False)


def key_paths(value, prefix=""):
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in key_paths(v, f"{prefix}/{k}")} | {prefix}
    if isinstance(value, list):
        return {p for v in value for p in key_paths(v, f"{prefix}[]")} | {prefix}
    return {prefix}


def test_double_list_is_byte_for_byte_the_real_layout(make_xen_double):
    double = make_xen_double("plain")
    proc = run(double, "xl", "list")
    assert proc.returncode == 0
    assert proc.stdout == (SPECIMENS_DIR / "xl-list-dom0-only.txt").read_text()


def test_double_list_long_has_the_specimens_shape(make_xen_double, kernel, tmp_path):
    double = make_xen_double("long")
    ramdisk = tmp_path / "initrd.img"
    ramdisk.write_bytes(b"initrd")
    config = tmp_path / "nfsguest.cfg"
    config.write_text(f'name = "nfsguest"\ntype = "pv"\nkernel = "{kernel}"\n'
                      f'ramdisk = "{ramdisk}"\nmemory = 256\nvif = [ "bridge=xenbr0" ]\n'
                      'root = "/dev/nfs"\nextra = "boot=nfs"\non_crash = "preserve"\n')
    proc = run(double, "xl", "create", str(config))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0, "", f"Parsing config from {config}\n")
    proc = run(double, "xl", "list", "-l")
    ours = json.loads(proc.stdout)
    real = json.loads((SPECIMENS_DIR / "xl-list-l.json").read_text())
    assert key_paths(ours) == key_paths(real)
    assert ours[0]["config"]["c_info"]["run_hotplug_scripts"] == "True"
    assert ours[0]["config"]["b_info"]["cmdline"] == "root=/dev/nfs boot=nfs"
    assert proc.stdout.startswith("[\n    {\n        \"domid\": 1,\n")


@pytest.mark.parametrize(
    ("argv", "settings", "code", "message"),
    [
        (["xl", "list", "ghost"], {}, 1, "ghost is an invalid domain identifier (rc=-6)\n"),
        (["xl", "destroy", "ghost"], {}, 1, "ghost is an invalid domain identifier (rc=-6)\n"),
        (["xl", "create", "-n", "/etc/xen/x.cfg"], {"hypervisor": False}, 1,
         "ERROR:  Can't find hypervisor information in sysfs!\n"),
        (["xm", "list", "ghost"], {}, 1, "Error: Domain 'ghost' does not exist.\n"),
        (["xm", "list"], {"xend": False}, 1,
         "Error: Unable to connect to xend: No such file or directory. Is xend running?\n"),
    ],
)
def test_double_messages_and_exit_codes(make_xen_double, argv, settings, code, message):
    double = make_xen_double("msg", toolstacks=("xl", "xm"), **settings)
    proc = run(double, *argv)
    assert (proc.returncode, proc.stderr) == (code, message)


def test_double_xm_needs_both_nfs_keys(make_xen_double, kernel, tmp_path):
    double = make_xen_double("xm-nfs", toolstacks=("xm",))
    config = tmp_path / "g.cfg"
    config.write_text(f'name = "g"\nkernel = "{kernel}"\nnfs_root = "/xen"\n')
    proc = run(double, "xm", "create", str(config))
    assert (proc.returncode, proc.stderr) == (1, "Error: Must set nfs root and nfs server\n")
    assert double.domains() == {}


# --- guest consoles, written as xenconsoled writes them ----------------------------------

CONSOLES = DATA / "consoles"
BOOTS = CONSOLES / "double-boots.log"
PANICS = CONSOLES / "double-panics.log"
RESUMES = CONSOLES / "double-resumes.log"
POWERS_OFF = CONSOLES / "double-powers-off.log"


def printed(transcript, name):
    """What a guest named ``name`` prints from ``transcript``: its bytes, @NAME@ replaced."""
    return transcript.read_bytes().replace(b"@NAME@", name.encode())


def halves(transcript, name):
    lines = printed(transcript, name).splitlines(keepends=True)
    return b"".join(lines[:len(lines) // 2]), b"".join(lines[len(lines) // 2:])


def guest_config(tmp_path, kernel, name="g", **keys):
    lines = [f'name = "{name}"', f'kernel = "{kernel}"', "memory = 128", 'vif = [ "" ]']
    lines += [f'{key} = "{value}"' for key, value in keys.items()]
    path = tmp_path / f"{name}.cfg"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def listing(double, tool="xl"):
    """``xl list`` (or ``xm list``) as {name: (id, state letters)}, Domain-0 left out."""
    proc = run(double, tool, "list")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    return {row[0]: (int(row[1]), row[4]) for row in rows if row[0] != "Domain-0"}


def long_listing(double):
    proc = run(double, "xl", "list", "-l")
    assert proc.returncode == 0, proc.stderr
    return {entry["config"]["c_info"]["name"]: entry for entry in json.loads(proc.stdout)}


@pytest.fixture
def consoles(tmp_path):
    path = tmp_path / "console"
    path.mkdir()
    return path


@pytest.fixture
def logged_double(make_xen_double, consoles):
    """A double whose xenconsoled logs guests into ``consoles``."""

    def make(name, toolstacks=("xl",), **settings):
        return make_xen_double(name, toolstacks, console_dir=str(consoles), **settings)

    return make


def test_console_log_is_created_empty_when_the_guest_appears(make_xen_double, consoles, kernel,
                                                              tmp_path):
    quiet = make_xen_double("quiet")
    assert run(quiet, "xl", "create", guest_config(tmp_path, kernel, "q")).returncode == 0
    assert list(consoles.iterdir()) == []  # no console_dir: xenconsoled is not logging
    double = make_xen_double("logged", console_dir=str(consoles))
    assert run(double, "xl", "create", guest_config(tmp_path, kernel)).returncode == 0
    log = consoles / "guest-g.log"
    assert double.console_log("g") == log
    assert log.read_bytes() == b""
    assert oct(log.stat().st_mode & 0o777) == "0o644"


def test_console_transcript_is_appended_at_each_boot(make_xen_double, consoles, kernel,
                                                     tmp_path):
    double = make_xen_double("boots", console_dir=str(consoles),
                             boot={"*": {"console": str(BOOTS)}})
    config = guest_config(tmp_path, kernel)
    assert run(double, "xl", "create", config).returncode == 0
    assert b"Debian GNU/Linux 12 g hvc0\r\n" in double.console("g")
    assert b"@NAME@" not in double.console("g")
    assert double.console("g") == printed(BOOTS, "g")
    assert run(double, "xl", "destroy", "g").returncode == 0
    assert run(double, "xl", "create", config).returncode == 0
    assert double.console("g") == printed(BOOTS, "g") * 2  # appended, never truncated
    assert run(double, "xl", "create", guest_config(tmp_path, kernel, "other")).returncode == 0
    assert double.console("other") == printed(BOOTS, "other")
    assert sorted(p.name for p in consoles.iterdir()) == ["guest-g.log", "guest-other.log"]


def test_a_guest_that_runs_on_is_recorded_as_rpc_mountd_would(make_xen_double, consoles,
                                                               kernel, tmp_path):
    rmtab = tmp_path / "rmtab"
    double = make_xen_double("mounts", console_dir=str(consoles), nfs_rmtab=str(rmtab),
                             boot={"g": {"console": str(BOOTS), "address": "192.0.2.10"},
                                   "crasher": {"console": str(PANICS), "then": "crash",
                                               "address": "192.0.2.11"}})
    extra = {"extra": "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/srv/xen/g,vers=3"}
    assert run(double, "xl", "create", guest_config(tmp_path, kernel, **extra)).returncode == 0
    assert rmtab.read_text() == "192.0.2.10:/srv/xen/g:0x00000001\n"
    config = guest_config(tmp_path, kernel, "crasher", **extra)
    assert run(double, "xl", "create", config).returncode == 0
    assert rmtab.read_text() == "192.0.2.10:/srv/xen/g:0x00000001\n"  # it never mounted


def test_console_second_half_arrives_after_the_delay(make_xen_double, consoles, kernel,
                                                     tmp_path):
    delay = 1.5
    double = make_xen_double("slow", console_dir=str(consoles),
                             boot={"g": {"console": str(BOOTS), "delay": delay}})
    first, second = halves(BOOTS, "g")
    started = time.monotonic()
    proc = run(double, "xl", "create", guest_config(tmp_path, kernel))
    returned = time.monotonic() - started
    seen = double.console("g")
    if time.monotonic() - started < delay:
        assert seen == first
        assert returned < delay  # xl create does not wait for the guest
    assert (proc.returncode, proc.stdout) == (0, "")
    assert poll(lambda: double.console("g") == first + second)
    assert time.monotonic() - started >= delay
    assert double.spawns() == [["xl", "create", str(tmp_path / "g.cfg")]]
    assert listing(double) == {"g": (1, "-b----")}


def test_a_paused_guest_prints_nothing_until_unpaused(make_xen_double, consoles, kernel,
                                                      tmp_path):
    double = make_xen_double("paused", console_dir=str(consoles),
                             boot={"g": {"console": str(BOOTS)}})
    assert run(double, "xl", "create", "-p", guest_config(tmp_path, kernel)).returncode == 0
    assert listing(double) == {"g": (1, "--p---")}
    assert double.console("g") == b""
    assert run(double, "xl", "unpause", "g").returncode == 0
    assert listing(double) == {"g": (1, "-b----")}
    assert double.console("g") == printed(BOOTS, "g")


def test_crash_destroys_the_guest_by_default(make_xen_double, consoles, kernel, tmp_path):
    double = make_xen_double("crash", console_dir=str(consoles),
                             boot={"g": {"console": str(PANICS), "then": "crash"}})
    proc = run(double, "xl", "create", guest_config(tmp_path, kernel))
    assert proc.returncode == 0
    assert listing(double) == {}
    assert double.console("g") == printed(PANICS, "g")


def test_crash_with_preserve_keeps_a_crashed_domain(make_xen_double, consoles, kernel,
                                                    tmp_path):
    double = make_xen_double("preserve", console_dir=str(consoles),
                             boot={"g": {"console": str(PANICS), "then": "crash", "delay": 1}})
    started = time.monotonic()
    assert run(double, "xl", "create",
               guest_config(tmp_path, kernel, on_crash="preserve")).returncode == 0
    rows = listing(double)
    if time.monotonic() - started < 1:
        assert rows == {"g": (1, "-b----")}  # it runs until it crashes
    assert poll(lambda: listing(double) == {"g": (1, "---sc-")})
    assert double.console("g") == printed(PANICS, "g")
    assert long_listing(double)["g"]["config"]["on_crash"] == "preserve"
    assert run(double, "xl", "destroy", "g").returncode == 0
    assert listing(double) == {}


def test_crash_with_restart_boots_again_three_times_then_destroys(make_xen_double, consoles,
                                                                  kernel, tmp_path):
    double = make_xen_double("restart", console_dir=str(consoles),
                             boot={"g": {"console": str(PANICS), "then": "crash", "delay": 0.4}})
    assert run(double, "xl", "create",
               guest_config(tmp_path, kernel, on_crash="restart")).returncode == 0
    ids = set()

    def four_boots_then_gone():
        ids.update(d["id"] for d in double.domains().values())
        return double.console("g") == printed(PANICS, "g") * 4 and not double.domains()

    assert poll(four_boots_then_gone, timeout=30)
    assert ids <= {1, 2, 3, 4}  # a new id at each boot
    assert json.loads((double.dir / "domains.json").read_text())["next_id"] == 5
    assert listing(double) == {}


def test_crash_with_rename_restart_keeps_the_dead_one_under_a_dated_name(
        make_xen_double, consoles, kernel, tmp_path):
    double = make_xen_double("rename", console_dir=str(consoles),
                             boot={"g": {"console": str(PANICS), "then": "crash"}})
    assert run(double, "xl", "create",
               guest_config(tmp_path, kernel, on_crash="rename-restart")).returncode == 0
    double.configure(boot={"g": {"console": str(BOOTS)}})  # the next boot goes well
    rows = listing(double)
    assert len(rows) == 1
    [(dead, (dead_id, dead_state))] = rows.items()
    assert re.fullmatch(r"g-\d{8}T\d{4}Z", dead)
    assert (dead_id, dead_state) == (1, "---sc-")
    assert poll(lambda: listing(double).get("g") == (2, "-b----"))
    assert listing(double)[dead] == (1, "---sc-")
    detailed = long_listing(double)
    assert detailed[dead]["config"]["c_info"]["uuid"] != detailed["g"]["config"]["c_info"]["uuid"]
    assert detailed["g"]["config"]["on_crash"] == "restart_rename"
    assert double.console("g") == printed(PANICS, "g") + printed(BOOTS, "g")


@pytest.mark.parametrize(("action", "after"), [("coredump-destroy", {}),
                                               ("coredump-restart", {"g": (2, "-b----")})])
def test_crash_with_coredump_writes_the_core_first(logged_double, kernel, tmp_path, action,
                                                   after):
    dumps = tmp_path / "dump"
    double = logged_double("dump", dump_dir=str(dumps),
                           boot={"g": {"console": str(PANICS), "then": "crash"}})
    assert run(double, "xl", "create", guest_config(tmp_path, kernel, on_crash=action)
               ).returncode == 0
    double.configure(boot={})
    assert (dumps / "g").is_file()  # XEN_DUMP_DIR "/%s" of the name
    assert poll(lambda: listing(double) == after, timeout=10)


def test_crash_with_soft_reset_destroys_a_pv_guest(make_xen_double, consoles, kernel, tmp_path):
    double = make_xen_double("soft", console_dir=str(consoles),
                             boot={"g": {"console": str(PANICS), "then": "crash"}})
    assert run(double, "xl", "create", guest_config(tmp_path, kernel, on_crash="soft-reset")
               ).returncode == 0
    assert listing(double) == {"g": (1, "---sc-")}  # kept for the reset, 2 s later
    assert poll(lambda: listing(double) == {}, timeout=10)  # soft reset is HVM-only


def test_crash_with_soft_reset_boots_an_hvm_guest_again_in_place(make_xen_double, consoles,
                                                                 tmp_path):
    double = make_xen_double("soft-hvm", console_dir=str(consoles),
                             boot={"h": {"console": str(PANICS), "then": "crash"}})
    config = tmp_path / "h.cfg"
    config.write_text('name = "h"\ntype = "hvm"\nmemory = 128\non_crash = "soft-reset"\n')
    assert run(double, "xl", "create", str(config)).returncode == 0
    double.configure(boot={"h": {"console": str(BOOTS)}})
    assert poll(lambda: listing(double) == {"h": (1, "-b----")}, timeout=10)  # the same id
    assert double.console("h") == printed(PANICS, "h") + printed(BOOTS, "h")


def test_crash_without_a_monitor_leaves_the_domain_crashed(make_xen_double, consoles, kernel,
                                                           tmp_path):
    double = make_xen_double("nomonitor", console_dir=str(consoles),
                             boot={"g": {"console": str(PANICS), "then": "crash"}})
    assert run(double, "xl", "create", "-e", guest_config(tmp_path, kernel)).returncode == 0
    assert listing(double) == {"g": (1, "---sc-")}  # on_crash is destroy, but nobody acts


@pytest.mark.parametrize(("on_poweroff", "after"), [(None, {}), ("preserve", {"g": (1, "---s--")})])
def test_poweroff_applies_on_poweroff(logged_double, kernel, tmp_path, on_poweroff, after):
    double = logged_double("off", boot={"g": {"console": str(POWERS_OFF), "then": "poweroff"}})
    keys = {"on_poweroff": on_poweroff} if on_poweroff else {}
    assert run(double, "xl", "create", guest_config(tmp_path, kernel, **keys)).returncode == 0
    assert listing(double) == after
    assert double.console("g") == printed(POWERS_OFF, "g")
    if on_poweroff:
        assert long_listing(double)["g"]["config"]["on_poweroff"] == "preserve"


def test_list_long_shows_actions_only_where_libxl_does(make_xen_double, kernel, tmp_path):
    """DESTROY is libxl's init_val for every action: the JSON leaves it out."""
    double = make_xen_double("actions")
    assert run(double, "xl", "create", guest_config(tmp_path, kernel)).returncode == 0
    config = long_listing(double)["g"]["config"]
    assert {k: v for k, v in config.items() if k.startswith("on_")} == {
        "on_reboot": "restart", "on_soft_reset": "soft_reset"}
    assert list(config)[-2:] == ["on_reboot", "on_soft_reset"]


def test_unknown_on_crash_is_refused_as_xl_does(make_xen_double, kernel, tmp_path):
    double = make_xen_double("bogus")
    config = guest_config(tmp_path, kernel, on_crash="explode")
    proc = run(double, "xl", "create", config)
    assert (proc.returncode, proc.stderr) == (
        1, f'Parsing config from {config}\nUnknown on_crash action "explode" specified\n')
    assert double.domains() == {}


def xm_config(tmp_path, kernel, **keys):
    lines = ['name = "g"', f'kernel = "{kernel}"', "memory = 128"]
    lines += [f"{key} = {value!r}" for key, value in keys.items()]
    path = tmp_path / "g-xm.cfg"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(("keys", "after"), [
    ({}, {}),  # on_crash restart (xend's default), refused: it ran less than 60 s
    ({"on_crash": "preserve"}, {"g": (1, "----c-")}),
])
def test_xm_crash_follows_xend(logged_double, kernel, tmp_path, keys, after):
    double = logged_double("xend", ("xm",), boot={"g": {"console": str(PANICS), "then": "crash"}})
    proc = run(double, "xm", "create", xm_config(tmp_path, kernel, **keys))
    assert proc.returncode == 0, proc.stderr
    assert listing(double, "xm") == after
    assert double.console("g") == printed(PANICS, "g")


def test_xm_refuses_an_unknown_on_crash(make_xen_double, kernel, tmp_path):
    double = make_xen_double("xend-bogus", toolstacks=("xm",))
    proc = run(double, "xm", "create", xm_config(tmp_path, kernel, on_crash="explode"))
    assert (proc.returncode, proc.stderr) == (
        1, "Error: Invalid Configuration: Invalid event handling mode: crash\n")


# --- xl migrate between two doubles -------------------------------------------------------


@pytest.fixture
def dom0s(make_xen_double, tmp_path):
    """dom0-a (sending, guest g running) and dom0-b (receiving), each logging consoles."""
    for side in ("a", "b"):
        (tmp_path / f"console-{side}").mkdir()
    receiver = make_xen_double("dom0-b", console_dir=str(tmp_path / "console-b"))
    sender = make_xen_double("dom0-a", console_dir=str(tmp_path / "console-a"),
                             migrate_targets={"dom0-b": str(receiver.dir)})
    return sender, receiver


@pytest.fixture
def running_guest(dom0s, kernel, tmp_path):
    sender, _ = dom0s
    assert run(sender, "xl", "create", guest_config(tmp_path, kernel)).returncode == 0
    return "g"


def expect_lines(text, patterns):
    """Each line of text matches its pattern (re.fullmatch), and there are as many."""
    lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    assert len(lines) == len(patterns), text
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), (line, pattern)


E = re.escape
TRANSFER = [
    E("migration target: Ready to receive domain."),
    r"Saving to migration stream new xl format \(info 0x3/0x0/(\d+)\)",
    r"Loading new save file <incoming migration stream> \(new xl fmt info 0x3/0x0/\d+\)",
    E(" Savefile contains xl domain config in JSON format"),
    E("Parsing config from <saved>"),
    E("xc: info: Saving domain 1, type x86 PV"),
    E("xc: info: Found x86 PV domain from Xen 4.17"),
    E("xc: info: Restoring domain"),
    E("xc: info: Restore successful"),
    r"xc: info: XenStore: mfn 0x[0-9a-f]+, dom 0, evt 1",
    r"xc: info: Console: mfn 0x[0-9a-f]+, dom 0, evt 2",
    E("migration target: Transfer complete, requesting permission to start domain."),
]
GO = [
    E("migration sender: Target has acknowledged transfer."),
    E("migration sender: Giving target permission to start."),
    E("migration target: Got permission, starting domain."),
    E("migration target: Domain started successsfully."),  # sic, xl_migrate.c
]
TRANSPORT_255 = (r"libxl: info: libxl_exec.c:117:libxl_report_child_exitstatus: migration "
                 r"transport process \[\d+\] exited with error status 255")


def test_migrate_moves_the_guest_and_says_what_xl_says(dom0s, running_guest):
    sender, receiver = dom0s
    proc = run(sender, "xl", "migrate", "--live", "g", "dom0-b")
    assert (proc.returncode, proc.stdout) == (0, "")
    expect_lines(proc.stderr, [*TRANSFER, *GO,
                               E("migration sender: Target reports successful startup."),
                               E("Migration successful.")])
    saving, loading = re.findall(r"0x3/0x0/(\d+)", proc.stderr)
    assert saving == loading
    assert listing(sender) == {}
    assert listing(receiver) == {"g": (1, "-b----")}
    assert receiver.spawns() == [["xl", "migrate-receive"], ["xl", "list"]]


def test_migrate_records_the_ssh_command_and_forwards_e_d_p(dom0s, running_guest):
    sender, receiver = dom0s
    proc = run(sender, "xl", "migrate", "-s", "ssh -o BatchMode=yes", "-e", "--debug", "-p",
               "g", "dom0-b")
    assert proc.returncode == 0, proc.stderr
    assert sender.spawns("xl", "migrate") == [
        ["xl", "migrate", "-s", "ssh -o BatchMode=yes", "-e", "--debug", "-p", "g", "dom0-b"]]
    assert receiver.spawns("xl", "migrate-receive") == [["xl", "migrate-receive", "-e", "-d",
                                                         "-p"]]
    assert listing(receiver) == {"g": (1, "--p---")}  # -p: left paused
    assert run(receiver, "xl", "unpause", "g").returncode == 0
    assert listing(receiver) == {"g": (1, "-b----")}


def test_migrate_with_a_raw_transport_forwards_nothing(dom0s, running_guest):
    """-s '': sh -c HOST; the receiver runs its own command (its flags, its stderr)."""
    sender, receiver = dom0s
    sender.configure(migrate_targets={"nc 10.98.0.2 8002": str(receiver.dir)})
    proc = run(sender, "xl", "migrate", "-s", "", "-p", "g", "nc 10.98.0.2 8002")
    assert proc.returncode == 0
    assert "migration target:" not in proc.stderr
    assert "migration sender: Target reports successful startup." in proc.stderr
    assert receiver.spawns("xl", "migrate-receive") == [["xl", "migrate-receive"]]
    assert listing(receiver) == {"g": (1, "-b----")}  # -p never reached it


def raw_stderr(double, *argv):
    """stderr as bytes: text mode would turn OpenSSH's CR LF into LF."""
    return subprocess.run(list(argv), env={**os.environ, **double.env}, capture_output=True,
                          check=False).stderr


@pytest.mark.parametrize(("argv", "transport", "status"), [
    (["g", "elsewhere"],
     "ssh: Could not resolve hostname elsewhere: Name or service not known\r\n", 255),
    (["-s", "", "g", "relay 10.98.0.9"], "sh: 1: relay: not found\n", 127),
], ids=["ssh", "raw-transport"])
def test_migrate_to_an_unknown_host_fails_as_the_transport_does(dom0s, running_guest, argv,
                                                                transport, status):
    sender, receiver = dom0s
    assert raw_stderr(sender, "xl", "migrate", *argv).startswith(transport.encode())
    proc = run(sender, "xl", "migrate", *argv)
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        E(transport.rstrip("\r\n")),
        E("libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading "
          "banner from migration receiver stream"),
        TRANSPORT_255.replace("255", str(status))])
    assert listing(sender) == {"g": (1, "-b----")}
    assert receiver.domains() == {}


def test_migrate_receiver_unreachable_leaves_the_source_alone(dom0s, running_guest):
    sender, receiver = dom0s
    sender.configure(migrate_failure={"g": "receiver-unreachable"})
    assert raw_stderr(sender, "xl", "migrate", "g", "dom0-b").startswith(
        b"ssh: connect to host dom0-b port 22: Connection refused\r\n")
    proc = run(sender, "xl", "migrate", "g", "dom0-b")
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        E("ssh: connect to host dom0-b port 22: Connection refused"),
        E("libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading "
          "banner from migration receiver stream"),
        TRANSPORT_255])
    assert listing(sender) == {"g": (1, "-b----")}
    assert receiver.spawns() == []  # its xl never ran
    assert receiver.domains() == {}


def test_migrate_incoming_left_keeps_a_paused_copy_on_the_target(dom0s, running_guest):
    sender, receiver = dom0s
    sender.configure(migrate_failure={"g": "incoming-left"})
    proc = run(sender, "xl", "migrate", "g", "dom0-b")
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        *TRANSFER,
        E("libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading "
          "ready message from migration receiver stream"),
        TRANSPORT_255,
        E("Migration failed, resuming at sender.")])
    assert listing(sender) == {"g": (1, "-b----")}
    assert listing(receiver) == {"g--incoming": (1, "--p---")}
    assert list(long_listing(receiver)) == ["g--incoming"]
    assert receiver.console("g--incoming") == b""  # created when it appeared, never ran
    # Trying again: the receiver's leftover blocks the new incoming domain.
    sender.configure(migrate_failure={})
    proc = run(sender, "xl", "migrate", "g", "dom0-b")
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        *TRANSFER[:6],
        E('libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 2:Domain with name '
          '"g--incoming" already exists.'),
        E("libxl: error: libxl_create.c:1294:initiate_domain_create: Domain 2:cannot make "
          "domain: -6"),
        E("migration target: Domain creation failed (code -3)."),
        E("migration sender: libxl_domain_suspend failed (rc=-3)"),
        TRANSPORT_255.replace("255", "1"),
        E("Migration failed, resuming at sender.")])
    assert listing(sender) == {"g": (1, "-b----")}
    assert listing(receiver) == {"g--incoming": (1, "--p---")}


def test_migrate_migratedaway_left_warns_of_two_instances(dom0s, running_guest):
    sender, receiver = dom0s
    sender.configure(migrate_failure={"g": "migratedaway-left"})
    proc = run(sender, "xl", "migrate", "g", "dom0-b")
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        *TRANSFER, *GO,
        E("libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading "
          "success/failure report message from migration receiver stream"),
        E("** Migration failed during final handshake **"),
        E("Domain state is now undefined !"),
        E("Please CHECK AT BOTH ENDS for running instances, before renaming and"),
        E(" resuming at most one instance.  Two simultaneous instances of the domain"),
        E(" would probably result in SEVERE DATA LOSS and it is now your"),
        E(" responsibility to avoid that.  Sorry."),
        TRANSPORT_255])
    assert listing(sender) == {"g--migratedaway": (1, "---ss-")}  # suspended, kept
    assert list(long_listing(sender)) == ["g--migratedaway"]
    assert listing(receiver) == {"g": (1, "-b----")}


def test_migrate_to_a_target_running_that_name_resumes_at_the_sender(dom0s, running_guest,
                                                                     kernel, tmp_path):
    sender, receiver = dom0s
    other = tmp_path / "other"
    other.mkdir()
    assert run(receiver, "xl", "create", guest_config(other, kernel)).returncode == 0
    proc = run(sender, "xl", "migrate", "g", "dom0-b")
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        *TRANSFER, *GO[:3],
        E('libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 2:Domain with name "g" '
          'already exists.'),
        E("migration sender: Target reports startup failure (status code 6)."),
        E("migration target: Failure, destroying our copy."),
        E("migration target: Cleanup OK, granting sender permission to resume."),
        E("migration sender: Trying to resume at our end."),
        E("migration sender: Resumed OK."),
        E("Migration failed due to problems at target.")])
    assert listing(sender) == {"g": (1, "-b----")}
    assert listing(receiver) == {"g": (1, "-b----")}


def test_migrate_shows_the_transient_names_on_both_sides(dom0s, running_guest):
    """Each step of the protocol lasts 1.5 s (migrate_step_delay): each time a
    side's domains change, its ``xl list`` and ``xl list -l`` show them as they are."""
    sender, receiver = dom0s
    sender.configure(migrate_step_delay=1.5)

    def state(side):
        return {n: d["flags"] for n, d in side.domains().items()}

    def shows(side):
        """What the side's xl lists, if its domains did not change meanwhile."""
        before = state(side)
        seen = (listing(side), sorted(long_listing(side)))
        return seen if state(side) == before else None

    last = {side: state(side) for side in (sender, receiver)}
    shown = {side: [shows(side)] for side in (sender, receiver)}
    moving = subprocess.Popen(["xl", "migrate", "g", "dom0-b"], env={**os.environ, **sender.env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        done = moving.poll() is not None
        for side in (sender, receiver):
            now = state(side)
            if now != last[side]:
                seen = shows(side)
                if seen is not None:
                    shown[side].append(seen)
                    last[side] = now
        if done:
            break
        time.sleep(0.02)
    assert moving.returncode == 0
    assert shown[sender] == [
        ({"g": (1, "-b----")}, ["g"]),
        ({"g": (1, "---ss-")}, ["g"]),  # suspended at the end of the live transfer
        ({"g--migratedaway": (1, "---ss-")}, ["g--migratedaway"]),
        ({}, []),
    ]
    assert shown[receiver] == [
        ({}, []),
        ({"g--incoming": (1, "--p---")}, ["g--incoming"]),
        ({"g": (1, "-b----")}, ["g"]),
    ]


def test_migrated_guest_prints_into_the_incoming_log(dom0s, kernel, tmp_path):
    sender, receiver = dom0s
    sender.configure(boot={"g": {"console": str(BOOTS), "delay": 3}})
    receiver.configure(boot={"g": {"incoming": str(RESUMES)}})
    first, second = halves(BOOTS, "g")
    started = time.monotonic()
    assert run(sender, "xl", "create", guest_config(tmp_path, kernel)).returncode == 0
    proc = run(sender, "xl", "migrate", "g", "dom0-b")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 3, "too slow to migrate within the delay"
    assert poll(lambda: receiver.console("g--incoming") == printed(RESUMES, "g") + second)
    assert sender.console("g") == first
    assert receiver.console("g") is None  # named after the first name xenconsoled saw


def test_migrate_sends_the_config_given_with_c(dom0s, running_guest, kernel, tmp_path):
    sender, receiver = dom0s
    proc = run(sender, "xl", "migrate", "-C", str(tmp_path / "missing.cfg"), "g", "dom0-b")
    assert (proc.returncode, proc.stderr) == (1, "unable to read overridden config file\n")
    smaller = tmp_path / "smaller.cfg"
    smaller.write_text((tmp_path / "g.cfg").read_text().replace("memory = 128", "memory = 64"))
    proc = run(sender, "xl", "migrate", "-C", str(smaller), "g", "dom0-b")
    assert proc.returncode == 0, proc.stderr
    assert receiver.domains()["g"]["memory_mb"] == 64


def test_migrate_preserving_a_taken_domid_fails_at_the_target(dom0s, running_guest, kernel,
                                                              tmp_path):
    sender, receiver = dom0s
    other = tmp_path / "other"
    other.mkdir()
    assert run(receiver, "xl", "create", guest_config(other, kernel, "other")).returncode == 0
    proc = run(sender, "xl", "migrate", "-D", "g", "dom0-b")
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        *TRANSFER[:6],
        E("libxl: error: libxl_create.c:709:libxl__domain_make: Domain 1:domain creation fail: "
          "File exists"),
        E("libxl: error: libxl_create.c:1294:initiate_domain_create: cannot make domain: -3"),
        E("migration target: Domain creation failed (code -3)."),
        E("migration sender: libxl_domain_suspend failed (rc=-3)"),
        TRANSPORT_255.replace("255", "1"),
        E("Migration failed, resuming at sender.")])
    assert listing(sender) == {"g": (1, "-b----")}
    assert listing(receiver) == {"other": (1, "-b----")}


def test_migrate_to_a_dom0_without_hypervisor(dom0s, running_guest):
    sender, receiver = dom0s
    receiver.configure(hypervisor=False)
    proc = run(sender, "xl", "migrate", "g", "dom0-b")
    assert proc.returncode == 1
    expect_lines(proc.stderr, [
        E("ERROR:  Can't find hypervisor information in sysfs!"),
        E("libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading "
          "banner from migration receiver stream"),
        TRANSPORT_255.replace("255", "1")])
    assert listing(sender) == {"g": (1, "-b----")}


def test_migrate_usage_and_options_as_main_migrate(make_xen_double):
    double = make_xen_double("usage")
    proc = run(double, "xl", "migrate", "g")
    assert (proc.returncode, proc.stderr) == (2, "'xl migrate' requires at least 2 arguments.\n\n")
    assert proc.stdout.startswith("Usage: xl [-vtTf] migrate [options] <Domain> <host>\n\n"
                                  "Migrate a domain to another host.\n\nOptions:\n\n")
    assert proc.stdout.endswith("-D              Preserve the domain id\n")
    helped = run(double, "xl", "migrate", "-h")
    assert (helped.returncode, helped.stdout, helped.stderr) == (0, proc.stdout, "")
    proc = run(double, "xl", "migrate", "-x", "g", "h")
    assert (proc.returncode, proc.stderr) == (2, "option `x' not supported.\n")
    proc = run(double, "xl", "migrate", "g", "h", "-s")
    assert (proc.returncode, proc.stderr) == (2, "option `s' not supported.\n")
    proc = run(double, "xl", "migrate", "--live", "ghost", "h")
    assert (proc.returncode, proc.stderr) == (1, "ghost is an invalid domain identifier (rc=-6)\n")


def test_xm_migrate_moves_the_guest_under_its_own_name(make_xen_double, consoles, kernel,
                                                       tmp_path):
    receiver = make_xen_double("xend-b", toolstacks=("xm",), console_dir=str(consoles))
    sender = make_xen_double("xend-a", toolstacks=("xm",),
                             migrate_targets={"dom0-b": str(receiver.dir)})
    assert run(sender, "xm", "create", xm_config(tmp_path, kernel)).returncode == 0
    proc = run(sender, "xm", "migrate", "--live", "g", "dom0-b")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert listing(sender, "xm") == {}
    assert listing(receiver, "xm") == {"g": (1, "-b----")}
    assert receiver.console("g") == b""
    proc = run(receiver, "xm", "migrate", "g", "elsewhere")
    assert (proc.returncode, proc.stderr) == (
        1, "Error: can't connect: Name or service not known\n")
    proc = run(receiver, "xm", "migrate", "Domain-0", "dom0-b")
    assert (proc.returncode, proc.stderr) == (
        1, "Error: Cannot migrate privileged domain Domain-0\n")
