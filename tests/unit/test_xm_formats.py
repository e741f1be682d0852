"""The xm module's pure parsers and renderers: list outputs and guest config files."""

import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

from tests.conftest import CORPUS, SPECIMENS_DIR
from xen_nfsroot.modules import xm

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
    }
    guest.update(changes)
    return xm.guest_config(guest.pop("name"), guest.pop("kernel"), toolstack=toolstack, **guest)


# --- list outputs -----------------------------------------------------------


def test_xl_list_specimen_header_has_tabs_and_rows_parse():
    text = (SPECIMENS_DIR / "xl-list.txt").read_text()
    assert "\tState\tTime(s)" in text.splitlines()[0]
    assert xm.parse_xl_list(text) == {
        "Domain-0": {"id": 0, "memory_mb": 1024, "vcpus": 2, "state": "running",
                     "flags": "r-----", "time_s": 24.8},
        "nfsguest": {"id": 1, "memory_mb": 256, "vcpus": 1, "state": "blocked",
                     "flags": "-b----", "time_s": 7.9},
    }


def test_xl_list_dom0_only_specimen():
    text = (SPECIMENS_DIR / "xl-list-dom0-only.txt").read_text()
    assert list(xm.parse_xl_list(text)) == ["Domain-0"]
    assert xm.parse_xl_list(text)["Domain-0"]["time_s"] == 12.1


def test_xl_list_long_specimen():
    text = (SPECIMENS_DIR / "xl-list-l.json").read_text()
    assert xm.parse_xl_list_long(text) == {
        "nfsguest": {
            "id": 1,
            "uuid": "b5cb2042-a939-42aa-acac-5c9963d16865",
            "type": "pv",
            "memory_mb": 256,
            "max_memory_mb": 256,
            "vcpus": 1,
            "kernel": "/boot/vmlinuz-6.1.0-50-amd64",
            "ramdisk": "/boot/initrd-small.img",
            "cmdline": "root=/dev/nfs boot=nfs nfsroot=10.99.0.1:/srv/xen/guest "
                       "ip=10.99.0.2::10.99.0.1:255.255.255.0:nfsguest:eth0:off console=hvc0 "
                       "net.ifnames=0 rw init=/sbin/init",
        }
    }


def xm_list_text(rows):
    """``xm list`` exactly as xen/xm/main.py formats it (REFERENCE section 3)."""
    lines = ["%-40s %5s %5s %5s %10s %9s" % ("Name", "ID", "Mem", "VCPUs", "State", "Time(s)")]  # noqa: UP031
    for row in rows:
        lines.append("%(name)-40s %(domid)5s %(mem)5d %(vcpus)5d %(state)10s %(cpu_time)8.1f"  # noqa: UP031
                     % row)
    return "\n".join(lines) + "\n"


def test_xm_list_from_the_real_format_strings():
    text = xm_list_text([
        {"name": "Domain-0", "domid": "0", "mem": 750, "vcpus": 4, "state": "r-----",
         "cpu_time": 11794.3},
        {"name": "XenGuest", "domid": "3", "mem": 256, "vcpus": 1, "state": "-b----",
         "cpu_time": 5.25},
        {"name": "Crashed", "domid": "4", "mem": 128, "vcpus": 1, "state": "----c-",
         "cpu_time": 1.0},
        {"name": "Managed", "domid": "", "mem": 64, "vcpus": 1, "state": "------",
         "cpu_time": 0.0},
    ])
    domains = xm.parse_xm_list(text)
    assert domains["Domain-0"] == {"id": 0, "memory_mb": 750, "vcpus": 4, "state": "running",
                                   "flags": "r-----", "time_s": 11794.3}
    assert domains["XenGuest"]["state"] == "blocked"
    assert domains["XenGuest"]["time_s"] == 5.2
    assert domains["Crashed"]["state"] == "crashed"
    assert domains["Managed"]["id"] is None
    assert domains["Managed"]["state"] == "shutdown"


@pytest.mark.parametrize(
    ("flags", "xl_state", "xm_state"),
    [
        ("r-----", "running", "running"),
        ("-b----", "blocked", "blocked"),
        ("--p---", "paused", "paused"),
        ("---s--", "shutdown", "shutdown"),
        ("---sc-", "crashed", "crashed"),  # xl: shut down for reason "crash"
        ("---ss-", "shutdown", "crashed"),  # xl: suspended; xm slot 5 = crashed
        ("----c-", "running", "crashed"),  # impossible for xl: reason without shutdown
        ("-----d", "dying", "dying"),
        ("------", "running", "running"),
    ],
)
def test_state_letters_differ_between_xl_and_xm(flags, xl_state, xm_state):
    assert xm.state_from_flags(flags, "xl") == xl_state
    assert xm.state_from_flags(flags, "xm") == xm_state


def test_a_list_line_that_is_no_row_is_an_error():
    with pytest.raises(ValueError, match="line 2 of 'xl list'"):
        xm.parse_xl_list("Name ID Mem VCPUs\tState\tTime(s)\nlibxl: error: something\n")


# --- the seed's guest, rendered ----------------------------------------------


def test_seed_rendered_for_xm_has_exactly_the_seed_keys():
    config = seed_guest("xm")
    assert config == SEED
    text = xm.render_xm(config)
    assert xm.parse_xm(text) == SEED
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
    text = xm.render_xl(config)
    assert 'root = "/dev/nfs"\n' in text
    assert 'extra = "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3"\n' in text
    assert "nfs_server" not in text and "dhcp =" not in text
    assert xm.parse_xl(text) == config


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
    assert xm.parse_xl(text) == {
        "name": "a'b\n",
        "memory": 256,
        "maxmem": 8,
        "vif": ["mac=00:16:3e:00:00:01", "bridge=xenbr0", "x"],
        "cpus": [["0", 1], []],
        "extra": 'tab\there "quoted" back\\slash',
    }


def test_xl_grammar_rejects_python_with_file_and_line():
    with pytest.raises(xm.XenConfigError, match=r"^g\.cfg:2: config parsing error near "
                                                r"`\(1\)': lexical error \(the file looks"):
        xm.parse_xl('name = "x"\nmemory = int(1)\n', source="g.cfg")


def test_xm_reader_never_executes(tmp_path):
    marker = tmp_path / "ran"
    text = f"import os\nos.system('touch {marker}')\n"
    with pytest.raises(xm.XenConfigError, match=r"^x\.cfg:1: only assignments"):
        xm.parse_xm(text, source="x.cfg")
    with pytest.raises(xm.XenConfigError, match=r"^x\.cfg:2: hostname is computed"):
        xm.parse_xm('name = "a"\nhostname = "vm%d" % vmid\n', source="x.cfg")
    assert not marker.exists()


def test_xm_reader_ignores_booleans_as_xm_does():
    assert xm.parse_xm("a = True\nb = None\nc = (1, 'x')\n") == {"c": [1, "x"]}


def test_parse_config_reports_both_grammars():
    with pytest.raises(xm.XenConfigError) as info:
        xm.parse_config("install-method = debootstrap\n", source="t.cfg")
    assert "t.cfg:1: config parsing error near `-method'" in str(info.value)
    assert "t.cfg:1: not valid Python" in str(info.value)


def test_injection_through_values_cannot_add_a_key():
    evil = 'x"\nkernel = "/evil"\n#'
    for render, parse in ((xm.render_xl, xm.parse_xl), (xm.render_xm, xm.parse_xm)):
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
    text = xm.render_xl(config)
    assert xm.parse_xl(text) == config
    assert xm.parse_config(text) == config


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(XM_KEYS, XM_VALUES, max_size=6))
def test_xm_round_trip(config):
    text = xm.render_xm(config)
    assert xm.parse_xm(text) == config
    assert xm.parse_config(text, toolstack="xm") == config
    assert xm.parse_config(text) == config


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
        "nfs_root": st.from_regex(r"\A/[A-Za-z0-9_./-]{0,20}\Z"),
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
    config = xm.guest_config(guest.pop("name"), "/boot/vmlinuz", toolstack=toolstack, **guest)
    text = xm.render_text(config, toolstack)
    assert xm.parse_config(text, toolstack=toolstack) == config
    assert xm.parse_config(text) == config


# --- the corpus of real configs ---------------------------------------------------------

CORPUS_XEN = sorted((CORPUS / "xen").glob("*.cfg"))


def test_corpus_is_there():
    assert len(CORPUS_XEN) == 18


@pytest.mark.parametrize("path", CORPUS_XEN, ids=lambda p: p.name)
def test_corpus_configs_read_or_fail_naming_file_and_line(path):
    text = path.read_text()
    if path.name == "004-Babrakov-xen.cfg":
        # "install-method = debootstrap": neither xl.cfg nor Python.
        with pytest.raises(xm.XenConfigError) as info:
            xm.parse_config(text, source=str(path))
        assert f"{path}:1: config parsing error near `-method': lexical error" in str(info.value)
        return
    config = xm.parse_config(text, source=str(path))
    assert isinstance(config["name"], str)
    assert isinstance(config.get("memory", 0), (int, str))
    assert all(isinstance(key, str) and key.islower() for key in config)


def test_corpus_values():
    read = {p.name[:3]: xm.parse_config(p.read_text(), source=str(p)) for p in CORPUS_XEN
            if not p.name.startswith("004")}
    assert read["002"]["dhcp"] == "dhcp"
    assert read["002"]["hostname"] == "nbd4"
    assert read["002"]["disk"] == ["nbd:134.100.233.115 20004,hda1,w"]
    assert read["008"]["vcpus"] == 1  # "vcpus=1 #must set cpu to 1 ..."
    assert read["015"]["vif"] == ["bridge=br0"]  # trailing comma
    assert read["011"]["memory"] == "1024"
    assert read["012"]["vif"] == []
    assert read["013"]["extra"] == ""
    assert read["001"]["root"] == "/dev/hda1 ro"


def test_specimen_files_are_the_shared_ones():
    for name in ("xl-list.txt", "xl-list-l.json", "xl-list-dom0-only.txt"):
        shared = pathlib.Path(CORPUS).parent / "specimens" / name
        assert (SPECIMENS_DIR / name).read_bytes() == shared.read_bytes()
