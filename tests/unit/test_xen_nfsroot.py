"""The pillar schema: defaults, role selection, and errors that name the field."""

import copy
import pathlib

import pytest
import salt.utils.yaml
from salt.exceptions import SaltInvocationError

from xen_nfsroot.modules import xen_nfsroot

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = salt.utils.yaml.safe_load((REPO / "pillar" / "xen_nfsroot.sls").read_text())


@pytest.fixture
def pillar():
    return copy.deepcopy(EXAMPLE)


@pytest.fixture
def configure_loader_modules(pillar):
    return {
        xen_nfsroot: {
            "__pillar__": pillar,
            "__opts__": {"id": "dom0-a"},
        }
    }


def test_example_pillar_validates_with_defaults_merged():
    guests = xen_nfsroot.validate()
    assert list(guests) == ["StaticGuest", "XenGuest"]
    seed = guests["XenGuest"]
    assert seed["memory"] == 256
    assert seed["network"] == "dhcp"
    assert seed["vif"] == [""]
    assert seed["root"] == "/dev/nfs"
    assert seed["export_options"] == ["rw", "no_root_squash", "async", "no_subtree_check"]
    assert seed["fstab"] == {"fstype": "nfs", "opts": "defaults", "disable": ["/dev/sdb2"]}
    static = guests["StaticGuest"]
    assert static["memory"] == 512
    assert static["network"] == {
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
    assert list(xen_nfsroot.guests("dom0", minion_id="dom0-b")) == ["StaticGuest"]
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
    ("memory", 0, "guest 'XenGuest': memory: expected a positive integer, got 0"),
    ("memory", "lots", "memory: expected a positive integer, got 'lots'"),
    ("memory", True, "memory: expected a positive integer, got True"),
    ("nfs_root", "xen", "nfs_root: expected a normalised absolute path, got 'xen'"),
    ("nfs_root", "/xen/../etc", "nfs_root: expected a normalised absolute path"),
    ("nfs_root", "/", "refusing to export the server's own root"),
    ("nfs_server_address", "192.0.2.300", "nfs_server_address: expected an IP address"),
    ("export_clients", [], "export_clients: expected a non-empty list, got []"),
    ("export_clients", "192.0.2.10", "export_clients: expected a list of strings"),
    ("toolstack", "xend", "toolstack: expected auto, xl or xm, got 'xend'"),
    ("network", {"address": "not-an-ip"}, "network.address: expected an IP address"),
    ("network", {"address": "192.0.2.5", "netmask": "255.0.255.0"}, "network.netmask"),
    ("network", "static", "network: expected 'dhcp' or a mapping"),
    ("kernel", "vmlinuz", "kernel: expected a normalised absolute path, got 'vmlinuz'"),
    ("dom0", "dom0-*", "dom0: expected a minion id, got 'dom0-*'"),
    ("autostart", "yes", "autostart: expected true or false, got 'yes'"),
    ("fstab", {"fstype": "nfs", "disable": "/dev/sdb2"}, "fstab.disable: expected a list"),
    ("colour", "blue", "guest 'XenGuest': colour: unknown key, got 'blue'"),
    ("vif", ["mac=zz"], "vif[0]: expected mac=xx:xx:xx:xx:xx:xx"),
]


@pytest.mark.parametrize("field,value,message", BAD_FIELDS)
def test_bad_guest_field_is_named_with_its_value(pillar, field, value, message):
    _guest(pillar)[field] = value
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.validate()
    assert message in str(err.value)
    assert "XenGuest" in str(err.value) or "guests" in str(err.value)


def test_missing_required_key(pillar):
    del _guest(pillar)["kernel"]
    with pytest.raises(SaltInvocationError, match="guest 'XenGuest': kernel: required"):
        xen_nfsroot.validate()


def test_bad_guest_name(pillar):
    guests = pillar["xen_nfsroot"]["guests"]
    guests["../evil"] = guests.pop("XenGuest")
    with pytest.raises(SaltInvocationError, match=r"name: expected a Xen domain name.*'\.\./evil'"):
        xen_nfsroot.validate()


def test_two_guests_with_one_name(pillar):
    guests = pillar["xen_nfsroot"]["guests"]
    pillar["xen_nfsroot"]["guests"] = [
        dict(guests["XenGuest"], name="XenGuest"),
        dict(guests["StaticGuest"], name="XenGuest"),
    ]
    with pytest.raises(SaltInvocationError, match="two guests with one name"):
        xen_nfsroot.validate()


def test_two_guests_with_one_root(pillar):
    _guest(pillar, "StaticGuest")["nfs_root"] = "/xen"
    message = "guest 'StaticGuest': nfs_root: already the root of guest 'XenGuest'"
    with pytest.raises(SaltInvocationError, match=message):
        xen_nfsroot.validate()


def test_two_guests_with_one_mac(pillar):
    _guest(pillar)["vif"] = ["bridge=xenbr0,mac=00:16:3E:00:00:11"]
    with pytest.raises(SaltInvocationError, match="MAC address already used by guest"):
        xen_nfsroot.validate()


@pytest.mark.parametrize("client", ["*", "*.example.org", "192.0.2.?"])
def test_world_client_with_no_root_squash_needs_the_allowance(pillar, client):
    _guest(pillar)["export_clients"] = [client]
    with pytest.raises(SaltInvocationError, match="set allow_world_root: true"):
        xen_nfsroot.validate()
    _guest(pillar)["allow_world_root"] = True
    assert xen_nfsroot.validate()["XenGuest"]["export_clients"] == [client]


def test_unknown_top_level_and_server_keys(pillar):
    pillar["xen_nfsroot"]["servers"] = {}
    with pytest.raises(SaltInvocationError, match="servers: unknown key"):
        xen_nfsroot.validate()
    del pillar["xen_nfsroot"]["servers"]
    pillar["xen_nfsroot"]["server"] = {"exports_file": "exports"}
    with pytest.raises(SaltInvocationError, match="server: exports_file"):
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
    expected = "memory: expected a positive integer, got 'lots'"
    with pytest.raises(SaltInvocationError, match=expected):
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
    ("/", "refusing to export the server's own root"),
])
def test_a_root_inside_another_guests_root_is_refused(pillar, inner, message):
    pillar["xen_nfsroot"]["guests"]["Inner"] = dict(
        pillar["xen_nfsroot"]["guests"]["XenGuest"], nfs_root=inner,
        export_clients=["192.0.2.50"])
    with pytest.raises(SaltInvocationError, match=message):
        xen_nfsroot.validate()


def test_a_root_holding_another_guests_root_is_refused(pillar):
    guests = pillar["xen_nfsroot"]["guests"]
    guests["Outer"] = dict(guests["StaticGuest"], nfs_root="/srv/xen", vif=[""],
                           export_clients=["192.0.2.51"])
    with pytest.raises(SaltInvocationError,
                       match="holds the root /srv/xen/static of guest 'StaticGuest' on nfs1"):
        xen_nfsroot.validate()
    guests["Outer"]["nfs_server"] = "nfs2"
    assert "Outer" in xen_nfsroot.validate()
