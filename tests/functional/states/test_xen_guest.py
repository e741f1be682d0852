"""The xen_guest states through the real Salt loader, against the xl/xm test double."""

import os
import re

import pytest

from tests.support import DATA
from tests.support.kernel_images import NFS_ROOT_CONFIG, vmlinux

BOOTS = DATA / "consoles" / "double-boots.log"
#: What the state adds to its comment once the double's console shows the root mounted.
EVIDENCE = "Begin: Running /scripts/nfs-bottom ... done."
PROVEN = r"; its console shows it on its NFS root after [0-9.]+ s: " + re.escape(EVIDENCE)


def proven(comment, start):
    """The comment is ``start`` and the boot's proof."""
    assert re.fullmatch(re.escape(start) + PROVEN, comment), comment


@pytest.fixture
def loaders(xen_loaders):
    xen_loaders.reset_state()
    return xen_loaders


@pytest.fixture
def states(loaders):
    return loaders.states


@pytest.fixture
def kernel(tmp_path):
    """A xenlinux kernel that mounts its root over NFS itself (its .config embedded)."""
    path = tmp_path / "boot" / "vmlinuz-2.6.18-53.1.14.el5.myxen"
    path.parent.mkdir()
    path.write_bytes(vmlinux("2.6.18-53.1.14.el5.myxen", config_text=NFS_ROOT_CONFIG))
    return str(path)


@pytest.fixture
def config_dir(tmp_path):
    return tmp_path / "etc-xen"


@pytest.fixture
def console_dir(tmp_path):
    path = tmp_path / "console"
    path.mkdir()
    return path


@pytest.fixture
def xen_double(make_xen_double, console_dir):
    """The dom0's double, with xenconsoled logging guests into console_dir and
    each guest printing a Debian NFS-root boot."""
    return make_xen_double("dom0", apply=True, console_dir=str(console_dir),
                           boot={"*": {"console": str(BOOTS)}})


@pytest.fixture
def guest(kernel, config_dir, console_dir):
    """The seed's guest, as state arguments."""
    return {"console_dir": str(console_dir),
        "name": "XenGuest", "kernel": kernel, "memory": 256, "dhcp": "dhcp", "vif": [""],
        "nfs_root": "/xen", "nfs_server": "192.0.2.1", "root": "/dev/nfs",
        "config_dir": str(config_dir),
    }


def test_running_boots_once_then_changes_nothing(states, xen_double, guest, config_dir):
    path = config_dir / "XenGuest.cfg"
    ret = states.xen_guest.running(**guest)
    assert ret.result is True
    proven(ret.comment, f"Created the config {path} and booted XenGuest")
    assert ret.changes == {
        "config": {"path": str(path), "action": "created"},
        "guest": {"old": "absent", "new": "running",
                  "evidence": EVIDENCE},
    }
    text = path.read_text()
    assert 'root = "/dev/nfs"\n' in text
    assert 'extra = "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3"\n' in text
    booted = xen_double.domains()["XenGuest"]
    assert "ip=:192.0.2.1::::eth0:dhcp" in booted["cmdline"].split()
    assert "nfsroot=192.0.2.1:/xen,vers=3" in booted["cmdline"].split()
    assert booted["config_path"] == str(path)
    assert xen_double.spawns() == [["xl", "list"], ["xl", "create", str(path)]]

    xen_double.clear_spawns()
    ret = states.xen_guest.running(**guest)
    assert ret.result is True
    assert ret.changes == {}
    assert ret.comment == f"XenGuest is running with the config {path}"
    assert xen_double.spawns() == [["xl", "list"]]
    assert path.read_text() == text


def test_test_mode_predicts_and_changes_nothing(states, xen_double, guest, config_dir):
    path = config_dir / "XenGuest.cfg"
    ret = states.xen_guest.running(test=True, **guest)
    assert ret.result is None
    assert ret.comment == f"Would create the config {path} and boot XenGuest"
    assert ret.changes == {
        "config": {"path": str(path), "action": "created"},
        "guest": {"old": "absent", "new": "running"},
    }
    assert not config_dir.exists()
    assert xen_double.domains() == {}
    assert xen_double.spawns() == [["xl", "list"]]


def test_changed_memory_restarts_only_when_asked(states, xen_double, guest, config_dir):
    path = config_dir / "XenGuest.cfg"
    assert states.xen_guest.running(**guest).result is True
    first_id = xen_double.domains()["XenGuest"]["id"]

    guest["memory"] = 512
    ret = states.xen_guest.running(test=True, **guest)
    assert ret.result is None
    assert ret.comment == (
        f"Would update the config {path}; XenGuest keeps running with its previous "
        "configuration until it is restarted (restart_on_change is False)")

    ret = states.xen_guest.running(**guest)
    assert ret.result is True
    assert ret.changes["config"]["action"] == "updated"
    assert "-memory = 256\n+memory = 512\n" in ret.changes["config"]["diff"]
    assert "guest" not in ret.changes
    assert ret.comment.startswith(f"Updated the config {path}; XenGuest keeps running")
    assert "memory = 512\n" in path.read_text()
    assert xen_double.domains()["XenGuest"]["memory_mb"] == 256

    guest["memory"] = 768
    xen_double.clear_spawns()
    ret = states.xen_guest.running(restart_on_change=True, **guest)
    assert ret.result is True
    proven(ret.comment, f"Updated the config {path} and restarted XenGuest")
    assert ret.changes["guest"] == {"old": "blocked", "new": "restarted",
                                    "evidence": EVIDENCE}
    restarted = xen_double.domains()["XenGuest"]
    assert restarted["memory_mb"] == 768
    assert restarted["id"] != first_id
    assert xen_double.spawns() == [
        ["xl", "list"], ["xl", "shutdown", "-w", "XenGuest"], ["xl", "create", str(path)]]


def test_a_restart_destroys_a_guest_that_ignores_the_shutdown(states, xen_double, guest):
    assert states.xen_guest.running(**guest).result is True
    xen_double.configure(ignore_shutdown=["XenGuest"])
    guest["memory"] = 300
    ret = states.xen_guest.running(restart_on_change=True, shutdown_timeout=1, **guest)
    assert ret.result is True
    assert ret.changes["guest"] == {
        "old": "blocked", "new": "restarted", "destroyed": True,
        "evidence": EVIDENCE}
    assert xen_double.domains()["XenGuest"]["memory_mb"] == 300
    assert [c[:2] for c in xen_double.spawns()][-3:] == [
        ["xl", "shutdown"], ["xl", "destroy"], ["xl", "create"]]


def test_stopped_then_absent(states, xen_double, guest, config_dir):
    path = config_dir / "XenGuest.cfg"
    assert states.xen_guest.running(**guest).result is True

    ret = states.xen_guest.stopped(name="XenGuest", test=True)
    assert ret.result is None
    assert ret.comment == "Would shut down XenGuest (destroying it if still up after 60 s)"
    assert "XenGuest" in xen_double.domains()

    ret = states.xen_guest.stopped(name="XenGuest", timeout=5)
    assert ret.result is True
    assert ret.comment == "Shut down XenGuest"
    assert ret.changes == {"guest": {"old": "blocked", "new": "absent"}}
    assert xen_double.domains() == {}

    ret = states.xen_guest.stopped(name="XenGuest")
    assert ret.result is True
    assert ret.changes == {}
    assert ret.comment == "XenGuest is not running"

    assert states.xen_guest.running(**guest).result is True
    ret = states.xen_guest.absent(name="XenGuest", config_dir=str(config_dir), test=True)
    assert ret.result is None
    assert ret.comment == ("Would shut down XenGuest (destroying it if still up after 60 s) "
                           f"and remove the config {path}")
    assert path.exists()
    ret = states.xen_guest.absent(name="XenGuest", config_dir=str(config_dir))
    assert ret.result is True
    assert ret.comment == f"Shut down XenGuest; removed the config {path}"
    assert ret.changes == {"guest": {"old": "blocked", "new": "absent"},
                           "config": {"path": str(path), "action": "removed"}}
    assert not path.exists()
    assert xen_double.domains() == {}
    ret = states.xen_guest.absent(name="XenGuest", config_dir=str(config_dir))
    assert ret.result is True
    assert ret.changes == {}
    assert ret.comment == f"XenGuest is not running; its config {path} is absent"


def test_configured_writes_without_booting(states, xen_double, guest, config_dir):
    path = config_dir / "XenGuest.cfg"
    del guest["console_dir"]  # a boot's option: configured boots nothing
    ret = states.xen_guest.configured(**guest)
    assert ret.result is True
    assert ret.comment == f"Created the config {path}"
    assert xen_double.domains() == {}
    ret = states.xen_guest.configured(**guest)
    assert ret.changes == {}
    assert ret.comment == f"The config {path} of XenGuest is up to date"


def test_xm_toolstack_gets_the_xm_config(states, make_xen_double, guest, config_dir):
    double = make_xen_double("xm-dom0", toolstacks=("xm",), apply=True,
                             console_dir=guest["console_dir"], boot={"*": {"console": str(BOOTS)}})
    ret = states.xen_guest.running(**guest)
    assert ret.result is True
    proven(ret.comment, f"Created the config {config_dir / 'XenGuest.cfg'} and booted XenGuest")
    text = (config_dir / "XenGuest.cfg").read_text()
    assert 'nfs_server = "192.0.2.1"\n' in text
    assert 'dhcp = "dhcp"\n' in text
    assert double.domains()["XenGuest"]["cmdline"] == (
        "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3 ")


def test_no_hypervisor_is_a_clear_failure(states, make_xen_double, guest, config_dir):
    make_xen_double("nohv", apply=True, hypervisor=False)
    ret = states.xen_guest.running(**guest)
    assert ret.result is False
    assert "xl is installed but not answering" in ret.comment
    assert "Can't find hypervisor information in sysfs!" in ret.comment
    assert not config_dir.exists()


@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({"name": "a/b"}, "name: 'a/b' is not a valid Xen domain name"),
        ({"name": ".."}, "name: '..' is not a valid Xen domain name"),
        ({"kernel": "/boot/no-such-kernel"},
         "kernel: '/boot/no-such-kernel' does not exist on this dom0"),
        ({"memory": 0}, "memory: 0 is not a positive integer"),
        ({"memory": "lots"}, "memory: 'lots' is not a positive integer"),
        ({"nfs_root": "xen"}, "nfs_root: 'xen' must be an absolute path"),
        ({"dhcp": None, "network": {"address": "192.0.2.999", "netmask": "255.255.255.0"}},
         "network.address: '192.0.2.999' is not an IPv4 address"),
    ],
)
def test_bad_input_changes_nothing(states, xen_double, guest, config_dir, changes, start):  # noqa: PLR0913,PLR0917
    guest.update(changes)
    ret = states.xen_guest.running(**guest)
    assert ret.result is False
    assert ret.comment.startswith(start)
    assert ret.changes == {}
    assert not config_dir.exists()
    assert xen_double.spawns() == []


@pytest.fixture
def guest_sls(kernel, config_dir, console_dir):
    """An SLS of xen_guest.running states for the named guests (watching a
    state with changes when watch)."""
    return lambda guests, watch=False: sls(guests, (kernel, config_dir, console_dir), watch)


def sls(guests, paths, watch):
    kernel, config_dir, console_dir = paths
    lines = ["kernel_refreshed:", "  test.succeed_with_changes"] if watch else []
    for name in guests:
        lines += [
            f"{name}:",
            "  xen_guest.running:",
            f"    - kernel: {kernel}",
            "    - nfs_server: 192.0.2.1",
            f"    - nfs_root: /srv/xen/{name}",
            f"    - config_dir: {config_dir}",
            f"    - console_dir: {console_dir}",
        ]
        if watch:
            lines += ["    - watch:", "      - test: kernel_refreshed"]
    return "\n".join(lines) + "\n"


def test_one_listing_per_run_however_many_guests(loaders, xen_double, guest_sls):
    names = ["g1", "g2", "g3", "g4"]
    ret = loaders.modules.state.template_str(guest_sls(names))
    assert all(r.result is True for r in ret)
    assert sorted(xen_double.domains()) == names
    assert len(xen_double.spawns("xl", "list")) == 1
    assert len(xen_double.spawns("xl", "create")) == 4

    xen_double.clear_spawns()
    loaders.reset_state()
    ret = loaders.modules.state.template_str(guest_sls(names))
    assert all(r.result is True and r.changes == {} for r in ret)
    assert xen_double.spawns() == [["xl", "list"]]


def test_a_watched_change_restarts_the_guest(loaders, xen_double, guest_sls):
    ret = loaders.modules.state.template_str(guest_sls(["g1"], watch=True))
    assert ret["g1"].changes["guest"]["new"] == "running"
    first_id = xen_double.domains()["g1"]["id"]
    xen_double.clear_spawns()
    loaders.reset_state()
    ret = loaders.modules.state.template_str(guest_sls(["g1"], watch=True))
    assert ret["g1"].result is True
    proven(ret["g1"].comment, "Restarted g1")
    assert ret["g1"].changes == {"guest": {
        "old": "blocked", "new": "restarted",
        "evidence": EVIDENCE}}
    assert xen_double.domains()["g1"]["id"] != first_id
    assert [c[:2] for c in xen_double.spawns()] == [
        ["xl", "list"], ["xl", "shutdown"], ["xl", "create"]]


def test_a_failed_boot_is_reported_and_not_repeated(states, xen_double, guest, config_dir):
    path = config_dir / "XenGuest.cfg"
    xen_double.configure(boot={"*": {"console": str(DATA / "consoles" / "double-panics.log"),
                                     "then": "crash"}})
    ret = states.xen_guest.running(**guest)
    assert ret.result is False
    assert ret.comment.startswith(
        f"Created the config {path} and booted XenGuest, but it failed to come up on its NFS "
        "root: Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,255) "
        "after ")
    assert f"(console {guest['console_dir']}/guest-XenGuest.log: " in ret.comment
    assert ret.changes["guest"]["new"] == "failed"
    assert ret.changes["config"] == {"path": str(path), "action": "created"}

    xen_double.clear_spawns()
    again = states.xen_guest.running(**guest)
    assert again.result is False
    assert again.changes == {}
    assert again.comment.startswith("XenGuest failed to boot with this config and kernel (")
    assert again.comment.endswith(
        "Not booting it again until its config, kernel or export changes (or retry: True)")
    assert xen_double.spawns("xl", "create") == []

    xen_double.configure(boot={"*": {"console": str(BOOTS)}})
    ret = states.xen_guest.running(retry=True, **guest)
    assert ret.result is True
    proven(ret.comment, "Booted XenGuest")
    assert states.xen_guest.running(**guest).changes == {}


def test_a_kernel_that_cannot_mount_an_nfs_root_is_not_booted(states, xen_double, guest,
                                                               kernel, config_dir):
    with open(kernel, "wb") as handle:  # Debian's: NFS client a module, no IP_PNP
        handle.write(vmlinux("6.1.0-50-amd64", config_text="CONFIG_XEN_PV=y\nCONFIG_NFS_FS=m\n"))
    ret = states.xen_guest.running(**guest)
    assert ret.result is False
    assert ret.changes == {}
    assert "CONFIG_ROOT_NFS" in ret.comment
    assert kernel in ret.comment
    assert not config_dir.exists()
    assert xen_double.spawns("xl", "create") == []


# --- a failed boot whose domain stays up; what stands in the console log's place -----

RETRYING = ("Begin: Running /scripts/nfs-premount ... done.\n"
            "Begin: Retrying nfs mount ... done.\n"
            "Begin: Retrying nfs mount ... done.\n")


@pytest.fixture
def no_failure(loaders, minion_opts):
    """The record of XenGuest's failed boots (in the minion's cache, shared by
    the tests) forgotten before and after the test; yields its path."""
    loaders.modules.guest_console.clear_failure("XenGuest")
    yield os.path.join(minion_opts["cachedir"], "xen_nfsroot", "boot-failures", "XenGuest.json")
    loaders.modules.guest_console.clear_failure("XenGuest")


@pytest.fixture
def stays_up_failing(xen_double, tmp_path):
    """Guests whose initramfs keeps retrying its NFS mount, the domain up."""
    transcript = tmp_path / "retrying.log"
    transcript.write_text(RETRYING)
    xen_double.configure(boot={"*": {"console": str(transcript), "then": "run"}})
    return xen_double


def test_a_failed_boot_whose_domain_stays_up_is_destroyed_and_stays_failed(
        states, stays_up_failing, guest, no_failure):
    ret = states.xen_guest.running(**guest)
    assert ret.result is False
    assert ret.changes["guest"]["destroyed"] is True
    assert "but it failed to come up on its NFS root: Begin: Retrying nfs mount" in ret.comment
    assert ret.comment.endswith("; destroyed it (on_crash: destroy; on_crash: preserve keeps a "
                                "failed guest for inspection)")
    assert "XenGuest" not in stays_up_failing.domains()
    for _ in range(2):
        again = states.xen_guest.running(**guest)
        assert again.result is False
        assert again.changes == {}
        assert again.comment.startswith("XenGuest failed to boot with this config and kernel (")
    assert len(stays_up_failing.spawns("xl", "create")) == 1


def test_a_preserved_failed_domain_stays_failed_until_retry(states, stays_up_failing, guest,
                                                            no_failure):
    guest = dict(guest, on_crash="preserve")
    ret = states.xen_guest.running(**guest)
    assert ret.result is False
    assert ret.comment.endswith("; XenGuest is kept running for inspection (on_crash: preserve)")
    assert "XenGuest" in stays_up_failing.domains()
    again = states.xen_guest.running(**guest)
    assert again.result is False
    assert again.changes == {}
    assert "Its domain still runs, kept for inspection (on_crash: preserve)." in again.comment
    stays_up_failing.configure(boot={"*": {"console": str(BOOTS)}})
    retried = states.xen_guest.running(retry=True, **guest)
    assert retried.result is True
    proven(retried.comment, "Destroyed the failed domain XenGuest and booted it again")
    assert states.xen_guest.running(**guest).comment.startswith("XenGuest is running")


@pytest.mark.parametrize("record", ["5", "directory", "{not json"])
def test_a_failure_record_not_written_here_is_said_and_replaced(states, xen_double, guest,
                                                                no_failure, record):
    os.makedirs(os.path.dirname(no_failure), exist_ok=True)
    if record == "directory":
        os.makedirs(os.path.join(no_failure, "x"))
    else:
        with open(no_failure, "w") as handle:
            handle.write(record)
    ret = states.xen_guest.running(**guest)
    assert ret.result is True
    assert f"(the record of its last failed boot was not readable: {no_failure} " in ret.comment
    assert not os.path.lexists(no_failure)


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_console_log_that_is_not_a_regular_file_is_refused(states, xen_double, guest,
                                                             console_dir, kind):
    log = console_dir / "guest-XenGuest.log"
    secret = console_dir.parent / "shadow"
    secret.write_text("root:$6$secret-hash:19000\nKernel panic - not syncing: no\n")
    if kind == "symlink":
        log.symlink_to(secret)
    else:
        os.mkfifo(log)
    ret = states.xen_guest.running(**guest)
    assert ret.result is False
    assert f"console log {log} is a " in ret.comment
    assert "secret-hash" not in ret.comment
    assert xen_double.spawns("xl", "create") == []
