"""The guest_kernel module: kernel release and config, initramfs contents, the NFS-root verdict.

Images are built by tests/support/kernel_images.py for every compression the
module reads (zstd and lz4 by the real commands, which the module runs too);
configs are in tests/data/kernel/.
"""

import gzip
import re
import shutil
import struct

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import REPO
from tests.support import kernel_images as images
from tests.support.commands import Commands
from tests.support.kernel_images import write
from xen_nfsroot.modules import guest_kernel
from xen_nfsroot_lib import kernel as kernels
from xen_nfsroot_lib import kernel_image

DATA = REPO / "tests" / "data" / "kernel"
DEBIAN = "6.1.0-50-amd64"
CUSTOM = "6.6.0-nfsroot"
XENLINUX = "2.6.18-53.1.14.el5.myxen"


def config_text(name):
    return (DATA / f"{name}.config").read_text()


def tools(commands):
    """The decompression or listing command of each call (past prlimit and its options)."""
    return [next(part for part in argv if not part.startswith(("/", "-")))
            for argv in commands.argv()]


@pytest.fixture
def commands():
    """cmd.run_all that really runs the command (zstd, lz4), and records it."""
    return Commands(real=True)


@pytest.fixture
def configure_loader_modules(commands):
    return {guest_kernel: {"__salt__": {"cmd.run_all": commands}, "__context__": {}}}


def with_config(boot, release, name):
    (boot / f"config-{release}").write_text(config_text(name))
    return str(boot / f"config-{release}")


def hide_commands(monkeypatch, *names):
    real = guest_kernel.salt.utils.path.which
    monkeypatch.setattr(
        guest_kernel.salt.utils.path, "which", lambda name: None if name in names else real(name)
    )


def pretend_installed(monkeypatch, name):
    real = guest_kernel.salt.utils.path.which
    monkeypatch.setattr(
        guest_kernel.salt.utils.path,
        "which",
        lambda tool: f"/usr/bin/{name}" if tool == name else (
            None if tool in ("lsinitramfs", "lsinitrd") else real(tool)),
    )


# --- the tools and the loader -----------------------------------------------------------


@pytest.mark.parametrize("tool", ["zstd", "lz4", "prlimit"])
def test_the_commands_the_tests_need_are_installed(tool):
    assert shutil.which(tool), f"{tool} is missing: install the Debian package (zstd, lz4)"


def test_virtual_needs_no_binary():
    assert guest_kernel.__virtual__() == "guest_kernel"


def test_every_public_function_documents_a_cli_example():
    public = [
        name for name in dir(guest_kernel)
        if not name.startswith("_") and callable(getattr(guest_kernel, name))
        and getattr(getattr(guest_kernel, name), "__module__", None) == guest_kernel.__name__
        and not isinstance(getattr(guest_kernel, name), type)
    ]
    assert sorted(public) == sorted(guest_kernel.__all__)
    for name in public:
        assert "CLI Example:" in (getattr(guest_kernel, name).__doc__ or ""), name


# --- the kernel's release ---------------------------------------------------------------


@pytest.mark.parametrize("compression", images.COMPRESSIONS)
def test_bzimage_release_from_its_header(boot, compression):
    kernel = write(boot / "vmlinuz", images.bzimage(compression=compression))
    assert guest_kernel.kernel_version(kernel) == {
        "version": DEBIAN, "version_source": "setup header", "format": "bzImage",
    }


@pytest.mark.parametrize("compression", images.COMPRESSIONS)
def test_bzimage_without_version_string_reads_the_payload_banner(boot, compression):
    image = images.bzimage(
        version_string=None, payload=images.vmlinux(CUSTOM), compression=compression,
        version_offset=0,
    )
    kernel = write(boot / "vmlinuz", image)
    assert guest_kernel.kernel_version(kernel)["version"] == CUSTOM
    assert guest_kernel.kernel_version(kernel)["version_source"] == "banner"


def test_a_version_offset_outside_the_setup_code_is_not_read(boot):
    image = bytearray(images.bzimage(version_string=None, payload=images.vmlinux(None)))
    struct.pack_into("<H", image, 0x20E, 0x8000)
    kernel = write(boot / f"vmlinuz-{DEBIAN}", bytes(image))
    assert guest_kernel.kernel_version(kernel)["version_source"] == "file name"


@pytest.mark.parametrize("compression", images.COMPRESSIONS)
def test_compressed_vmlinux_release_from_its_banner(boot, compression):
    kernel = write(boot / "vmlinux.img", images.compress(images.vmlinux(XENLINUX), compression))
    assert guest_kernel.kernel_version(kernel) == {
        "version": XENLINUX, "version_source": "banner", "format": f"{compression}-compressed",
    }


def test_plain_vmlinux_release_from_its_banner(boot):
    kernel = write(boot / "vmlinux", images.vmlinux(XENLINUX, filler=1 << 20))
    assert guest_kernel.kernel_version(kernel) == {
        "version": XENLINUX, "version_source": "banner", "format": "ELF",
    }


def test_release_from_the_file_name(boot):
    kernel = write(boot / f"vmlinuz-{XENLINUX}", b"not a kernel this module can read")
    assert guest_kernel.kernel_version(kernel) == {
        "version": XENLINUX, "version_source": "file name", "format": None,
    }
    kernel = write(boot / f"vmlinux-{XENLINUX}.gz", gzip.compress(b"plain text, no ELF"))
    assert guest_kernel.kernel_version(kernel)["version"] == XENLINUX


def test_release_from_a_symlinks_target_name(boot):
    store = boot / "store"
    store.mkdir()
    write(store / f"vmlinuz-{DEBIAN}", b"\x00" * 1024)
    (boot / "vmlinuz-guest").symlink_to(store / f"vmlinuz-{DEBIAN}")
    assert guest_kernel.kernel_version(str(boot / "vmlinuz-guest"))["version"] == DEBIAN


def test_no_release_at_all(boot):
    kernel = write(boot / "kernel.img", b"\x00" * 1024)
    assert guest_kernel.kernel_version(kernel) == {
        "version": None, "version_source": None, "format": None,
    }


@pytest.mark.parametrize("path", ["missing", "."])
def test_a_kernel_that_is_not_a_regular_file_is_an_error(boot, path):
    target = str(boot / path)
    problem = "does not exist" if path == "missing" else "is not a regular file"
    with pytest.raises(CommandExecutionError, match=f"^kernel {re.escape(target)} {problem}$"):
        guest_kernel.check(target)
    with pytest.raises(CommandExecutionError, match=target):
        guest_kernel.kernel_version(target)


def test_a_missing_ramdisk_is_an_error(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    with pytest.raises(CommandExecutionError, match=f"ramdisk {boot}/initrd.img does not exist"):
        guest_kernel.check(kernel, ramdisk=str(boot / "initrd.img"))


def test_bad_arguments(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    with pytest.raises(SaltInvocationError, match="guest_type: 'hvm' is not one of pv, pvh"):
        guest_kernel.check(kernel, guest_type="hvm")
    with pytest.raises(SaltInvocationError, match="dhcp: 'yes' is not true or false"):
        guest_kernel.check(kernel, dhcp="yes")


# --- the kernel's config: beside it or embedded -----------------------------------------


def test_config_beside_the_kernel(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    config = with_config(boot, DEBIAN, f"debian-{DEBIAN}")
    found = guest_kernel.kernel_config(kernel)
    assert found["config"] == config
    assert found["options"]["CONFIG_NFS_FS"] == "m"
    assert found["reason"] is None


def test_config_beside_a_symlinks_target(boot, tmp_path):
    store = tmp_path / "kernels"
    store.mkdir()
    write(store / f"vmlinuz-{DEBIAN}", images.bzimage())
    (boot / "vmlinuz-guest").symlink_to(store / f"vmlinuz-{DEBIAN}")
    config = with_config(store, DEBIAN, f"debian-{DEBIAN}")
    result = guest_kernel.check(str(boot / "vmlinuz-guest"))
    assert result["config"] == config
    assert result["version_source"] == "setup header"
    assert result["ok"] is False


def test_config_beside_the_symlink_itself(boot, tmp_path):
    store = tmp_path / "kernels"
    store.mkdir()
    write(store / f"vmlinuz-{CUSTOM}", b"\x00" * 64)
    (boot / "vmlinuz-guest").symlink_to(store / f"vmlinuz-{CUSTOM}")
    config = with_config(boot, CUSTOM, "nfsroot")
    result = guest_kernel.check(str(boot / "vmlinuz-guest"))
    assert (result["version"], result["version_source"]) == (CUSTOM, "file name")
    assert result["config"] == config
    assert result["ok"] is True


@pytest.mark.parametrize("compression", images.COMPRESSIONS)
def test_embedded_ikconfig_of_a_bzimage(boot, compression, commands):
    payload = images.vmlinux(CUSTOM, config_text=config_text("nfsroot"))
    image = images.bzimage(f"{CUSTOM} (builder@example) #1 SMP", payload, compression)
    kernel = write(boot / "vmlinuz", image)
    result = guest_kernel.check(kernel, dhcp=True)
    assert result["config"] == "embedded IKCONFIG"
    assert result["ok"] is True
    assert "CONFIG_ROOT_NFS=y in embedded IKCONFIG" in result["evidence"]
    assert result["reason"] == f"{kernel} ({CUSTOM}) can mount its root over NFS by itself"
    if compression in ("zstd", "lz4"):
        assert tools(commands) == [compression]
        assert commands.argv()[0][0].endswith("prlimit")
    else:
        assert commands.argv() == []


@pytest.mark.parametrize("compression", [None, *images.COMPRESSIONS])
def test_embedded_ikconfig_of_a_vmlinux(boot, compression):
    body = images.vmlinux(XENLINUX, config_text=config_text("xenlinux-2.6.18"))
    kernel = write(boot / "vmlinux", images.compress(body, compression) if compression else body)
    found = guest_kernel.kernel_config(kernel)
    assert found["config"] == "embedded IKCONFIG"
    assert found["options"] == kernels.parse_config(config_text("xenlinux-2.6.18"))


def test_the_config_file_wins_over_the_embedded_one(boot, commands):
    payload = images.vmlinux(DEBIAN, config_text=config_text("nfsroot"))
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage(payload=payload, compression="zstd"))
    config = with_config(boot, DEBIAN, f"debian-{DEBIAN}")
    assert guest_kernel.kernel_config(kernel)["config"] == config
    assert commands.argv() == []  # the header gave the release: nothing decompressed


def test_no_config_is_not_a_failure(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    result = guest_kernel.check(kernel)
    assert result["checked"] is False
    assert result["ok"] is None
    assert result["config"] is None
    assert result["problems"] == []
    assert result["reason"] == (
        f"{kernel} was not checked: no config-{DEBIAN} beside it (in {boot}) "
        "and no embedded IKCONFIG"
    )


def test_no_config_and_no_release(boot):
    kernel = write(boot / "kernel.img", b"\x00" * 1024)
    result = guest_kernel.check(kernel)
    assert result["checked"] is False
    assert "its release is unknown" in result["reason"]
    assert "neither a bzImage, an ELF file nor compressed" in result["reason"]


def test_a_corrupt_payload_still_gives_the_headers_release(boot):
    image = bytearray(images.bzimage(compression="xz"))
    offset = kernel_image.setup_header(write(boot / "probe", bytes(image)))["payload_offset"]
    image[offset + 12 : offset + 200] = b"\xff" * 188
    kernel = write(boot / "vmlinuz", bytes(image))
    result = guest_kernel.check(kernel)
    assert (result["version"], result["checked"]) == (DEBIAN, False)
    assert "its embedded IKCONFIG could not be read" in result["reason"]
    assert f"the kernel payload of {kernel}: its xz data" in result["reason"]


def test_old_boot_protocol_cannot_give_the_embedded_config(boot):
    kernel = write(boot / "vmlinuz", images.bzimage(protocol=0x0206))
    result = guest_kernel.check(kernel)
    assert result["checked"] is False
    assert "boot protocol 2.06 has no payload fields (2.08 or later needed)" in result["reason"]


def test_zstd_kernel_without_the_zstd_command(boot, monkeypatch):
    payload = images.vmlinux(CUSTOM, config_text=config_text("nfsroot"))
    kernel = write(boot / "vmlinuz", images.bzimage(None, payload, "zstd", version_offset=0))
    hide_commands(monkeypatch, "zstd")
    result = guest_kernel.check(kernel)
    assert result["checked"] is False
    assert "zstd-compressed and the zstd command is not installed" in result["reason"]


# --- the verdict without an initramfs ---------------------------------------------------


def test_the_debian_kernel_cannot_mount_nfs_by_itself(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    config = with_config(boot, DEBIAN, f"debian-{DEBIAN}")
    result = guest_kernel.check(kernel)
    assert result["checked"] is True
    assert result["ok"] is False
    assert result["problems"] == [
        f"CONFIG_ROOT_NFS is not set in {config}: this kernel cannot mount its root over NFS "
        "without an initramfs",
        f"CONFIG_NFS_FS is m in {config}: the root over NFS without an initramfs needs the NFS "
        "client built in",
        f"CONFIG_IP_PNP is not set in {config}: the kernel cannot configure its network (ip=) "
        "without an initramfs",
        f"CONFIG_XEN_NETDEV_FRONTEND is m in {config}: the guest's network interface "
        "(xen-netfront) must be built in without an initramfs",
    ]
    assert result["evidence"] == [f"CONFIG_XEN_PV=y in {config}"]
    assert result["reason"] == "; ".join(result["problems"])


def test_a_kernel_with_nfs_root_built_in(boot):
    kernel = write(boot / f"vmlinuz-{CUSTOM}", images.bzimage(f"{CUSTOM} (b@h) #1"))
    config = with_config(boot, CUSTOM, "nfsroot")
    for dhcp in (False, True):
        result = guest_kernel.check(kernel, dhcp=dhcp)
        assert (result["checked"], result["ok"], result["problems"]) == (True, True, [])
        assert f"CONFIG_ROOT_NFS=y in {config}" in result["evidence"]
        assert (f"CONFIG_IP_PNP_DHCP=y in {config}" in result["evidence"]) is dhcp


def test_dhcp_needs_ip_pnp_dhcp(boot):
    kernel = write(boot / f"vmlinuz-{CUSTOM}", b"\x00" * 64)
    config = with_config(boot, CUSTOM, "nfsroot-no-dhcp")
    assert guest_kernel.check(kernel)["ok"] is True
    result = guest_kernel.check(kernel, dhcp=True)
    assert result["ok"] is False
    assert result["problems"] == [
        f"CONFIG_IP_PNP_DHCP is not set in {config}: the kernel cannot get its address by DHCP "
        "(ip=dhcp) without an initramfs"
    ]


def test_a_kernel_without_pv_support(boot):
    kernel = write(boot / f"vmlinuz-{CUSTOM}", b"\x00" * 64)
    config = with_config(boot, CUSTOM, "no-pv")
    result = guest_kernel.check(kernel)
    assert result["ok"] is False
    assert result["problems"] == [
        f"CONFIG_XEN_PV is not set in {config}: this kernel cannot boot as a Xen PV guest"
    ]


def test_a_xenlinux_kernel_is_pv_through_config_xen(boot):
    kernel = write(boot / f"vmlinuz-{XENLINUX}", images.compress(images.vmlinux(XENLINUX), "gzip"))
    config = with_config(boot, XENLINUX, "xenlinux-2.6.18")
    result = guest_kernel.check(kernel, dhcp=True)
    assert (result["ok"], result["version_source"]) == (True, "banner")
    assert f"CONFIG_XEN=y in {config} (a kernel older than CONFIG_XEN_PV)" in result["evidence"]
    result = guest_kernel.check(kernel, guest_type="pvh")
    assert result["problems"] == [
        f"CONFIG_XEN_PVH is not set in {config}: this kernel cannot boot as a Xen PVH guest"
    ]


def test_pvh_needs_xen_pvh(boot):
    kernel = write(boot / f"vmlinuz-{CUSTOM}", b"\x00" * 64)
    config = with_config(boot, CUSTOM, "nfsroot")
    result = guest_kernel.check(kernel, guest_type="pvh")
    assert result["problems"] == [
        f"CONFIG_XEN_PVH is not set in {config}: this kernel cannot boot as a Xen PVH guest"
    ]


# --- initramfs images -------------------------------------------------------------------


@pytest.fixture
def debian_kernel(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    return kernel, with_config(boot, DEBIAN, f"debian-{DEBIAN}")


@pytest.mark.parametrize("compression", images.COMPRESSIONS)
def test_an_initramfs_tools_image_boots_the_debian_kernel(boot, debian_kernel, compression):
    kernel, config = debian_kernel
    ramdisk = write(boot / f"initrd.img-{DEBIAN}",
                    images.initramfs(images.initramfs_tools_files(), compression))
    result = guest_kernel.check(kernel, ramdisk=ramdisk, dhcp=True)
    assert (result["checked"], result["ok"], result["problems"]) == (True, True, [])
    assert result["evidence"] == [
        f"initramfs-tools scripts/nfs in {ramdisk}",
        f"usr/lib/modules/{DEBIAN}/kernel/fs/nfs/nfs.ko in {ramdisk}",
        f"usr/lib/modules/{DEBIAN}/kernel/drivers/net/xen-netfront.ko in {ramdisk}",
        f"CONFIG_XEN_PV=y in {config}",
    ]
    assert result["reason"] == (
        f"{kernel} ({DEBIAN}) can mount its root over NFS with the initramfs {ramdisk}"
    )


@pytest.mark.parametrize("compression", images.COMPRESSIONS)
def test_ramdisk_files_lists_the_early_and_the_main_archive(boot, compression):
    files = images.initramfs_tools_files()
    ramdisk = write(boot / "initrd.img", images.initramfs(files, compression))
    names = guest_kernel.ramdisk_files(ramdisk)
    assert names[:4] == [
        "kernel", "kernel/x86", "kernel/x86/microcode", "kernel/x86/microcode/GenuineIntel.bin",
    ]
    assert names[4:] == list(files)


def test_zstd_and_lz4_go_through_their_commands(boot, commands):
    for compression in ("zstd", "lz4"):
        ramdisk = write(boot / f"initrd.{compression}",
                        images.initramfs(images.initramfs_tools_files(), compression))
        assert "scripts/nfs" in guest_kernel.ramdisk_files(ramdisk)
    assert tools(commands) == ["zstd", "lz4"]


def test_a_dracut_image(boot, debian_kernel):
    kernel, _ = debian_kernel
    ramdisk = write(boot / "initramfs.img", images.initramfs(images.dracut_files(), "xz", False))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["ok"] is True
    assert result["evidence"][:2] == [
        f"dracut's nfs module (usr/lib/dracut/hooks/cmdline/90-parse-nfsroot.sh) in {ramdisk}",
        f"usr/lib/modules/{DEBIAN}/kernel/fs/nfs/nfs.ko.xz in {ramdisk}",
    ]


def test_dracuts_nfsroot_alone_is_enough(boot, debian_kernel):
    kernel, _ = debian_kernel
    files = images.dracut_files()
    del files["usr/lib/dracut/hooks/cmdline/90-parse-nfsroot.sh"]
    ramdisk = write(boot / "initramfs.img", images.initramfs(files, "gzip", False))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["evidence"][0] == f"dracut's nfs module (usr/sbin/nfsroot) in {ramdisk}"


def test_an_initramfs_without_the_nfs_script(boot, debian_kernel):
    kernel, _ = debian_kernel
    files = images.initramfs_tools_files(script=False)
    ramdisk = write(boot / f"initrd.img-{DEBIAN}", images.initramfs(files, "gzip"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert (result["checked"], result["ok"]) == (True, False)
    assert result["problems"] == [
        f"{ramdisk} has no NFS boot script (initramfs-tools scripts/nfs or dracut's nfs module): "
        "it cannot mount an NFS root"
    ]


def test_an_initramfs_without_nfs_ko_for_a_modular_nfs(boot, debian_kernel):
    kernel, config = debian_kernel
    files = images.initramfs_tools_files(nfs=False)
    ramdisk = write(boot / f"initrd.img-{DEBIAN}", images.initramfs(files, "xz"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["ok"] is False
    assert result["problems"] == [
        f"{ramdisk} has no nfs module and CONFIG_NFS_FS is m in {config}: the guest cannot "
        "mount NFS"
    ]


def test_an_initramfs_without_xen_netfront(boot, debian_kernel):
    kernel, config = debian_kernel
    files = images.initramfs_tools_files(netfront=False)
    ramdisk = write(boot / "initrd.img", images.initramfs(files, "bzip2"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["problems"] == [
        f"{ramdisk} has no xen-netfront module and CONFIG_XEN_NETDEV_FRONTEND is m in {config}: "
        "the guest has no network interface"
    ]


def test_built_in_drivers_need_no_modules(boot):
    kernel = write(boot / f"vmlinuz-{CUSTOM}", b"\x00" * 64)
    config = with_config(boot, CUSTOM, "nfsroot")
    files = images.initramfs_tools_files(CUSTOM, nfs=False, netfront=False)
    ramdisk = write(boot / "initrd.img", images.initramfs(files, "lzma"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["ok"] is True
    assert f"CONFIG_NFS_FS=y in {config}: no nfs module needed" in result["evidence"]
    assert f"CONFIG_XEN_NETDEV_FRONTEND=y in {config}: no xen-netfront module needed" in (
        result["evidence"])


def test_modules_for_another_release(boot, debian_kernel):
    kernel, config = debian_kernel
    files = images.initramfs_tools_files("6.1.0-49-amd64")
    ramdisk = write(boot / "initrd.img", images.initramfs(files, "gzip"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["problems"][0] == (
        f"{ramdisk} has the nfs module only for 6.1.0-49-amd64, not for {DEBIAN} and "
        f"CONFIG_NFS_FS is m in {config}: the guest cannot mount NFS"
    )
    assert len(result["problems"]) == 2


def test_pv_support_is_still_required_with_an_initramfs(boot):
    kernel = write(boot / f"vmlinuz-{CUSTOM}", b"\x00" * 64)
    config = with_config(boot, CUSTOM, "no-pv")
    ramdisk = write(boot / "initrd.img", images.initramfs(images.initramfs_tools_files(CUSTOM)))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["problems"] == [
        f"CONFIG_XEN_PV is not set in {config}: this kernel cannot boot as a Xen PV guest"
    ]


def test_pvh_with_the_debian_kernel_and_its_initramfs(boot, debian_kernel):
    kernel, config = debian_kernel
    ramdisk = write(boot / "initrd.img", images.initramfs(images.initramfs_tools_files(), "gzip"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk, guest_type="pvh")
    assert result["ok"] is True
    assert result["evidence"][-1] == f"CONFIG_XEN_PVH=y in {config}"


def test_no_config_but_an_initramfs_without_the_script_is_a_failure(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    ramdisk = write(boot / "initrd.img",
                    images.initramfs(images.initramfs_tools_files(script=False), "gzip"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert (result["checked"], result["ok"]) == (True, False)
    assert result["problems"][0].startswith(f"{ramdisk} has no NFS boot script")


def test_no_config_and_a_good_initramfs_is_not_checked(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    ramdisk = write(boot / "initrd.img", images.initramfs(images.initramfs_tools_files(), "gzip"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert (result["checked"], result["ok"]) == (False, None)
    assert result["reason"] == (
        f"{kernel} was not checked: no config-{DEBIAN} beside it (in {boot}) "
        "and no embedded IKCONFIG"
    )
    assert f"initramfs-tools scripts/nfs in {ramdisk}" in result["evidence"]


def test_no_config_and_no_nfs_ko_is_unknown(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage())
    files = images.initramfs_tools_files(nfs=False)
    ramdisk = write(boot / "initrd.img", images.initramfs(files, "gzip"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["ok"] is None
    assert result["reason"].endswith(
        f"; {ramdisk} has no nfs module, and whether the kernel has it built in is unknown"
    )


# --- reading initramfs archives ---------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"\x89LZO\x00\r\n\x1a\n" + b"\x00" * 64, "is lzo-compressed: it cannot be read here"),
        (b"garbage!" * 16, "neither a cpio archive nor compressed data at offset 0"),
        (images.microcode_cpio() + b"\x00" * 4 + b"garbage!", "at offset 1028"),
        (images.compress(b"garbage!" * 16, "gzip"), "neither a cpio archive nor compressed"),
        (images.compress(images.cpio({"x": b""}), "xz")[:-20], "xz data"),
    ],
    ids=["lzo", "unknown", "unknown after early", "not cpio inside", "truncated"],
)
def test_an_unreadable_initramfs_is_not_checked(boot, debian_kernel, monkeypatch, image, message):
    hide_commands(monkeypatch, "lsinitramfs", "lsinitrd")
    kernel, _ = debian_kernel
    ramdisk = write(boot / "initrd.img", image)
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert (result["checked"], result["ok"], result["problems"]) == (False, None, [])
    assert result["reason"].startswith(f"{ramdisk} was not checked: {ramdisk}")
    assert message in result["reason"]
    assert result["reason"].endswith("(and neither lsinitramfs nor lsinitrd is installed)")


def test_zstd_initramfs_without_the_zstd_command(boot, debian_kernel, monkeypatch):
    hide_commands(monkeypatch, "zstd", "lsinitramfs", "lsinitrd")
    kernel, _ = debian_kernel
    ramdisk = write(boot / "initrd.img", images.initramfs(images.initramfs_tools_files(), "zstd"))
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert result["checked"] is False
    assert result["reason"] == (
        f"{ramdisk} was not checked: {ramdisk} (archive at offset 1024) is zstd-compressed and "
        "the zstd command is not installed (and neither lsinitramfs nor lsinitrd is installed)"
    )


def test_a_failing_decompression_command(boot, commands):
    ramdisk = write(boot / "initrd.img", images.microcode_cpio() + b"\x28\xb5\x2f\xfd" + b"x" * 64)
    with pytest.raises(CommandExecutionError, match=r"zstd -d failed \(exit 1\): .+"):
        guest_kernel.ramdisk_files(ramdisk)


def test_lsinitramfs_lists_what_python_cannot(boot, debian_kernel, monkeypatch, commands):
    hide_commands(monkeypatch, "zstd")
    pretend_installed(monkeypatch, "lsinitramfs")
    kernel, _ = debian_kernel
    ramdisk = write(boot / "initrd.img", images.initramfs(images.initramfs_tools_files(), "zstd"))
    listing = "\n".join(["kernel", "kernel/x86", ".", *images.initramfs_tools_files()]) + "\n"
    commands.answer(["/usr/bin/lsinitramfs"], stdout=listing)
    result = guest_kernel.check(kernel, ramdisk=ramdisk)
    assert commands.argv() == [["/usr/bin/lsinitramfs", ramdisk]]
    assert result["ok"] is True


def test_lsinitrd_long_listing(boot, monkeypatch, commands):
    pretend_installed(monkeypatch, "lsinitrd")
    ramdisk = write(boot / "initrd.img", b"\x89LZO\x00\r\n\x1a\n" + b"\x00" * 64)
    commands.answer(["/usr/bin/lsinitrd"], stdout=(
        "Image: /boot/initramfs.img: 12M\n"
        "========================================================================\n"
        "dracut modules:\n"
        "nfs\n"
        "========================================================================\n"
        "drwxr-xr-x  12 root     root            0 Mar 12  2023 .\n"
        "lrwxrwxrwx   1 root     root            7 Mar 12  2023 sbin -> usr/sbin\n"
        "-rwxr-xr-x   1 root     root         4096 Mar 12 12:34 usr/sbin/nfsroot\n"
        "-rw-r--r--   1 root     root          150 Mar 12  2023 usr/lib/my file.txt\n"
    ))
    names = guest_kernel.ramdisk_files(ramdisk)
    assert names == ["sbin", "usr/sbin/nfsroot", "usr/lib/my file.txt"]


def test_a_failing_listing_command(boot, monkeypatch, commands):
    pretend_installed(monkeypatch, "lsinitramfs")
    ramdisk = write(boot / "initrd.img", b"garbage!" * 4)
    commands.answer(["/usr/bin/lsinitramfs"], retcode=2, stderr="cpio: bad")
    failed = r"; lsinitramfs .* failed \(exit 2\): cpio: bad$"
    with pytest.raises(CommandExecutionError, match=failed):
        guest_kernel.ramdisk_files(ramdisk)


# --- bounds -----------------------------------------------------------------------------


def test_a_huge_embedded_config_is_refused(boot, monkeypatch):
    monkeypatch.setattr(kernel_image, "MAX_CONFIG", 4096)
    payload = images.vmlinux(CUSTOM, config_text=config_text("nfsroot") * 200)
    kernel = write(boot / "vmlinuz", images.bzimage(payload=payload, compression="gzip"))
    result = guest_kernel.check(kernel)
    assert result["checked"] is False
    assert "the embedded IKCONFIG decompresses to more than 4096 bytes" in result["reason"]
