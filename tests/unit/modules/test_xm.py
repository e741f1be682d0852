"""The xm execution module: the list parsers on real outputs, and, with a
mocked loader, toolstack choice, caching and commands."""

from unittest.mock import patch

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import SPECIMENS as SPECIMENS_DIR
from xen_nfsroot.modules import xen_config, xm

XL_LIST = (SPECIMENS_DIR / "xl-list.txt").read_text()
NO_HYPERVISOR = "ERROR:  Can't find hypervisor information in sysfs!"


class FakeCommands:
    """cmd.run_all stand-in: answers by (tool, subcommand); records every call."""

    def __init__(self):
        self.calls = []
        self.answers = {}

    def answer(self, tool, command, retcode=0, stdout="", stderr=""):
        self.answers[(tool, command)] = {"retcode": retcode, "stdout": stdout, "stderr": stderr}

    def __call__(self, cmd, python_shell=None, ignore_retcode=None, timeout=None):
        assert isinstance(cmd, list)
        assert python_shell is False
        self.calls.append((cmd, timeout))
        return dict(self.answers.get((cmd[0], cmd[1]), {"retcode": 0, "stdout": "",
                                                        "stderr": ""}))

    def argv(self):
        return [cmd for cmd, _ in self.calls]


@pytest.fixture
def commands():
    return FakeCommands()


@pytest.fixture
def configure_loader_modules(commands):
    return {
        xm: {
            "__salt__": {"cmd.run_all": commands, "xen_config.check_name": xen_config.check_name,
                         "xen_config.read_config": xen_config.read_config},
            "__opts__": {"test": False},
            "__context__": {},
        }
    }


@pytest.fixture
def installed():
    tools = set()

    def which(name):
        return f"/usr/sbin/{name}" if name in tools else None

    with patch("salt.utils.path.which", which):
        yield tools


def test_virtual_names_the_missing_binaries(installed):
    assert xm.__virtual__() == (
        False, "the xm module needs a Xen toolstack: neither xl nor xm is installed")
    installed.add("xm")
    assert xm.__virtual__() == "xm"


def test_auto_takes_xl_and_its_probe_is_the_runs_listing(installed, commands):
    installed.update({"xl", "xm"})
    commands.answer("xl", "list", stdout=XL_LIST)
    assert xm.toolstack() == "xl"
    assert xm.state("nfsguest") == "blocked"
    assert xm.state("other") == "absent"
    assert set(xm.list_domains()) == {"Domain-0", "nfsguest"}
    assert commands.argv() == [["xl", "list"]]


def test_installed_but_not_answering_is_unusable_and_said_so(installed, commands):
    installed.add("xl")
    commands.answer("xl", "list", retcode=1, stderr=NO_HYPERVISOR)
    with pytest.raises(CommandExecutionError) as info:
        xm.toolstack()
    assert str(info.value) == (
        "No usable Xen toolstack: xl is installed but not answering: 'xl list' failed "
        f"(exit 1): {NO_HYPERVISOR}"
    )


def test_auto_falls_back_to_xm_when_xl_does_not_answer(installed, commands):
    installed.update({"xl", "xm"})
    commands.answer("xl", "list", retcode=1, stderr=NO_HYPERVISOR)
    commands.answer("xm", "list", stdout="Name ID Mem VCPUs State Time(s)\n"
                                         "Domain-0 0 750 4 r----- 10.0\n")
    assert xm.toolstack() == "xm"
    assert xm.toolstack() == "xm"
    assert commands.argv() == [["xl", "list"], ["xm", "list"]]


@pytest.mark.parametrize(
    "opts",
    [{"xen_nfsroot.toolstack": "xm"}, {"xm.toolstack": "xm"}, {"xen_nfsroot": {"toolstack": "xm"}}],
)
def test_toolstack_override(installed, commands, opts):
    installed.update({"xl", "xm"})
    with patch.dict(xm.__opts__, opts):
        assert xm.toolstack() == "xm"
    assert commands.argv() == [["xm", "list"]]


def test_a_requested_toolstack_beats_the_minion_config(installed, commands):
    installed.update({"xl", "xm"})
    with patch.dict(xm.__opts__, {"xen_nfsroot.toolstack": "xm"}):
        assert xm.toolstack("xl") == "xl"
    assert commands.argv() == [["xl", "list"]]


def test_override_naming_a_missing_toolstack(installed):
    installed.add("xl")
    with patch.dict(xm.__opts__, {"xen_nfsroot.toolstack": "xm"}):
        with pytest.raises(CommandExecutionError, match="xm is not installed"):
            xm.toolstack()
    with patch.dict(xm.__opts__, {"xen_nfsroot.toolstack": "xend"}):
        with pytest.raises(SaltInvocationError,
                           match="minion config xen_nfsroot.toolstack: 'xend' is not one of"):
            xm.toolstack()


def test_config_format_follows_the_installed_toolstack_without_a_hypervisor(installed,
                                                                            commands):
    installed.add("xl")
    commands.answer("xl", "list", retcode=1, stderr=NO_HYPERVISOR)
    assert xm.config_format() == "xl"
    assert xm.config_format("xm") == "xm"


def test_a_boot_invalidates_that_guest_only(installed, commands, tmp_path):
    installed.add("xl")
    commands.answer("xl", "list", stdout=XL_LIST)
    config = tmp_path / "g.cfg"
    config.write_text('name = "g"\n')
    assert xm.state("g") == "absent"
    result = xm.create(str(config))
    assert result == {"name": "g", "path": str(config), "toolstack": "xl", "output": ""}
    assert xm.state("nfsguest") == "blocked"  # cached: not touched by the boot
    assert commands.argv() == [["xl", "list"], ["xl", "create", str(config)]]
    xm.state("g")  # the booted guest: listed again
    assert commands.argv()[-1] == ["xl", "list"]
    assert len(commands.argv()) == 3
    xm.list_domains()  # fresh listing already: no more spawns
    assert len(commands.argv()) == 3


def test_create_takes_an_absolute_path_and_reports_the_tool_message(installed, commands,
                                                                    tmp_path, monkeypatch):
    installed.add("xl")
    monkeypatch.chdir(tmp_path)
    message = ('Parsing config from /x/g.cfg\nlibxl: error: libxl_create.c:705:'
               'libxl__domain_make: Domain with name "g" already exists.')
    commands.answer("xl", "create", retcode=3, stderr=message)
    with pytest.raises(CommandExecutionError) as info:
        xm.create("g.cfg")
    assert commands.argv()[-1] == ["xl", "create", str(tmp_path / "g.cfg")]
    assert str(info.value) == f"'xl create {tmp_path / 'g.cfg'}' failed (exit 3): {message}"


def test_shutdown_timeout_is_reported_not_raised(installed, commands):
    installed.add("xl")
    commands.answer("xl", "shutdown", retcode=1,
                    stdout="['xl', 'shutdown', '-w', 'g'] : Timed out after 5 seconds")
    assert xm.shutdown("g", timeout=5) == {
        "name": "g", "stopped": False, "timed_out": True, "output": "g was still up after 5 s"}
    assert commands.calls[-1] == (["xl", "shutdown", "-w", "g"], 5)


def test_shutdown_of_an_unknown_domain_raises(installed, commands):
    installed.add("xl")
    commands.answer("xl", "shutdown", retcode=1,
                    stderr="g is an invalid domain identifier (rc=-6)")
    with pytest.raises(CommandExecutionError, match=r"\(exit 1\): g is an invalid domain"):
        xm.shutdown("g")


def test_migrate_and_control_argv(installed, commands):
    installed.add("xm")
    assert xm.migrate("g", "dom0-b") == {
        "name": "g", "host": "dom0-b", "toolstack": "xm", "output": ""}
    assert xm.migrate("g", "root@dom0-b", live=False)["host"] == "root@dom0-b"
    assert xm.destroy("g") is True
    assert xm.reboot("g") is True
    assert commands.argv()[1:] == [
        ["xm", "migrate", "--live", "g", "dom0-b"],
        ["xm", "migrate", "g", "root@dom0-b"],
        ["xm", "destroy", "g"],
        ["xm", "reboot", "g"],
    ]
    with pytest.raises(SaltInvocationError, match="host: '-oProxyCommand=x'"):
        xm.migrate("g", "-oProxyCommand=x")
    with pytest.raises(SaltInvocationError, match="ssh_command: 'ssh; rm'"):
        xm.migrate("g", "dom0-b", ssh_command="ssh; rm")


def test_xl_migrate_passes_the_ssh_command_as_one_word(installed, commands):
    installed.add("xl")
    ret = xm.migrate("g", "10.0.0.2", ssh_command="ssh -i /etc/k -o BatchMode=yes",
                     toolstack="xl")
    assert ret["toolstack"] == "xl"
    assert commands.argv()[-1] == [
        "xl", "migrate", "-s", "ssh -i /etc/k -o BatchMode=yes", "g", "10.0.0.2"]


def test_names_are_checked_before_any_command(installed, commands):
    installed.add("xl")
    for bad in ("../etc/passwd", "a b", "-n", ".", ""):
        with pytest.raises(SaltInvocationError, match="^name: "):
            xm.destroy(bad)
    assert commands.calls == []


def test_every_public_function_documents_a_cli_example():
    public = [name for name in dir(xm) if not name.startswith("_") and callable(getattr(xm, name))
              and getattr(getattr(xm, name), "__module__", None) == xm.__name__
              and not isinstance(getattr(xm, name), type)]
    assert "list_domains" in public
    for name in public:
        assert "CLI Example:" in (getattr(xm, name).__doc__ or ""), name


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
