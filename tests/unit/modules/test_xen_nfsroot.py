"""The pillar schema: defaults, role selection, and errors that name the field."""

import copy
import re
from unittest.mock import MagicMock

import pytest
import salt.utils.yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import REPO
from tests.support.loader import MODULES, functions
from xen_nfsroot.modules import xen_nfsroot
from xen_nfsroot.states import nfs_export, xen_guest
from xen_nfsroot_lib import guest_config

EXAMPLE = salt.utils.yaml.safe_load((REPO / "pillar" / "xen_nfsroot.sls").read_text())


@pytest.fixture
def pillar():
    return copy.deepcopy(EXAMPLE)


@pytest.fixture
def configure_loader_modules(pillar):
    salt = functions()
    loader = {module: {"__salt__": salt, "__context__": {}} for module in MODULES}
    loader[xen_nfsroot] = {"__salt__": salt, "__pillar__": pillar, "__opts__": {"id": "dom0-a"},
                           "__context__": {}}
    return loader


def test_example_pillar_validates_with_defaults_merged():
    guests = xen_nfsroot.validate()
    assert list(guests) == ["StaticGuest", "XenGuest"]
    seed = guests["XenGuest"]
    assert seed["memory"] == 256
    assert seed["network"] == "dhcp"
    assert seed["vif"] == [""]
    assert seed["root"] == "/dev/nfs"
    assert seed["nfs_options"] == "vers=3"
    assert seed["export_options"] == ["rw", "no_root_squash", "async", "no_subtree_check"]
    assert seed["fstab"] == {"fstype": "nfs", "opts": "defaults", "disable": ["/dev/sdb2"],
                             "dump": 0, "pass_num": 0}
    static = guests["StaticGuest"]
    assert static["memory"] == 512
    assert static["network"] == {
        "dhcp": False,
        "address": "192.0.2.11",
        "netmask": "255.255.255.0",
        "gateway": "192.0.2.254",
        "hostname": "static",
        "interface": "eth0",
    }
    assert static["autostart"] is False


def test_roles_and_selection_by_minion_id():
    assert list(xen_nfsroot.guests("dom0")) == ["XenGuest"]
    assert xen_nfsroot.guests("server") == {}
    assert list(xen_nfsroot.guests("server", minion_id="nfs1")) == ["StaticGuest", "XenGuest"]
    # XenGuest may run on dom0-b too (its dom0s).
    assert list(xen_nfsroot.guests("dom0", minion_id="dom0-b")) == ["StaticGuest", "XenGuest"]
    assert xen_nfsroot.roles() == ["dom0"]
    assert xen_nfsroot.roles("nfs1") == ["server"]
    assert xen_nfsroot.roles("elsewhere") == []


def test_only_an_unknown_guest_selects_nothing():
    assert list(xen_nfsroot.guests(only="XenGuest")) == ["XenGuest"]
    assert xen_nfsroot.guests(only="NoSuchGuest") == {}
    assert list(xen_nfsroot.guests()) == ["StaticGuest", "XenGuest"]
    with pytest.raises(SaltInvocationError, match="no guest named 'NoSuchGuest'"):
        xen_nfsroot.guest("NoSuchGuest")


@pytest.mark.parametrize("only", ["", 0, False, None, ["XenGuest"], {"XenGuest": 1},
                                  "xenguest", " XenGuest", "*"])
def test_a_filter_given_never_widens_the_selection(only, caplog):
    assert xen_nfsroot.guests(only=only) == {}
    assert xen_nfsroot.guests("dom0", only=only) == {}
    assert f"guest filter {only!r} names no guest in pillar" in caplog.text


def test_a_list_of_guests_selects_those_it_names(caplog):
    both = ["XenGuest", "StaticGuest"]
    assert list(xen_nfsroot.guests(among=both)) == ["StaticGuest", "XenGuest"]
    assert list(xen_nfsroot.guests("dom0", among=both)) == ["XenGuest"]
    assert "names no guest" not in caplog.text
    assert list(xen_nfsroot.guests(among=["XenGuest", "NoSuchGuest"])) == ["XenGuest"]
    assert "guest list ['XenGuest', 'NoSuchGuest'] names no guest in pillar (or not all)" in (
        caplog.text)
    assert list(xen_nfsroot.guests(only="XenGuest", among=["StaticGuest"])) == []


@pytest.mark.parametrize("among", ["XenGuest", "", None, 0, {"XenGuest": 1}, [], [["XenGuest"]],
                                   ("XenGuest",)])
def test_a_list_that_is_not_one_of_names_selects_nothing(among):
    assert xen_nfsroot.guests(among=among) == {}
    assert xen_nfsroot.state_data("dom0", among=among) == {}


def test_salt_call_keywords_are_not_a_filter():
    assert list(xen_nfsroot.guests(__pub_fun="xen_nfsroot.guests")) == ["StaticGuest", "XenGuest"]
    with pytest.raises(SaltInvocationError, match="guest: not an argument"):
        xen_nfsroot.guests(guest="XenGuest")


def test_defaults_section_applies_to_every_guest(pillar):
    pillar["xen_nfsroot"]["defaults"]["memory"] = 128
    guests = xen_nfsroot.validate()
    assert guests["XenGuest"]["memory"] == 128
    assert guests["StaticGuest"]["memory"] == 512


def test_server_settings_defaults():
    settings = xen_nfsroot.settings()
    assert settings["exports_file"] == "/etc/exports.d/xen-nfsroot.exports"
    assert settings["manage_packages"] is True


def test_empty_pillar_has_no_guests(pillar):
    pillar.clear()
    assert xen_nfsroot.validate() == {}
    assert xen_nfsroot.roles() == []


def _guest(pillar, name="XenGuest"):
    return pillar["xen_nfsroot"]["guests"][name]


BAD_FIELDS = [
    ("memory", 0, "guest 'XenGuest': memory: 0 is not a positive integer"),
    ("memory", "lots", "memory: 'lots' is not a positive integer"),
    ("memory", True, "memory: True is not a positive integer"),
    ("nfs_root", "xen", "nfs_root: 'xen' must be an absolute path"),
    ("nfs_root", "/xen/../etc", "nfs_root: '/xen/../etc' must be a normalised path below /"),
    ("nfs_root", "/", "nfs_root: '/' must be a normalised path below /"),
    ("nfs_server_address", "192.0.2.300", "nfs_server_address: '192.0.2.300' is not an IPv4"),
    ("export_clients", [], "export_clients: [] is not a non-empty list of clients"),
    ("export_clients", "192.0.2.10", "export_clients: '192.0.2.10' is not a non-empty list"),
    ("toolstack", "xend", "toolstack: 'xend' must be one of auto, xl, xm"),
    ("network", {"address": "not-an-ip"}, "network.address: 'not-an-ip' is not an IPv4"),
    ("network", {"address": "192.0.2.5", "netmask": "255.0.255.0"},
     "network.netmask: '255.0.255.0' is not an IPv4 netmask"),
    ("network", "static", "network: 'static' must be 'dhcp', 'off' or a mapping"),
    ("kernel", "vmlinuz", "kernel: 'vmlinuz' must be an absolute path"),
    ("dom0", "dom0-*", "dom0: 'dom0-*' is not a minion id"),
    ("autostart", "yes", "autostart: 'yes' is not true or false"),
    ("fstab", {"fstype": "nfs", "disable": "/dev/sdb2"},
     "disable: '/dev/sdb2' must be a list of devices or mount points"),
    ("fstab", {"fstyp": "nfs"}, "fstab.fstyp: 'nfs' is not an NFS root line setting"),
    ("colour", "blue", "guest 'XenGuest': colour: unknown key, got 'blue'"),
    ("vif", ["mac=zz"], "vif[0]: 'mac=zz' has a mac that is not xx:xx:xx:xx:xx:xx"),
    ("root_archive", {"source": "https://example.org/r.tar"},
     "root_archive.source_hash: required for https://example.org/r.tar"),
]


@pytest.mark.parametrize("field,value,message", BAD_FIELDS)
def test_bad_guest_field_is_named_with_its_value(pillar, field, value, message):
    _guest(pillar)[field] = value
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.validate()
    assert message in str(err.value)
    assert str(err.value).startswith("xen_nfsroot pillar: guest 'XenGuest': ")


def test_missing_required_key(pillar):
    del _guest(pillar)["kernel"]
    with pytest.raises(CommandExecutionError, match="guest 'XenGuest': kernel: required"):
        xen_nfsroot.validate()


def test_bad_guest_name(pillar):
    guests = pillar["xen_nfsroot"]["guests"]
    guests["../evil"] = guests.pop("XenGuest")
    with pytest.raises(CommandExecutionError,
                       match=r"^xen_nfsroot pillar: guests: name: '\.\./evil' is not a valid Xen "
                             "domain name"):
        xen_nfsroot.validate()


def test_two_guests_with_one_name(pillar):
    guests = pillar["xen_nfsroot"]["guests"]
    pillar["xen_nfsroot"]["guests"] = [
        dict(guests["XenGuest"], name="XenGuest"),
        dict(guests["StaticGuest"], name="XenGuest"),
    ]
    with pytest.raises(CommandExecutionError, match="two guests with one name"):
        xen_nfsroot.validate()


def test_two_guests_with_one_root(pillar):
    _guest(pillar, "StaticGuest")["nfs_root"] = "/xen"
    message = "guest 'StaticGuest': nfs_root: already the root of guest 'XenGuest'"
    with pytest.raises(CommandExecutionError, match=message):
        xen_nfsroot.validate()


def test_two_guests_with_one_mac(pillar):
    _guest(pillar)["vif"] = ["bridge=xenbr0,mac=00:16:3E:00:00:11"]
    with pytest.raises(CommandExecutionError, match="MAC address already used by guest"):
        xen_nfsroot.validate()


@pytest.mark.parametrize("client", ["*", "*.example.org", "192.0.2.?"])
def test_world_client_with_no_root_squash_needs_the_allowance(pillar, client):
    _guest(pillar)["export_clients"] = [client]
    with pytest.raises(CommandExecutionError, match="set allow_world_root=True"):
        xen_nfsroot.validate()
    _guest(pillar)["allow_world_root"] = True
    assert xen_nfsroot.validate()["XenGuest"]["export_clients"] == [client]


def test_unknown_top_level_and_server_keys(pillar):
    pillar["xen_nfsroot"]["servers"] = {}
    with pytest.raises(CommandExecutionError, match="servers: unknown key"):
        xen_nfsroot.validate()
    del pillar["xen_nfsroot"]["servers"]
    pillar["xen_nfsroot"]["server"] = {"exports_file": "exports"}
    with pytest.raises(CommandExecutionError, match="server: exports_file: 'exports' is not"):
        xen_nfsroot.validate()


def test_bad_role():
    with pytest.raises(SaltInvocationError, match="role: expected server, dom0"):
        xen_nfsroot.guests("nfs")


class _Hidden(dict):
    """A pillar mapping whose repr hides its values, as Salt 3008 hands it
    to execution modules."""

    def __repr__(self):
        return repr({key: "**********" for key in self})


class _HiddenList(list):
    def __repr__(self):
        return repr(["**********" for _ in self])


def _hide(value):
    if isinstance(value, dict):
        return _Hidden({key: _hide(item) for key, item in value.items()})
    if isinstance(value, list):
        return _HiddenList(_hide(item) for item in value)
    return value


def test_a_masked_pillar_is_read_with_its_real_values(pillar):
    pillar["xen_nfsroot"] = _hide(pillar["xen_nfsroot"])
    guests = xen_nfsroot.validate()
    seed = guests["XenGuest"]
    assert seed["nfs_server"] == "nfs1"
    assert seed["export_clients"] == ["192.0.2.10"]
    assert type(seed["export_clients"]) is list
    assert "**********" not in repr(guests)
    # Errors show the value that is wrong, not the mask.
    _guest(pillar)["memory"] = "lots"
    expected = "memory: 'lots' is not a positive integer"
    with pytest.raises(CommandExecutionError, match=expected):
        xen_nfsroot.validate()


def test_the_run_cache_sees_a_changed_value_behind_a_mask(pillar):
    context = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xen_nfsroot, "__context__", context, raising=False)
        pillar["xen_nfsroot"] = _hide(pillar["xen_nfsroot"])
        assert xen_nfsroot.validate()["XenGuest"]["memory"] == 256
        _guest(pillar)["memory"] = 384
        assert xen_nfsroot.validate()["XenGuest"]["memory"] == 384


def test_guests_share_no_list_with_the_pillar_or_each_other(pillar):
    pillar["xen_nfsroot"]["defaults"]["export_options"] = ["rw", "no_root_squash"]
    guests = xen_nfsroot.validate()
    first, second = guests["XenGuest"], guests["StaticGuest"]
    assert first["export_options"] == second["export_options"] == ["rw", "no_root_squash"]
    assert first["export_options"] is not second["export_options"]
    assert first["export_options"] is not pillar["xen_nfsroot"]["defaults"]["export_options"]
    assert first["fstab"] is not second["fstab"]


@pytest.mark.parametrize(("inner", "message"), [
    ("/xen/inner", "inside the root /xen of guest 'XenGuest' on nfs1"),
    ("/", "nfs_root: '/' must be a normalised path below /"),
])
def test_a_root_inside_another_guests_root_is_refused(pillar, inner, message):
    pillar["xen_nfsroot"]["guests"]["Inner"] = dict(
        pillar["xen_nfsroot"]["guests"]["XenGuest"], nfs_root=inner,
        export_clients=["192.0.2.50"])
    with pytest.raises(CommandExecutionError, match=message):
        xen_nfsroot.validate()


def test_a_root_holding_another_guests_root_is_refused(pillar):
    guests = pillar["xen_nfsroot"]["guests"]
    guests["Outer"] = dict(guests["StaticGuest"], nfs_root="/srv/xen", vif=[""],
                           export_clients=["192.0.2.51"])
    with pytest.raises(CommandExecutionError,
                       match="holds the root /srv/xen/static of guest 'StaticGuest' on nfs1"):
        xen_nfsroot.validate()
    guests["Outer"]["nfs_server"] = "nfs2"
    assert "Outer" in xen_nfsroot.validate()


# --- one validator per kind of value: the pillar accepts what the states accept ----

DRIFT = [
    # (pillar field, value, the state it reaches, the state's arguments, message)
    ("export_clients", ["0.0.0.0/0"], "nfs_export",
     {"clients": [{"hosts": "0.0.0.0/0", "options": ["rw", "no_root_squash"]}]},
     "refusing to export /xen to '0.0.0.0/0' with no_root_squash"),
    ("export_clients", ["::/0"], "nfs_export",
     {"clients": [{"hosts": "::/0", "options": ["rw", "no_root_squash"]}]},
     "refusing to export /xen to '::/0' with no_root_squash"),
    ("export_options", ["rwx"], "nfs_export",
     {"clients": [{"hosts": "192.0.2.10", "options": ["rwx"]}]},
     "unknown export option 'rwx' (did you mean 'rw'?)"),
    ("export_options", ["rw", "ro"], "nfs_export",
     {"clients": [{"hosts": "192.0.2.10", "options": ["rw", "ro"]}]},
     "conflicting options 'rw' and 'ro'"),
    ("export_clients", ["host (rw)"], "nfs_export",
     {"clients": [{"hosts": "host (rw)", "options": ["rw"]}]},
     "'host (rw)' has whitespace before '('"),
    ("kernel", "/boot/vm linuz", "xen_guest", {"kernel": "/boot/vm linuz"},
     "kernel: '/boot/vm linuz' must not contain spaces or control characters"),
]


@pytest.mark.parametrize("drift", DRIFT, ids=[f"{d[0]}={d[1]!r}" for d in DRIFT])
def test_pillar_and_state_refuse_the_same_input(pillar, drift):
    field, value, state, arguments, message = drift
    _guest(pillar)[field] = value
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.validate()
    assert message in str(err.value)
    salt = functions()
    with pytest.MonkeyPatch.context() as patch:
        module = {"nfs_export": nfs_export, "xen_guest": xen_guest}[state]
        patch.setattr(module, "__salt__", salt, raising=False)
        patch.setattr(module, "__opts__", {"test": True}, raising=False)
        patch.setattr(module, "__context__", {}, raising=False)
        if state == "nfs_export":
            ret = nfs_export.present("/xen", **arguments)
        else:
            ret = xen_guest.running("XenGuest", nfs_server="192.0.2.1", nfs_root="/xen",
                                    **arguments)
    assert ret["result"] is False
    assert message in ret["comment"]


def test_a_guest_name_starting_with_a_dash_is_refused_by_both(pillar):
    guests = pillar["xen_nfsroot"]["guests"]
    guests["-x"] = guests.pop("XenGuest")
    with pytest.raises(CommandExecutionError, match="name: '-x' must not start with '-'"):
        xen_nfsroot.validate()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xen_guest, "__salt__", functions(), raising=False)
        patch.setattr(xen_guest, "__opts__", {"test": True}, raising=False)
        ret = xen_guest.running("-x", "/boot/vmlinuz", nfs_server="192.0.2.1", nfs_root="/xen")
    assert ret["result"] is False
    assert ret["comment"] == "name: '-x' must not start with '-' (it would read as an option)"


def test_network_off_is_accepted_by_both(pillar):
    _guest(pillar)["network"] = "off"
    arguments = xen_nfsroot.validate()["XenGuest"]["states"]["xen_guest"]
    assert arguments["network"] == "off"
    name, kernel = arguments["name"], arguments["kernel"]
    settings = {key: value for key, value in arguments.items()
                if key in guest_config.GUEST_SETTINGS}
    config = guest_config.guest_config(name, kernel, "xl", **settings)
    assert config["extra"] == "nfsroot=192.0.2.1:/xen,vers=3"


# --- the state data the SLS files hand over ---------------------------------------


def test_dom0_state_data_logs_consoles_before_any_boot(pillar):
    high = xen_nfsroot.state_data("dom0")
    assert high["xen_nfsroot-console-logging"] == {"xen_console.logging": [
        {"name": "/var/log/xen/console"}, {"settings_file": "/etc/default/xen"}]}
    (state, args), = high["xen_nfsroot-guest-XenGuest"].items()
    assert state == "xen_guest.running"
    assert {"console_dir": "/var/log/xen/console"} in args
    assert {"require": [{"xen_console": "xen_nfsroot-console-logging"}]} in args
    assert not any("retry" in arg for arg in args)
    retried = xen_nfsroot.state_data("dom0", retry=True)["xen_nfsroot-guest-XenGuest"]
    assert {"retry": True} in retried["xen_guest.running"]


def test_a_guest_only_configured_gets_no_boot_arguments(pillar):
    pillar["xen_nfsroot"]["guests"]["XenGuest"].update(autostart=False, boot_timeout=30)
    (state, args), = xen_nfsroot.state_data("dom0")["xen_nfsroot-guest-XenGuest"].items()
    assert state == "xen_guest.configured"
    keys = {key for arg in args for key in arg}
    assert not keys & {"boot_timeout", "boot_marker", "restart_on_change", "console_dir",
                       "require"}


def test_console_logging_can_be_switched_off(pillar):
    pillar["xen_nfsroot"]["dom0"] = {"console_logging": False}
    high = xen_nfsroot.state_data("dom0")
    assert "xen_nfsroot-console-logging" not in high
    assert not any("require" in arg
                   for arg in high["xen_nfsroot-guest-XenGuest"]["xen_guest.running"])


def _two_boots(pillar, monkeypatch, running=()):
    """StaticGuest booted on dom0-a too; the domains there: Domain-0 and running."""
    pillar["xen_nfsroot"]["guests"]["StaticGuest"].update(dom0="dom0-a", autostart=True)
    listed = {"Domain-0": {"id": 0, "state": "running"},
              **{name: {"id": 5, "state": "blocked"} for name in running}}
    lister = MagicMock(return_value=listed)
    monkeypatch.setitem(xen_nfsroot.__salt__, "xm.list_domains", lister)
    return lister


def test_two_boots_run_in_parallel_after_the_reads_they_share(pillar, monkeypatch):
    lister = _two_boots(pillar, monkeypatch)
    high = xen_nfsroot.state_data("dom0")
    for name in ("XenGuest", "StaticGuest"):
        args = high[f"xen_nfsroot-guest-{name}"]["xen_guest.running"]
        assert {"parallel": True} in args
        (require,) = [arg["require"] for arg in args if "require" in arg]
        assert require[-1] == {"xen_boots": "xen_nfsroot-boots-prepared"}
    (state, args), = high["xen_nfsroot-boots-prepared"].items()
    assert state == "xen_boots.prepared"
    assert args == [
        {"kernels": [["/boot/vmlinuz-guest", None, False, "pv"],  # in the order of the guests
                     ["/boot/vmlinuz-2.6.18-53.1.14.el5.myxen", None, True, "pv"]]},
        {"dom0s": [["dom0-b"]]},
        {"toolstacks": [None]},
        {"require": [{"xen_console": "xen_nfsroot-console-logging"}]}]
    lister.assert_called_once_with(toolstack=None)


def test_one_boot_alone_a_running_guest_and_test_mode_fork_nothing(pillar, monkeypatch):
    _two_boots(pillar, monkeypatch, running=["StaticGuest"])
    one = xen_nfsroot.state_data("dom0")
    monkeypatch.setitem(xen_nfsroot.__opts__, "test", True)
    _two_boots(pillar, monkeypatch)
    predicted = xen_nfsroot.state_data("dom0")
    for high in (one, predicted):
        assert "xen_nfsroot-boots-prepared" not in high
        assert not any({"parallel": True} in args for data in high.values()
                       if isinstance(data, dict) for args in data.values())


@pytest.mark.parametrize(("at_once", "max_parallel", "parallel"), [
    (1, None, []), (False, None, []),
    (2, None, ["StaticGuest", "Third"]),  # the first two in name order; XenGuest after them
    (32, None, ["StaticGuest", "Third", "XenGuest"]),
    # Salt 3008 queues parallel states past state_max_parallel itself.
    (2, 1, ["StaticGuest", "Third", "XenGuest"]),
])
def test_at_most_parallel_boots_fork(pillar, monkeypatch, at_once, max_parallel, parallel):
    _two_boots(pillar, monkeypatch)
    pillar["xen_nfsroot"]["guests"]["Third"] = dict(
        pillar["xen_nfsroot"]["guests"]["StaticGuest"], nfs_root="/srv/xen/third",
        export_clients=["192.0.2.12"], network="dhcp", vif=["mac=00:16:3e:00:00:12"])
    pillar["xen_nfsroot"].setdefault("dom0", {})["parallel_boots"] = at_once
    monkeypatch.setitem(xen_nfsroot.__opts__, "state_max_parallel", max_parallel)
    high = xen_nfsroot.state_data("dom0")
    forked = sorted(name for name in ("XenGuest", "StaticGuest", "Third")
                    if {"parallel": True} in high[f"xen_nfsroot-guest-{name}"]["xen_guest.running"])
    assert forked == parallel


def test_a_dom0_that_cannot_list_its_domains_boots_one_after_the_other(pillar, monkeypatch):
    _two_boots(pillar, monkeypatch).side_effect = CommandExecutionError("xl: no hypervisor")
    high = xen_nfsroot.state_data("dom0")
    assert "xen_nfsroot-boots-prepared" not in high
    assert {"parallel": True} not in high["xen_nfsroot-guest-XenGuest"]["xen_guest.running"]


def test_the_mounted_state_data_names_the_guests_address(pillar):
    assert xen_nfsroot.state_data("mounted") == {}  # this minion (dom0-a) exports nothing
    high = xen_nfsroot.state_data("mounted", minion_id="nfs1")
    assert high["xen_nfsroot-mounted-StaticGuest"] == {"nfs_export.mounted": [
        {"name": "/srv/xen/static"}, {"clients": ["192.0.2.11"]}]}
    assert high["xen_nfsroot-mounted-XenGuest"] == {"nfs_export.mounted": [
        {"name": "/xen"}, {"clients": ["192.0.2.10"]}]}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("boot_marker", "GUEST (", "boot_marker: 'GUEST (' is not a valid regular expression"),
    ("boot_timeout", -1, "boot_timeout: -1 is not a number of seconds >= 0"),
    ("on_crash", "explode", "on_crash: 'explode' must be one of destroy, restart, preserve"),
    ("check_kernel", "yes", "check_kernel: 'yes' is not true or false"),
])
def test_bad_boot_settings_are_named(pillar, key, value, message):
    _guest(pillar)[key] = value
    with pytest.raises(CommandExecutionError, match=re.escape(message)):
        xen_nfsroot.validate()
