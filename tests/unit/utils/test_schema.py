"""The pillar schema without a loader: a mapping in, validated guests and
settings out; one mechanism for the guests', the server's and the dom0's keys."""

import copy

import pytest
import salt.utils.yaml

from tests.support import REPO
from xen_nfsroot_lib import schema

EXAMPLE = salt.utils.yaml.safe_load(
    (REPO / "pillar" / "xen_nfsroot.sls").read_text())[schema.PILLAR_KEY]


@pytest.fixture
def pillar():
    return copy.deepcopy(EXAMPLE)


def test_every_field_names_its_validator_as_a_function():
    for section in ("guests", "server", "dom0"):
        for name, field in schema.fields(section).items():
            assert callable(field.check), (section, name)


def test_the_example_pillar_validates_without_a_loader(pillar):
    guests = schema.validate(pillar)
    assert list(guests) == ["StaticGuest", "XenGuest"]
    seed = guests["XenGuest"]
    assert seed["dom0s"] == ["dom0-a", "dom0-b"]
    assert seed["states"]["xen_guest"]["nfs_server"] == "192.0.2.1"
    assert seed["states"]["nfs_export"]["clients"] == [
        {"hosts": "192.0.2.10", "options": ["rw", "no_root_squash", "async", "no_subtree_check"]}]
    assert "toolstack" not in seed["states"]["xen_guest"]  # auto: the state's own default
    assert seed["states"]["domu_root"] is None


def test_nothing_is_an_empty_pillar():
    assert schema.validate({}) == {}
    assert schema.check_top(None) == {}
    assert schema.check_top("") == {}
    with pytest.raises(schema.PillarError, match="^xen_nfsroot pillar: xen_nfsroot: "
                                                 "xen_nfsroot: expected a mapping, got"):
        schema.check_top(["guests"])


def test_server_and_dom0_sections_have_their_defaults_here():
    assert schema.section({}, "server") == {
        "manage_packages": True, "manage_service": True,
        "exports_file": "/etc/exports.d/xen-nfsroot.exports", "confine_roots": True,
        "packages": None, "service": None}
    dom0 = schema.section({"dom0": {"addresses": {"dom0-b": "2001:DB8::2"}}}, "dom0")
    assert dom0["addresses"] == {"dom0-b": "2001:db8::2"}
    assert dom0["console_dir"] == "/var/log/xen/console"
    assert dom0["migrate_key"] == "/etc/xen-nfsroot/migrate_key"


@pytest.mark.parametrize(("server", "message"), [
    ({"packages": "nfs-utils"}, "server: packages: 'nfs-utils' is not a list of names"),
    ({"service": ""}, "server: service: '' is not a name"),
    ({"manage_service": "no"}, "server: manage_service: 'no' is not true or false"),
    ({"exports": "/etc/exports"}, "server: exports: unknown key, got '/etc/exports'"),
    (["manage_packages"], "server: server: expected a mapping, got ['manage_packages']"),
])
def test_a_bad_server_key_is_named(server, message):
    with pytest.raises(schema.PillarError) as err:
        schema.section({"server": server}, "server")
    assert str(err.value).startswith(f"xen_nfsroot pillar: {message}")


def test_describe_each_section():
    guests = schema.describe()
    assert guests["nfs_root"] == {
        "required": True, "default": None, "doc": "the guest's root directory on the NFS server",
        "states": ["xen_guest.nfs_root", "nfs_export.name", "domu_fstab.name",
                   "domu_root.name"]}
    assert guests["memory"]["default"] == 256
    assert guests["network"]["default"] == "dhcp"
    assert "dhcp" not in guests
    assert schema.describe("server")["exports_file"]["default"] == schema.EXPORTS_FILE
    assert schema.describe("dom0")["console_logging"] == {
        "required": False, "default": True, "states": [],
        "doc": "xenconsoled logs guest consoles (the boot checks read them)"}
    with pytest.raises(Exception, match="section: 'guest' must be one of guests, server, dom0"):
        schema.describe("guest")


def test_plain_copies_what_it_is_given():
    given = {"a": [{"b": (1, 2)}]}
    copied = schema.plain(given)
    assert copied == {"a": [{"b": [1, 2]}]}
    assert copied["a"] is not given["a"]


def test_across_guests_one_root_and_one_mac(pillar):
    seen = {"root": {}, "mac": {}}
    guests = schema.validate(pillar)
    schema.check_across("XenGuest", guests["XenGuest"], seen)
    with pytest.raises(schema.PillarError, match="nfs_root: already the root of guest "
                                                 "'XenGuest' on nfs1"):
        schema.check_across("Copy", dict(guests["XenGuest"], vif=[""]), seen)


def test_the_state_arguments_of_a_guest_without_fstab(pillar):
    pillar["guests"]["XenGuest"]["fstab"] = False
    pillar["guests"]["XenGuest"]["root_archive"] = "salt://roots/guest.tar.gz"
    states = schema.validate(pillar)["XenGuest"]["states"]
    assert states["domu_fstab"] is None
    assert states["domu_root"] == {"name": "/xen", "source": "salt://roots/guest.tar.gz",
                                   "source_hash": None, "skip_verify": False}


def test_across_guests_nesting_by_directories_not_by_prefix(pillar):
    guest = schema.validate(pillar)["XenGuest"]
    seen = {"root": {}, "mac": {}}
    for name, root in (("a", "/srv/x"), ("b", "/srv/xy"), ("c", "/srv/y/deep/er")):
        schema.check_across(name, dict(guest, nfs_root=root, vif=[""]), seen)
    with pytest.raises(schema.PillarError, match="holds the root /srv/y/deep/er of guest 'c'"):
        schema.check_across("d", dict(guest, nfs_root="/srv/y", vif=[""]), seen)
    with pytest.raises(schema.PillarError, match="inside the root /srv/x of guest 'a'"):
        schema.check_across("e", dict(guest, nfs_root="/srv/x/z", vif=[""]), seen)
    # Another server's tree is another tree.
    schema.check_across("f", dict(guest, nfs_server="nfs2", nfs_root="/srv/x/z", vif=[""]), seen)
