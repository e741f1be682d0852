"""A guest's config: its settings and their validators, their mapping onto
either format, the config path, and every config of tests/data/xen (and, with
--corpus, real ones) read by the right grammar."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

from tests.support import DATA
from xen_nfsroot_lib import guest_config, xl_config, xm_config
from xen_nfsroot_lib.xl_config import XenConfigError

SEED = {
    "kernel": "/boot/vmlinuz-2.6.18-53.1.14.el5.myxen",
    "memory": 256,
    "name": "XenGuest",
    "dhcp": "dhcp",
    "vif": [""],
    "nfs_root": "/xen",
    "nfs_server": "192.0.2.1",
    "root": "/dev/nfs",
}


def seed_guest(toolstack, **changes):
    guest = {
        "name": "XenGuest", "kernel": SEED["kernel"], "memory": 256, "dhcp": "dhcp",
        "vif": [""], "nfs_root": "/xen", "nfs_server": "192.0.2.1", "root": "/dev/nfs",
        # The seed's xm config mounts /xen with the kernel's default NFS options.
        "nfs_options": None if toolstack == "xm" else "vers=3",
    }
    guest.update(changes)
    return guest_config.guest_config(guest.pop("name"), guest.pop("kernel"),
                                     toolstack=toolstack, **guest)


# --- the seed's guest, rendered ----------------------------------------------


def test_seed_rendered_for_xm_has_exactly_the_seed_keys():
    config = seed_guest("xm")
    assert config == SEED
    text = xm_config.render_xm(config)
    assert xm_config.parse_xm(text) == SEED
    assert 'kernel = "/boot/vmlinuz-2.6.18-53.1.14.el5.myxen"\n' in text
    assert "vif = ['']\n" in text
    assert text.startswith("# -*- mode: python; coding: utf-8 -*-\n# Managed by Salt")


def test_seed_rendered_for_xl_carries_the_nfs_root_in_extra():
    config = seed_guest("xl")
    assert config == {
        "name": "XenGuest",
        "type": "pv",
        "kernel": SEED["kernel"],
        "memory": 256,
        "vif": [""],
        "root": "/dev/nfs",
        "extra": "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3",
    }
    text = xl_config.render_xl(config)
    assert 'root = "/dev/nfs"\n' in text
    assert 'extra = "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3"\n' in text
    assert "nfs_server" not in text and "dhcp =" not in text
    assert xl_config.parse_xl(text) == config


def test_xl_static_address_ramdisk_and_extra():
    config = seed_guest(
        "xl",
        dhcp=None,
        network={"address": "10.99.0.2", "netmask": 24, "gateway": "10.99.0.1",
                 "hostname": "guest", "interface": "eth0"},
        nfs_server="10.99.0.1", nfs_root="/srv/xen/guest", ramdisk="/boot/initrd.img",
        extra="console=hvc0 net.ifnames=0", nfs_options="vers=4",
    )
    assert config["extra"] == (
        "ip=10.99.0.2:10.99.0.1:10.99.0.1:255.255.255.0:guest:eth0:off "
        "nfsroot=10.99.0.1:/srv/xen/guest,vers=4 boot=nfs console=hvc0 net.ifnames=0"
    )
    assert config["ramdisk"] == "/boot/initrd.img"


def test_xm_static_address_uses_xm_keys():
    config = seed_guest(
        "xm", dhcp=None,
        network={"address": "192.0.2.10", "netmask": "255.255.255.0", "gateway": "192.0.2.254",
                 "hostname": "xenguest"},
    )
    assert config["ip"] == "192.0.2.10"
    assert config["netmask"] == "255.255.255.0"
    assert config["gateway"] == "192.0.2.254"
    assert config["hostname"] == "xenguest"
    assert "dhcp" not in config
    assert "interface" not in config


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"name": "a/b"}, "name", "a/b"),
        ({"name": ".."}, "name", ".."),
        ({"name": "-n"}, "name", "-n"),
        ({"memory": 0}, "memory", "0"),
        ({"memory": "lots"}, "memory", "'lots'"),
        ({"memory": True}, "memory", "True"),
        ({"nfs_root": "xen"}, "nfs_root", "'xen'"),
        ({"nfs_server": "nfs1"}, "nfs_server", "'nfs1'"),
        ({"kernel": "vmlinuz"}, "kernel", "'vmlinuz'"),
        ({"dhcp": None, "network": {"address": "192.0.2.300"}}, "network.address",
         "192.0.2.300"),
        ({"dhcp": None, "network": {"address": "192.0.2.3", "netmask": "255.0.255.0"}},
         "network.netmask", "255.0.255.0"),
        ({"extra": "quiet\nname = 'evil'"}, "extra", "quiet"),
        ({"nfs_options": "vers=3;reboot"}, "nfs_options", "vers=3;reboot"),
        ({"vif": ["bridge"]}, "vif[0]", "bridge"),
        ({"dhcp": "maybe"}, "dhcp", "maybe"),
    ],
)
def test_bad_input_names_field_and_value(changes, field, value):
    with pytest.raises(SaltInvocationError) as info:
        seed_guest("xl", **changes)
    message = str(info.value)
    assert message.startswith(f"{field}: ")
    assert value in message


def test_memory_as_digit_string_is_accepted():
    assert seed_guest("xl", memory="512")["memory"] == 512


def test_the_validators_of_the_kinds_of_value():
    assert guest_config.check_text("console=hvc0") == "console=hvc0"
    assert guest_config.check_text(["console=hvc0", "quiet"]) == "console=hvc0 quiet"
    assert guest_config.check_nfs_options("vers=3,tcp") == "vers=3,tcp"
    assert guest_config.check_nfs_options(["vers=3", "tcp"]) == "vers=3,tcp"
    assert guest_config.check_nfs_options("") is None
    assert guest_config.check_vif("bridge=xenbr0") == ["bridge=xenbr0"]
    assert guest_config.vif_macs(["mac=00:16:3E:00:00:01", ""]) == ["00:16:3e:00:00:01"]
    assert guest_config.check_network({"address": "192.0.2.10", "netmask": 24})["netmask"] == (
        "255.255.255.0")
    assert guest_config.check_config_dir("/etc/xen") == "/etc/xen"
    assert guest_config.check_kernel_path("/boot/vmlinuz-guest", "kernel") == (
        "/boot/vmlinuz-guest")
    with pytest.raises(SaltInvocationError,
                       match="^kernel: '/boot/vm linuz' must not contain spaces or control "):
        guest_config.check_kernel_path("/boot/vm linuz", "kernel")
    with pytest.raises(SaltInvocationError, match="^kernel: 'vmlinuz' must be an absolute path"):
        guest_config.check_kernel_path("vmlinuz", "kernel")
    with pytest.raises(SaltInvocationError, match="^config_dir: '/etc/xen/' must be a normal"):
        guest_config.check_config_dir("/etc/xen/")
    assert guest_config.check_setting("memory", "512") == 512
    assert guest_config.check_setting("on_crash", "preserve") == "preserve"
    with pytest.raises(SaltInvocationError, match="^setting: 'colour' is not a guest setting"):
        guest_config.check_setting("colour", "red")


def test_setting_defaults_and_docs_are_the_table():
    assert guest_config.setting_defaults()["memory"] == 256
    assert list(guest_config.setting_docs()) == list(guest_config.GUEST_SETTINGS)


def test_parse_config_reports_both_grammars():
    with pytest.raises(XenConfigError) as info:
        guest_config.parse_config("install-method = debootstrap\n", source="t.cfg")
    assert "t.cfg:1: config parsing error near `-method'" in str(info.value)
    assert "t.cfg:1: not valid Python" in str(info.value)


# --- round trip of a guest (hypothesis) ------------------------------------------

GUESTS = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,20}\Z").filter(
            lambda n: n not in (".", "..")
        ),
        "memory": st.integers(min_value=1, max_value=65536),
        "network": st.one_of(
            st.just("dhcp"),
            st.just("off"),
            st.fixed_dictionaries({
                "address": st.ip_addresses(v=4).map(str),
                "netmask": st.integers(min_value=0, max_value=32),
                "gateway": st.ip_addresses(v=4).map(str),
                "hostname": st.from_regex(r"\A[a-z][a-z0-9-]{0,10}[a-z0-9]\Z"),
            }),
        ),
        "nfs_server": st.ip_addresses(v=4).map(str),
        "nfs_root": st.from_regex(r"\A(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,8}){1,3}\Z").filter(
            lambda path: "/." not in path),
        "extra": st.one_of(st.none(), st.from_regex(r"\A[ !#-~]{1,20}\Z").filter(
            lambda s: s.strip())),
        "vcpus": st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
        "ramdisk": st.one_of(st.none(), st.just("/boot/initrd.img")),
    }
)


@settings(max_examples=200, deadline=None)
@given(GUESTS, st.sampled_from(["xl", "xm"]))
def test_rendered_guest_reads_back_as_built(guest, toolstack):
    guest = dict(guest)
    config = guest_config.guest_config(guest.pop("name"), "/boot/vmlinuz", toolstack=toolstack,
                                     **guest)
    text = guest_config.render_text(config, toolstack)
    assert guest_config.parse_config(text, toolstack=toolstack) == config
    assert guest_config.parse_config(text) == config


# --- guest configs: the project's own (tests/data/xen) and, with --corpus, real ones ---

XEN_FILES = sorted((DATA / "xen").glob("*.cfg"))
XL_PV_DISKS = [
    "format=raw,vdev=xvda,access=rw,target=/dev/vg0/web1-disk",
    "format=raw,vdev=xvdb,access=rw,target=/dev/vg0/web1-swap",
]
# What each file reads as: the settings, and which readers accept it ("xl", "xm").
XEN_CASES = {
    "comments-after-values.cfg": (("xl", "xm"), {
        "type": "hvm", "memory": 2048, "vcpus": 1, "name": "hvm1", "vif": ["bridge=xenbr0"],
        "disk": ["phy:/dev/vg0/hvm1,hda,w"], "boot": "dc", "acpi": 1, "sdl": 0,
        "serial": "pty", "vnc": 1, "vnclisten": "", "on_crash": "destroy",
    }),
    "empty-values.cfg": (("xl", "xm"), {
        "name": "unikernel1", "kernel": "unikernel1.img", "memory": 64, "extra": "", "vif": [],
    }),
    "list-trailing-comma.cfg": (("xl", "xm"), {
        "kernel": "vmling", "name": "erlguest", "memory": 256,
        "extra": "-ipaddr 192.0.2.109 -netmask 255.255.255.0 -gateway 192.0.2.1 -root /erlang",
        "vif": ["bridge=br0"],
        "disk": ["phy:/dev/vg0/erlguest,xvda,w", "file:/srv/xen/erlguest-data.img,xvdb,w"],
    }),
    "memory-as-string.cfg": (("xl", "xm"), {
        "kernel": "/boot/vmlinuz-3.13.0-53-generic",
        "ramdisk": "/boot/initrd.img-3.13.0-53-generic", "vcpus": "2", "memory": "1024",
        "name": "db1", "disk": ["phy:/dev/vg0/db1,xvda,rw"],
        "vif": ["ip=192.0.2.140,mac=00:16:3e:f7:63:ed"], "on_poweroff": "destroy",
        "on_reboot": "restart", "on_crash": "restart",
    }),
    "nbd-disk-dhcp.cfg": (("xl", "xm"), {
        "kernel": "/boot/vmlinuz-2.6.16-xen", "ramdisk": "/boot/initrd-2.6.16-xen",
        "memory": 128, "name": "nbd1", "vif": [""], "disk": ["nbd:192.0.2.50 20004,hda1,w"],
        "dhcp": "dhcp", "hostname": "nbd1", "root": "/dev/hda1 ro", "extra": "3",
    }),
    "not-a-config.cfg": ((), None),
    "seed-nfs-root-xm.cfg": (("xl", "xm"), SEED),
    "xl-nfs-root.cfg": (("xl", "xm"), {
        "name": "nfsguest", "type": "pv", "kernel": "/boot/vmlinuz-6.1.0-50-amd64",
        "ramdisk": "/boot/initrd-small.img", "memory": 256, "vcpus": 1, "root": "/dev/nfs",
        "extra": "boot=nfs nfsroot=10.99.0.1:/srv/xen/guest,vers=3 "
        "ip=10.99.0.2::10.99.0.1:255.255.255.0:nfsguest:eth0:off console=hvc0 net.ifnames=0",
        "vif": ["mac=00:16:3e:00:00:02,bridge=xenbr0"], "on_crash": "destroy",
    }),
    "xl-pv-guest.cfg": (("xl", "xm"), {
        "type": "pv", "name": "web1", "kernel": "/boot/vmlinuz-6.1.0-50-amd64",
        "ramdisk": "/boot/initrd.img-6.1.0-50-amd64", "root": "/dev/xvda1 ro",
        "extra": "console=hvc0 net.ifnames=0", "memory": 1024, "maxmem": 2048, "vcpus": 2,
        "vif": ["mac=00:16:3e:12:34:56,bridge=xenbr0"], "disk": XL_PV_DISKS,
        "on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy",
    }),
    "xm-nfs-root-static-address.cfg": (("xl", "xm"), {
        "kernel": SEED["kernel"], "memory": 256, "name": "XenGuest2",
        "vif": ["mac=00:16:3e:00:00:20"], "ip": "192.0.2.20", "netmask": "255.255.255.0",
        "gateway": "192.0.2.254", "hostname": "xenguest2", "nfs_server": "192.0.2.1",
        "nfs_root": "/srv/xen/guest2", "root": "/dev/nfs",
    }),
    "xm-python-only.cfg": (("xm",), {  # the tuple is a list; True, False and None are dropped
        "kernel": "/boot/vmlinuz-2.6.18-xen", "memory": 512, "name": "legacy1",
        "vif": ["mac=00:16:3e:00:00:11, bridge=xenbr0"],
        "disk": ["file:/srv/xen/legacy1.img,xvda1,w"], "cpu_weight": 256,
    }),
}


def check_read_or_failure_naming_file_and_line(path):
    """A config reads into lowercase settings with a name, or fails naming file and line."""
    text = path.read_text()
    try:
        config = guest_config.parse_config(text, source=str(path))
    except XenConfigError as err:
        where = re.escape(str(path)) + r":\d+: "
        assert re.match(rf"{re.escape(str(path))} is neither an xl\.cfg file \({where}", str(err))
        assert re.search(rf"nor an xm config of literal assignments \({where}", str(err))
        return None
    assert isinstance(config["name"], str)
    assert isinstance(config.get("memory", 0), (int, str))
    assert all(isinstance(key, str) and key.islower() for key in config)
    return config


def test_every_data_config_has_an_expectation():
    assert sorted(XEN_CASES) == [path.name for path in XEN_FILES]


@pytest.mark.parametrize("path", XEN_FILES, ids=lambda p: p.name)
def test_data_configs_read_as_expected(path):
    readers, expected = XEN_CASES[path.name]
    assert check_read_or_failure_naming_file_and_line(path) == expected
    for toolstack in ("xl", "xm"):
        if toolstack in readers:
            assert guest_config.parse_config(path.read_text(), toolstack=toolstack) == expected
        else:
            with pytest.raises(XenConfigError):
                guest_config.parse_config(path.read_text(), toolstack=toolstack)


def test_corpus_configs_read_or_fail_naming_file_and_line(corpus_xen):
    check_read_or_failure_naming_file_and_line(corpus_xen)


def test_data_config_quirks():
    read = {p.stem: guest_config.parse_config(p.read_text(), source=str(p)) for p in XEN_FILES
            if p.name != "not-a-config.cfg"}
    assert read["nbd-disk-dhcp"]["dhcp"] == "dhcp"
    assert read["nbd-disk-dhcp"]["hostname"] == "nbd1"  # 'hostname= "nbd1" '
    assert read["nbd-disk-dhcp"]["disk"] == ["nbd:192.0.2.50 20004,hda1,w"]
    assert read["nbd-disk-dhcp"]["root"] == "/dev/hda1 ro"
    assert read["comments-after-values"]["vcpus"] == 1  # "vcpus=1 #one vcpu: ..."
    assert read["comments-after-values"]["memory"] == 2048  # "memory = 2048 # MB"
    assert read["list-trailing-comma"]["vif"] == ["bridge=br0"]  # trailing comma
    assert read["memory-as-string"]["memory"] == "1024"
    assert read["empty-values"]["vif"] == []
    assert read["empty-values"]["extra"] == ""
    assert read["seed-nfs-root-xm"] == SEED
    assert xm_config.parse_xm((DATA / "xen" / "seed-nfs-root-xm.cfg").read_text()) == SEED


def test_data_config_in_neither_format_names_file_and_line():
    path = DATA / "xen" / "not-a-config.cfg"
    with pytest.raises(XenConfigError) as info:
        guest_config.parse_config(path.read_text(), source=str(path))
    # "install-method = debootstrap": xl stops at its "-", Python at "size = 4G"
    assert f"{path}:2: config parsing error near `-method': lexical error" in str(info.value)
    assert f"{path}:4: not valid Python" in str(info.value)


# --- the config path ---------------------------------------------------------------


def test_config_path_stays_in_the_directory():
    assert guest_config.config_path("XenGuest") == "/etc/xen/XenGuest.cfg"
    assert guest_config.config_path("a..b", "/srv/xen") == "/srv/xen/a..b.cfg"
    with pytest.raises(SaltInvocationError, match="^name: '..'"):
        guest_config.config_path("..")
    with pytest.raises(SaltInvocationError, match="^config_dir: 'etc/xen'"):
        guest_config.config_path("g", "etc/xen")


# --- vif specs: what xl and xm read as key=value pairs ------------------------------


@pytest.mark.parametrize(("vif", "field", "problem"), [
    # Old code: accepted, and wrote "bridge=xenbr0,script=/bin/true".
    ({"bridge": "xenbr0,script=/bin/true"}, "vif[0].bridge", "must not contain ','"),
    ({"bridge": "a=b"}, "vif[0].bridge", "must not contain '='"),
    ({"bridge": "xen br0"}, "vif[0].bridge", "must not contain ' '"),
    ({"bridge": "xenbr0\u00a0"}, "vif[0].bridge", "must not contain '\\xa0'"),
    ({"bridge": ""}, "vif[0].bridge", "must be a non-empty string"),
    ({"bridge": ["xenbr0"]}, "vif[0].bridge", "must be a non-empty string"),
    ({"Bridge": "xenbr0"}, "vif[0]", "is not a vif key"),
    # xl keeps the space after a value, and reads no key from " bridge =x".
    ("bridge=xenbr0 ,mac=00:16:3e:00:00:01", "vif[0].bridge", "must not contain ' '"),
    ("bridge =xenbr0", "vif[0]", "not key=value"),
])
def test_a_vif_value_xl_would_read_otherwise_is_refused(vif, field, problem):
    with pytest.raises(SaltInvocationError, match=f"^{re.escape(field)}: ") as info:
        guest_config.check_vif([vif])
    assert problem in str(info.value)


def test_vif_specs_xl_reads_as_written():
    assert guest_config.check_vif([{"bridge": "xenbr0", "mac": "00:16:3e:00:00:01"}]) == [
        "bridge=xenbr0,mac=00:16:3e:00:00:01"]
    assert guest_config.check_vif("bridge=xenbr0, mac=00:16:3e:00:00:01") == [
        "bridge=xenbr0, mac=00:16:3e:00:00:01"]
    assert guest_config.vif_macs(["bridge=xenbr0, mac=00:16:3E:00:00:01"]) == [
        "00:16:3e:00:00:01"]
