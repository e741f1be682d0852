"""The xm execution module with a mocked loader: toolstack choice, the cached
listing and the commands it runs."""

import re
from unittest.mock import patch

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import SPECIMENS as SPECIMENS_DIR
from tests.support.commands import Commands
from xen_nfsroot.modules import xen_config, xm

XL_LIST = (SPECIMENS_DIR / "xl-list.txt").read_text()
NO_HYPERVISOR = "ERROR:  Can't find hypervisor information in sysfs!"


@pytest.fixture
def commands():
    return Commands()


@pytest.fixture
def configure_loader_modules(commands):
    return {
        xm: {
            "__salt__": {"cmd.run_all": commands,
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
    commands.answer(["xl", "list"], stdout=XL_LIST)
    assert xm.toolstack() == "xl"
    assert xm.state("nfsguest") == "blocked"
    assert xm.state("other") == "absent"
    assert set(xm.list_domains()) == {"Domain-0", "nfsguest"}
    assert commands.argv() == [["xl", "list"]]


def test_installed_but_not_answering_is_unusable_and_said_so(installed, commands):
    installed.add("xl")
    commands.answer(["xl", "list"], retcode=1, stderr=NO_HYPERVISOR)
    with pytest.raises(CommandExecutionError) as info:
        xm.toolstack()
    assert str(info.value) == (
        "No usable Xen toolstack: xl is installed but not answering: 'xl list' failed "
        f"(exit 1): {NO_HYPERVISOR}"
    )


def test_auto_falls_back_to_xm_when_xl_does_not_answer(installed, commands):
    installed.update({"xl", "xm"})
    commands.answer(["xl", "list"], retcode=1, stderr=NO_HYPERVISOR)
    commands.answer(["xm", "list"], stdout="Name ID Mem VCPUs State Time(s)\n"
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
    commands.answer(["xl", "list"], retcode=1, stderr=NO_HYPERVISOR)
    assert xm.config_format() == "xl"
    assert xm.config_format("xm") == "xm"


def test_a_boot_invalidates_that_guest_only(installed, commands, tmp_path):
    installed.add("xl")
    commands.answer(["xl", "list"], stdout=XL_LIST)
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
    commands.answer(["xl", "create"], retcode=3, stderr=message)
    with pytest.raises(CommandExecutionError) as info:
        xm.create("g.cfg")
    assert commands.argv()[-1] == ["xl", "create", str(tmp_path / "g.cfg")]
    assert str(info.value) == f"'xl create {tmp_path / 'g.cfg'}' failed (exit 3): {message}"


def test_shutdown_timeout_is_reported_not_raised(installed, commands):
    installed.add("xl")
    commands.answer(["xl", "shutdown"], retcode=1,
                    stdout="['xl', 'shutdown', '-w', 'g'] : Timed out after 5 seconds")
    assert xm.shutdown("g", timeout=5) == {
        "name": "g", "stopped": False, "timed_out": True, "output": "g was still up after 5 s"}
    assert (commands.calls[-1]["argv"], commands.calls[-1]["timeout"]) == (
        ["xl", "shutdown", "-w", "g"], 5)


def test_shutdown_of_an_unknown_domain_raises(installed, commands):
    installed.add("xl")
    commands.answer(["xl", "shutdown"], retcode=1,
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


@pytest.mark.parametrize(("arguments", "message"), [
    # Old code: accepted, and xl's sh -c ran the zone id's $(...) on this dom0.
    ({"host": "fe80::1%$(reboot)"}, "host: 'fe80::1%$(reboot)' is an IPv6 address with a zone"),
    ({"host": "dom0-b\n"}, "host: 'dom0-b\\n' is not a host name or address"),
    # Old code: accepted; sh ended the command at the newline and ran HOST here.
    ({"ssh_command": "ssh -o BatchMode=yes\n"}, "ssh_command: 'ssh -o BatchMode=yes\\n' is not"),
    # Old code: "abc" ran xl migrate and ended in a traceback; -1 started it and killed it.
    ({"timeout": "abc"}, "timeout: 'abc' is not a whole number of seconds from 1 to 86400"),
    ({"timeout": -1}, "timeout: -1 is not a whole number of seconds from 1 to 86400"),
    ({"timeout": 0}, "timeout: 0 is not a whole number of seconds from 1 to 86400"),
    ({"timeout": 10**9}, "timeout: 1000000000 is not a whole number of seconds from 1 to 86400"),
    ({"live": "false"}, "live: 'false' is not true or false"),
])
def test_migrate_arguments_are_checked_before_any_command(installed, commands, arguments,
                                                          message):
    installed.add("xl")
    arguments = dict({"name": "g", "host": "dom0-b"}, **arguments)
    with pytest.raises(SaltInvocationError, match=re.escape(message)):
        xm.migrate(**arguments)
    assert commands.calls == []


def test_a_migrate_timeout_reaches_the_command(installed, commands):
    installed.add("xl")
    xm.migrate("g", "dom0-b", timeout="600", toolstack="xl")
    assert (commands.calls[-1]["argv"], commands.calls[-1]["timeout"]) == (
        ["xl", "migrate", "g", "dom0-b"], 600)


@pytest.mark.parametrize("timeout", ["abc", -1, 1.5, 10**9, True])
def test_shutdown_timeout_is_checked_before_any_command(commands, installed, timeout):
    installed.add("xl")
    with pytest.raises(SaltInvocationError, match="^timeout: "):
        xm.shutdown("XenGuest", timeout=timeout)
    assert commands.argv() == []
