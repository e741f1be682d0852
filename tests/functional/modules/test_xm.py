"""The xm execution module through the real Salt loader, against the xl/xm test double."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import guest_config

SEED_KERNEL = "vmlinuz-2.6.18-53.1.14.el5.myxen"


@pytest.fixture
def xm(xen_loaders):
    xen_loaders.reset_state()
    return xen_loaders.modules.xm


@pytest.fixture
def kernel(tmp_path):
    path = tmp_path / "boot" / SEED_KERNEL
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF kernel")
    return str(path)


def seed_text(kernel, toolstack, tmp_path):
    """The seed's guest config in the toolstack's format (the seed's xm config
    mounts /xen with the kernel's default NFS options)."""
    text = guest_config.render_config(
        "XenGuest", kernel, toolstack, memory=256, dhcp="dhcp", vif=[""], nfs_root="/xen",
        nfs_server="192.0.2.1", root="/dev/nfs",
        nfs_options=None if toolstack == "xm" else "vers=3")
    path = tmp_path / f"XenGuest-{toolstack}.cfg"
    path.write_text(text)
    return str(path)


def test_the_module_is_loaded_with_the_double(xm, xen_double):
    assert xm.toolstack() == "xl"
    assert xm.list_domains() == {
        "Domain-0": {"id": 0, "memory_mb": 1024, "vcpus": 2, "state": "running",
                     "flags": "r-----", "time_s": 12.1},
    }
    assert xen_double.spawns() == [["xl", "list"]]


def test_xl_without_hypervisor_is_unusable(xm, make_xen_double):
    make_xen_double("nohv", apply=True, hypervisor=False)
    with pytest.raises(CommandExecutionError) as info:
        xm.toolstack()
    assert "xl is installed but not answering" in str(info.value)
    assert "ERROR:  Can't find hypervisor information in sysfs!" in str(info.value)


def test_xl_boots_the_rendered_config_with_the_synthesized_command_line(
        xm, xen_double, kernel, tmp_path):
    path = seed_text(kernel, "xl", tmp_path)
    result = xm.create(path)
    assert result["name"] == "XenGuest"
    assert result["output"] == f"Parsing config from {path}"
    assert xm.state("XenGuest") == "blocked"
    guest = xen_double.domains()["XenGuest"]
    assert guest["cmdline"] == (
        "root=/dev/nfs ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen,vers=3")
    assert guest["memory_mb"] == 256
    detailed = xm.list_domains(details=True)["XenGuest"]
    assert detailed["cmdline"] == guest["cmdline"]
    assert detailed["kernel"] == kernel
    assert [c[:3] for c in xen_double.spawns()] == [
        ["xl", "list"], ["xl", "create", path], ["xl", "list"], ["xl", "list", "-l"]]


def test_xl_silently_drops_the_xm_keys(xm, xen_double, kernel, tmp_path):
    """Why the formula writes extra for xl: the xm config boots without any NFS root."""
    path = seed_text(kernel, "xm", tmp_path)
    xm.create(path, toolstack="xl")
    assert xen_double.domains()["XenGuest"]["cmdline"] == "root=/dev/nfs"


def test_xm_synthesizes_the_command_line_itself(xm, make_xen_double, kernel, tmp_path):
    double = make_xen_double("xm-dom0", toolstacks=("xm",), apply=True)
    assert xm.toolstack() == "xm"
    path = seed_text(kernel, "xm", tmp_path)
    assert 'nfs_server = "192.0.2.1"' in (tmp_path / "XenGuest-xm.cfg").read_text()
    result = xm.create(path)
    assert result["output"] == (f'Using config file "{path}".\n'
                                "Started domain XenGuest (id=1)")
    assert double.domains()["XenGuest"]["cmdline"] == (
        "ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen ")
    assert xm.state("XenGuest") == "blocked"
    assert xm.shutdown("XenGuest")["stopped"] is True
    assert xm.state("XenGuest") == "absent"


def test_errors_carry_the_tools_message(xm, xen_double, kernel, tmp_path):
    path = seed_text(kernel, "xl", tmp_path)
    xm.create(path)
    with pytest.raises(CommandExecutionError) as info:
        xm.create(path)
    assert f"'xl create {path}' failed (exit 3)" in str(info.value)
    assert 'Domain with name "XenGuest" already exists.' in str(info.value)
    with pytest.raises(CommandExecutionError, match=r"nope is an invalid domain identifier"):
        xm.destroy("nope")
    missing = tmp_path / "missing.cfg"
    missing.write_text('name = "m"\nkernel = "/boot/none"\n')
    with pytest.raises(CommandExecutionError, match="xc_dom_kernel_file failed"):
        xm.create(str(missing))
    python = tmp_path / "python.cfg"
    python.write_text('name = "p"\nmemory = int("256")\n')
    with pytest.raises(CommandExecutionError,
                       match="warning: Config file looks like it contains Python code"):
        xm.create(str(python))


def test_shutdown_gives_up_after_the_timeout(xm, xen_double, kernel, tmp_path):
    xm.create(seed_text(kernel, "xl", tmp_path))
    xen_double.configure(ignore_shutdown=["XenGuest"])
    assert xm.shutdown("XenGuest", timeout=1)["timed_out"] is True
    assert xm.state("XenGuest") == "blocked"
    assert xm.destroy("XenGuest") is True
    assert xm.state("XenGuest") == "absent"


def test_migrate_moves_the_guest_to_the_other_dom0(xm, make_xen_double, kernel, tmp_path):
    receiver = make_xen_double("dom0-b")
    sender = make_xen_double("dom0-a", apply=True, migrate_targets={"dom0-b": str(receiver.dir)})
    xm.create(seed_text(kernel, "xl", tmp_path))
    ret = xm.migrate("XenGuest", "dom0-b")
    assert ret["toolstack"] == "xl"
    assert ret["output"].endswith("Migration successful.")
    assert xm.state("XenGuest") == "absent"
    assert list(receiver.domains()) == ["XenGuest"]
    assert sender.domains() == {}
    with pytest.raises(CommandExecutionError, match="Could not resolve hostname elsewhere"):
        xm.migrate("Domain-0", "elsewhere")


@pytest.mark.parametrize(("arguments", "message"), [
    ({"host": "fe80::1%$(reboot)"}, "host: 'fe80::1%$(reboot)' is an IPv6 address with a zone"),
    ({"host": "dom0-b", "ssh_command": "ssh\n"}, "ssh_command: 'ssh\\n' is not"),
    ({"host": "dom0-b", "timeout": "abc"}, "timeout: 'abc' is not a whole number of seconds"),
    ({"host": "dom0-b", "timeout": -1}, "timeout: -1 is not a whole number of seconds"),
])
def test_migrate_refuses_hostile_arguments_before_the_toolstack_runs(xm, xen_double, arguments,
                                                                     message):
    with pytest.raises(SaltInvocationError) as info:
        xm.migrate("XenGuest", **arguments)
    assert str(info.value).startswith(message)
    assert xen_double.spawns() == []
