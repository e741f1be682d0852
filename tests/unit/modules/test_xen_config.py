"""xen_config: the guest's settings and their validators, the two config
formats (readers and writers), and the config files."""

import json
import os
import re
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import DATA, SPECIMENS
from xen_nfsroot.modules import nfsroot_files, xen_config

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
    return xen_config.guest_config(guest.pop("name"), guest.pop("kernel"), toolstack=toolstack,
                                   **guest)




# --- the seed's guest, rendered ----------------------------------------------


def test_seed_rendered_for_xm_has_exactly_the_seed_keys():
    config = seed_guest("xm")
    assert config == SEED
    text = xen_config.render_xm(config)
    assert xen_config.parse_xm(text) == SEED
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
    text = xen_config.render_xl(config)
    assert 'root = "/dev/nfs"\n' in text
    assert 'extra = "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3"\n' in text
    assert "nfs_server" not in text and "dhcp =" not in text
    assert xen_config.parse_xl(text) == config


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


# --- config grammar ------------------------------------------------------------


def test_xl_grammar_strings_numbers_lists_comments_separators():
    text = (
        "# comment\n"
        "name = 'a\\'b\\n' ; memory = 0x100 # trailing comment\n"
        "maxmem = 010\n"
        "vif = [ 'mac=00:16:3e:00:00:01',\n"
        "        \"bridge=xenbr0\", ]\n"
        "cpus = [[\"0\", 1], []]\n"
        'extra = "tab\\there \\"quoted\\" back\\\\slash"\n'
        "vif += ['x']"
    )
    assert xen_config.parse_xl(text) == {
        "name": "a'b\n",
        "memory": 256,
        "maxmem": 8,
        "vif": ["mac=00:16:3e:00:00:01", "bridge=xenbr0", "x"],
        "cpus": [["0", 1], []],
        "extra": 'tab\there "quoted" back\\slash',
    }


def test_xl_grammar_rejects_python_with_file_and_line():
    with pytest.raises(xen_config.XenConfigError, match=r"^g\.cfg:2: config parsing error near "
                                                r"`\(1\)': lexical error \(the file looks"):
        xen_config.parse_xl('name = "x"\nmemory = int(1)\n', source="g.cfg")


def test_xm_reader_never_executes(tmp_path):
    marker = tmp_path / "ran"
    text = f"import os\nos.system('touch {marker}')\n"
    with pytest.raises(xen_config.XenConfigError, match=r"^x\.cfg:1: only assignments"):
        xen_config.parse_xm(text, source="x.cfg")
    with pytest.raises(xen_config.XenConfigError, match=r"^x\.cfg:2: hostname is computed"):
        xen_config.parse_xm('name = "a"\nhostname = "vm%d" % vmid\n', source="x.cfg")
    assert not marker.exists()


def test_xm_reader_ignores_booleans_as_xm_does():
    assert xen_config.parse_xm("a = True\nb = None\nc = (1, 'x')\n") == {"c": [1, "x"]}


def test_parse_config_reports_both_grammars():
    with pytest.raises(xen_config.XenConfigError) as info:
        xen_config.parse_config("install-method = debootstrap\n", source="t.cfg")
    assert "t.cfg:1: config parsing error near `-method'" in str(info.value)
    assert "t.cfg:1: not valid Python" in str(info.value)


def test_injection_through_values_cannot_add_a_key():
    evil = 'x"\nkernel = "/evil"\n#'
    for render, parse in ((xen_config.render_xl, xen_config.parse_xl),
                          (xen_config.render_xm, xen_config.parse_xm)):
        text = render({"name": "g", "extra": evil})
        assert parse(text) == {"name": "g", "extra": evil}
        assert text.count("\n") == len(text.splitlines())
        assert sum(1 for line in text.splitlines() if line.startswith("kernel")) == 0


# --- round trips (hypothesis) ----------------------------------------------------

XL_KEYS = st.from_regex(r"\A[a-z][._0-9a-z]{0,12}\Z")
XM_KEYS = st.from_regex(r"\A[a-z_][a-z0-9_]{0,12}\Z").filter(
    lambda k: not __import__("keyword").iskeyword(k)
)
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
XL_ATOMS = st.one_of(TEXT, st.integers(min_value=0, max_value=2**40))
XL_VALUES = st.recursive(XL_ATOMS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
XM_ATOMS = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
)
XM_VALUES = st.recursive(XM_ATOMS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(XL_KEYS, XL_VALUES, max_size=6))
def test_xl_round_trip(config):
    text = xen_config.render_xl(config)
    assert xen_config.parse_xl(text) == config
    assert xen_config.parse_config(text) == config


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(XM_KEYS, XM_VALUES, max_size=6))
def test_xm_round_trip(config):
    text = xen_config.render_xm(config)
    assert xen_config.parse_xm(text) == config
    assert xen_config.parse_config(text, toolstack="xm") == config
    assert xen_config.parse_config(text) == config


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
        "extra": st.one_of(st.none(), st.from_regex(r"\A[ -~]{1,20}\Z").filter(
            lambda s: s.strip())),
        "vcpus": st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
        "ramdisk": st.one_of(st.none(), st.just("/boot/initrd.img")),
    }
)


@settings(max_examples=200, deadline=None)
@given(GUESTS, st.sampled_from(["xl", "xm"]))
def test_rendered_guest_reads_back_as_built(guest, toolstack):
    guest = dict(guest)
    config = xen_config.guest_config(guest.pop("name"), "/boot/vmlinuz", toolstack=toolstack,
                                     **guest)
    text = xen_config.render_text(config, toolstack)
    assert xen_config.parse_config(text, toolstack=toolstack) == config
    assert xen_config.parse_config(text) == config


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
        config = xen_config.parse_config(text, source=str(path))
    except xen_config.XenConfigError as err:
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
            assert xen_config.parse_config(path.read_text(), toolstack=toolstack) == expected
        else:
            with pytest.raises(xen_config.XenConfigError):
                xen_config.parse_config(path.read_text(), toolstack=toolstack)


def test_corpus_configs_read_or_fail_naming_file_and_line(corpus_xen):
    check_read_or_failure_naming_file_and_line(corpus_xen)


def test_data_config_quirks():
    read = {p.stem: xen_config.parse_config(p.read_text(), source=str(p)) for p in XEN_FILES
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
    assert xen_config.parse_xm((DATA / "xen" / "seed-nfs-root-xm.cfg").read_text()) == SEED


def test_data_config_in_neither_format_names_file_and_line():
    path = DATA / "xen" / "not-a-config.cfg"
    with pytest.raises(xen_config.XenConfigError) as info:
        xen_config.parse_config(path.read_text(), source=str(path))
    # "install-method = debootstrap": xl stops at its "-", Python at "size = 4G"
    assert f"{path}:2: config parsing error near `-method': lexical error" in str(info.value)
    assert f"{path}:4: not valid Python" in str(info.value)


def test_specimen_files_are_real_captures():
    """The xl outputs in tests/data/specimens are as the real xl 4.17 prints them."""
    header = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
    for name in ("xl-list.txt", "xl-list-dom0-only.txt"):
        lines = (SPECIMENS / name).read_text().splitlines(keepends=True)
        assert lines[0] == header  # TABs before State and Time(s)
        assert lines[1].startswith("Domain-0                                     0 ")
        assert all(re.fullmatch(r"\S+ +\d+ +\d+ +\d+ {5}[-rbpsc]{5}[-d] +\d+\.\d\n", line)
                   for line in lines[1:])
    (guest,) = json.loads((SPECIMENS / "xl-list-l.json").read_text())
    assert guest["config"]["c_info"]["name"] == "nfsguest"
    assert guest["config"]["c_info"]["run_hotplug_scripts"] == "True"  # booleans as strings
    assert guest["config"]["b_info"]["cmdline"].startswith("root=/dev/nfs ")


@pytest.fixture
def configure_loader_modules():
    functions = {f"nfsroot_files.{name}": getattr(nfsroot_files, name)
                 for name in ("read", "write", "remove")}
    return {xen_config: {"__salt__": functions}}


def test_config_path_stays_in_the_directory():
    assert xen_config.config_path("XenGuest") == "/etc/xen/XenGuest.cfg"
    assert xen_config.config_path("a..b", "/srv/xen") == "/srv/xen/a..b.cfg"
    with pytest.raises(SaltInvocationError, match="^name: '..'"):
        xen_config.config_path("..")
    with pytest.raises(SaltInvocationError, match="^config_dir: 'etc/xen'"):
        xen_config.config_path("g", "etc/xen")


def test_write_config_is_atomic_and_keeps_mode(tmp_path):
    path = tmp_path / "xen" / "g.cfg"
    assert xen_config.write_config(str(path), "a = 1\n") is True
    assert path.read_text() == "a = 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # as Xen's own example configs
    os.chmod(path, 0o600)
    assert xen_config.write_config(str(path), "a = 1\n") is False
    assert xen_config.write_config(str(path), "a = 2\n") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["g.cfg"]
    assert xen_config.read_config(str(path)) == {"a": 2}
    assert xen_config.remove_config(str(path)) is True
    assert xen_config.remove_config(str(path)) is False


def test_read_config_names_file_and_line(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text('name = "x"\nmemory = 256 * 2\n')
    with pytest.raises(CommandExecutionError) as info:
        xen_config.read_config(str(path))
    assert f"{path}:2:" in str(info.value)
