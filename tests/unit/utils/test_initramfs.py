"""The initramfs reader: cpio newc archives, early and compressed, and their bounds."""

import shutil

import pytest
from salt.exceptions import CommandExecutionError

from tests.support import kernel_images as images
from tests.support.commands import Commands
from tests.support.kernel_images import write
from xen_nfsroot_lib import compression, initramfs


@pytest.fixture
def runner():
    """zstd and lz4 run for real, as the guest_kernel module runs them."""
    return compression.Runner(Commands(real=True), shutil.which)


def test_concatenated_archives_and_padding(boot, runner):
    first = images.cpio({"a": b"1", "dir": None})
    second = images.cpio({"./b": b"22", "/c": b"333"})
    third = images.compress(images.cpio({"d": b""}) + b"\x00" * 4 + images.cpio({"e": b"x"}),
                            "gzip")
    image = first + b"\x00" * 512 + second[:-4] + b"\x00" * 8 + third + b"\x00" * 4
    names = initramfs.ramdisk_files(write(boot / "initrd.img", image), runner)
    assert names == ["a", "dir", "b", "c", "d", "e"]


def test_the_070702_magic_is_read_too(boot, runner):
    archive = images.cpio({"scripts/nfs": b"#"}).replace(b"070701", b"070702")
    assert initramfs.ramdisk_files(write(boot / "initrd.img", archive), runner) == ["scripts/nfs"]


def test_an_archive_without_trailer_is_cut_short(boot, runner):
    archive = images.cpio({"scripts/nfs": b"#"})
    trailer = archive.index(b"TRAILER!!!") - 110
    ramdisk = write(boot / "initrd.img", archive[:trailer])
    with pytest.raises(CommandExecutionError, match="cut short or bad header at offset"):
        initramfs.ramdisk_files(ramdisk, runner)


def test_an_entry_running_past_the_end(boot, runner):
    archive = bytearray(images.cpio({"big": b"x" * 8}))
    archive[6 + 8 * 6 : 6 + 8 * 7] = b"%08X" % 0x10000  # filesize
    ramdisk = write(boot / "initrd.img", bytes(archive))
    with pytest.raises(CommandExecutionError, match="entry at offset 0 runs past the end"):
        initramfs.ramdisk_files(ramdisk, runner)


def test_a_bad_hex_field(boot, runner):
    archive = bytearray(images.cpio({"x": b""}))
    archive[6 + 8 * 6 : 6 + 8 * 7] = b"ZZZZZZZZ"  # filesize
    with pytest.raises(CommandExecutionError, match="bad cpio header at offset 0"):
        initramfs.ramdisk_files(write(boot / "initrd.img", bytes(archive)), runner)


def test_the_ramdisk_file_itself_is_bounded(boot, runner, monkeypatch):
    monkeypatch.setattr(compression, "MAX_DECOMPRESSED", 1024)
    ramdisk = write(boot / "initrd.img", images.cpio({"x": b"y" * 2048}))
    with pytest.raises(CommandExecutionError, match="is larger than 1024 bytes"):
        initramfs.ramdisk_files(ramdisk, runner)


def test_listings_of_lsinitramfs_and_lsinitrd():
    assert initramfs.parse_listing("lsinitramfs", ".\nkernel\n./scripts/nfs\n\n") == [
        "kernel", "scripts/nfs"]
    assert initramfs.parse_listing("lsinitrd", (
        "Image: /boot/initramfs.img: 12M\n"
        "drwxr-xr-x  12 root     root            0 Mar 12  2023 .\n"
        "lrwxrwxrwx   1 root     root            7 Mar 12  2023 sbin -> usr/sbin\n"
        "-rwxr-xr-x   1 root     root         4096 Mar 12 12:34 usr/sbin/nfsroot\n"
    )) == ["sbin", "usr/sbin/nfsroot"]
