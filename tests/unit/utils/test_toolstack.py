"""The toolstacks' listings (``xl list``, ``xm list``, ``xl list -l``) on real
outputs, the state letters, and the checks of a migration's target."""

import json
import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

from tests.support import SPECIMENS
from xen_nfsroot_lib import toolstack


def test_xl_list_specimen_header_has_tabs_and_rows_parse():
    text = (SPECIMENS / "xl-list.txt").read_text()
    assert "\tState\tTime(s)" in text.splitlines()[0]
    assert toolstack.parse_xl_list(text) == {
        "Domain-0": {"id": 0, "memory_mb": 1024, "vcpus": 2, "state": "running",
                     "flags": "r-----", "time_s": 24.8},
        "nfsguest": {"id": 1, "memory_mb": 256, "vcpus": 1, "state": "blocked",
                     "flags": "-b----", "time_s": 7.9},
    }


def test_xl_list_dom0_only_specimen():
    text = (SPECIMENS / "xl-list-dom0-only.txt").read_text()
    assert list(toolstack.parse_xl_list(text)) == ["Domain-0"]
    assert toolstack.parse_xl_list(text)["Domain-0"]["time_s"] == 12.1


def test_xl_list_long_specimen():
    text = (SPECIMENS / "xl-list-l.json").read_text()
    assert toolstack.parse_xl_list_long(text) == {
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
    lines = ["%-40s %5s %5s %5s %10s %9s" % (  # noqa: UP031 (xm main.py's own format)
        "Name", "ID", "Mem", "VCPUs", "State", "Time(s)")]
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
    domains = toolstack.parse_xm_list(text)
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
    assert toolstack.state_from_flags(flags, "xl") == xl_state
    assert toolstack.state_from_flags(flags, "xm") == xm_state


def test_a_list_line_that_is_no_row_is_an_error():
    with pytest.raises(ValueError, match="line 2 of 'xl list'"):
        toolstack.parse_xl_list("Name ID Mem VCPUs\tState\tTime(s)\nlibxl: error: something\n")


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


# --- the toolstack asked for and a migration's target -----------------------------


def test_toolstack_choice_is_one_word_of_three():
    assert toolstack.toolstack_choice(" XL ") == "xl"
    assert toolstack.toolstack_choice(None) is None
    with pytest.raises(SaltInvocationError, match="^toolstack: 'xend' is not one of auto, xl, xm"):
        toolstack.toolstack_choice("xend")
    assert toolstack.TOOLSTACK_CHOICES == ("auto", "xl", "xm")


@pytest.mark.parametrize("host", ["dom0-b", "root@dom0-b", "10.0.0.2", "2001:db8::2",
                                  "dom0-b.example.org"])
def test_migrate_targets_accepted(host):
    assert toolstack.check_migrate_host(host) == host


@pytest.mark.parametrize("host", ["-oProxyCommand=x", "a b", "root@", "-u@dom0-b", "", None,
                                  "dom0-b;id"])
def test_migrate_targets_refused(host):
    with pytest.raises(SaltInvocationError, match="^host: .* is not a host name or address"):
        toolstack.check_migrate_host(host)


def test_ssh_command_holds_option_words_only():
    command = "ssh -i /etc/k -o BatchMode=yes"
    assert toolstack.check_ssh_command(command) == command
    assert toolstack.check_ssh_command(None) is None
    for bad in ("ssh; rm", "ssh $(id)", "ssh\n-x", 3):
        with pytest.raises(SaltInvocationError, match="^ssh_command: "):
            toolstack.check_ssh_command(bad)


# --- the migration target as sh -c and ssh read it (issue 19) -----------------------------

# What xl runs on the source dom0 (tools/xl/xl_migrate.c): "exec SSH HOST xl
# migrate-receive" through sh -c. The real sh is the reader: a target it
# accepts must reach it as exactly one word, unchanged, and run nothing.
PRINT_WORDS = 'printf "%s\\n" "$@"'


def sh_words(text):
    """The words sh makes of text, as the arguments of a command (nothing run
    but printf: sh -c 'exec printf ... TEXT')."""
    proc = subprocess.run(["sh", "-c", f"set -- {text}; {PRINT_WORDS}"], capture_output=True,
                          text=True, timeout=10, check=False, cwd="/")
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


@pytest.mark.parametrize("host", [
    # Old code: accepted (Python's address parser takes any zone id), and sh ran $(...).
    "fe80::1%$(reboot)", "fe80::1%`reboot`", "fe80::1%;reboot", "fe80::1%eth0",
    "fe80::1%\nreboot", "fe80::1% -oProxyCommand=x",
    # Old code: accepted (the regexes' $ matches before a final newline).
    "dom0-b\n", "root\n@dom0-b",
    "dom0-b*", "dom0-b,dom0-c", "[::1]", "10.0.0.300", "root@@dom0-b", "a" * 33 + "@dom0-b",
])
def test_hostile_migrate_targets_are_refused(host):
    with pytest.raises(SaltInvocationError, match=r"^host: .* (is not a host name or "
                                                  r"address|is an IPv6 address with a zone id)"):
        toolstack.check_migrate_host(host)


def test_a_zone_id_is_refused_with_its_reason():
    with pytest.raises(SaltInvocationError, match=re.escape(
            "address: 'fe80::1%eth0' is an IPv6 address with a zone id (%...): not accepted")):
        toolstack.check_host("fe80::1%eth0", "address")


HOSTILE = st.text(alphabet=st.sampled_from(list("ab0-.:@%$();`'\"\\ \t\n*?![],=|&<>~#{}/_")),
                  max_size=24)


@settings(max_examples=300, deadline=None)
@given(st.one_of(HOSTILE, st.builds(lambda tail: "fe80::1%" + tail, HOSTILE),
                 st.builds(lambda head: head + "@dom0-b", HOSTILE)))
def test_a_target_sh_would_read_as_syntax_never_passes(host):
    try:
        toolstack.check_migrate_host(host)
    except SaltInvocationError:
        return
    code, words, err = sh_words(host)
    assert (code, words, err) == (0, [host], "")


def test_accepted_targets_reach_sh_as_one_word():
    for host in ("dom0-b", "root@dom0-b", "10.0.0.2", "2001:db8::2", "::ffff:192.0.2.1",
                 "dom0-b.example.org"):
        assert toolstack.check_migrate_host(host) == host
        assert sh_words(host) == (0, [host], "")


@pytest.mark.parametrize("command", [
    # Old code: accepted; sh then ran HOST (a host named "reboot") as a command here.
    "ssh -o BatchMode=yes\n", "ssh\n", "", "   ", "ssh -o A=$(id)", "ssh 'x'",
])
def test_hostile_ssh_commands_are_refused(command):
    with pytest.raises(SaltInvocationError, match="^ssh_command: "):
        toolstack.check_ssh_command(command)


@settings(max_examples=200, deadline=None)
@given(HOSTILE)
def test_an_ssh_command_passes_only_as_plain_words(command):
    try:
        toolstack.check_ssh_command("ssh " + command)
    except SaltInvocationError:
        return
    assert sh_words("ssh " + command) == (0, ("ssh " + command).split(), "")


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (1, 1), (300, 300), ("600", 600), (" 60 ", 60), (86400, 86400)])
def test_seconds_accepted(value, expected):
    assert toolstack.check_seconds(value) == expected


@pytest.mark.parametrize("value", [
    "abc", "", "1.5", 1.5, -1, "-1", 0, "0", 86401, 10**12, True, False, [60], "²", "60s"])
def test_seconds_refused_naming_the_field_and_value(value):
    with pytest.raises(SaltInvocationError, match=re.escape(
            f"timeout: {value!r} is not a whole number of seconds from 1 to 86400")):
        toolstack.check_seconds(value)
    assert toolstack.check_seconds(7200, ceiling=7200) == 7200
    with pytest.raises(SaltInvocationError, match="from 1 to 60$"):
        toolstack.check_seconds(61, "shutdown_timeout", ceiling=60)
