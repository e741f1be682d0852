"""The xen_guest states through the real Salt loader, against the xl/xm test double."""

import pytest


@pytest.fixture
def loaders(xen_loaders):
    xen_loaders.reset_state()
    return xen_loaders


@pytest.fixture
def states(loaders):
    return loaders.states


@pytest.fixture
def kernel(tmp_path):
    path = tmp_path / "boot" / "vmlinuz-2.6.18-53.1.14.el5.myxen"
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF kernel")
    return str(path)


@pytest.fixture
def config_dir(tmp_path):
    return tmp_path / "etc-xen"


@pytest.fixture
def guest(kernel, config_dir):
    """The seed's guest, as state arguments."""
    return {
        "name": "XenGuest", "kernel": kernel, "memory": 256, "dhcp": "dhcp", "vif": [""],
        "nfs_root": "/xen", "nfs_server": "192.0.2.1", "root": "/dev/nfs",
        "config_dir": str(config_dir),
    }


def test_running_boots_once_then_changes_nothing(states, xen_double, guest, config_dir):
    path = config_dir / "XenGuest.cfg"
    ret = states.xen_guest.running(**guest)
    assert ret.result is True
    assert ret.comment == f"Created the config {path} and booted XenGuest"
    assert ret.changes == {
        "config": {"path": str(path), "action": "created"},
        "guest": {"old": "absent", "new": "running"},
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
    assert ret.comment == f"Updated the config {path} and restarted XenGuest"
    assert ret.changes["guest"] == {"old": "blocked", "new": "restarted"}
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
    assert ret.changes["guest"] == {"old": "blocked", "new": "restarted", "destroyed": True}
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
    ret = states.xen_guest.configured(**guest)
    assert ret.result is True
    assert ret.comment == f"Created the config {path}"
    assert xen_double.domains() == {}
    ret = states.xen_guest.configured(**guest)
    assert ret.changes == {}
    assert ret.comment == f"The config {path} of XenGuest is up to date"


def test_xm_toolstack_gets_the_xm_config(states, make_xen_double, guest, config_dir):
    double = make_xen_double("xm-dom0", toolstacks=("xm",), apply=True)
    ret = states.xen_guest.running(**guest)
    assert ret.result is True
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


def sls(guests, kernel, config_dir, watch=False):
    lines = ["kernel_refreshed:", "  test.succeed_with_changes"] if watch else []
    for name in guests:
        lines += [
            f"{name}:",
            "  xen_guest.running:",
            f"    - kernel: {kernel}",
            "    - nfs_server: 192.0.2.1",
            f"    - nfs_root: /srv/xen/{name}",
            f"    - config_dir: {config_dir}",
        ]
        if watch:
            lines += ["    - watch:", "      - test: kernel_refreshed"]
    return "\n".join(lines) + "\n"


def test_one_listing_per_run_however_many_guests(loaders, xen_double, kernel, config_dir):
    names = ["g1", "g2", "g3", "g4"]
    ret = loaders.modules.state.template_str(sls(names, kernel, config_dir))
    assert all(r.result is True for r in ret)
    assert sorted(xen_double.domains()) == names
    assert len(xen_double.spawns("xl", "list")) == 1
    assert len(xen_double.spawns("xl", "create")) == 4

    xen_double.clear_spawns()
    loaders.reset_state()
    ret = loaders.modules.state.template_str(sls(names, kernel, config_dir))
    assert all(r.result is True and r.changes == {} for r in ret)
    assert xen_double.spawns() == [["xl", "list"]]


def test_a_watched_change_restarts_the_guest(loaders, xen_double, kernel, config_dir):
    ret = loaders.modules.state.template_str(sls(["g1"], kernel, config_dir, watch=True))
    assert ret["g1"].changes["guest"] == {"old": "absent", "new": "running"}
    first_id = xen_double.domains()["g1"]["id"]
    xen_double.clear_spawns()
    loaders.reset_state()
    ret = loaders.modules.state.template_str(sls(["g1"], kernel, config_dir, watch=True))
    assert ret["g1"].result is True
    assert ret["g1"].comment == "Restarted g1"
    assert ret["g1"].changes == {"guest": {"old": "blocked", "new": "restarted"}}
    assert xen_double.domains()["g1"]["id"] != first_id
    assert [c[:2] for c in xen_double.spawns()] == [
        ["xl", "list"], ["xl", "shutdown"], ["xl", "create"]]
