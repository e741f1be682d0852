"""Bounded decompression of every compression a kernel or initramfs uses."""

import shutil
import struct

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


@pytest.mark.parametrize("kind", images.COMPRESSIONS)
def test_decompression_is_bounded(boot, runner, monkeypatch, kind):
    monkeypatch.setattr(compression, "MAX_DECOMPRESSED", 256 * 1024)
    files = {"big": b"\x00" * (1024 * 1024), "scripts/nfs": b"#"}
    ramdisk = write(boot / "initrd.img", images.initramfs(files, kind, early=False))
    with pytest.raises(CommandExecutionError, match="decompresses to more than 262144 bytes"):
        initramfs.ramdisk_files(ramdisk, runner)


def test_an_lzma_header_asking_for_a_huge_dictionary(boot, runner):
    header = b"\x5d" + struct.pack("<I", 0xFFFF0000) + b"\xff" * 8  # 4 GiB, size unknown
    ramdisk = write(boot / "initrd.img", header + b"\x00" * 64)
    with pytest.raises(CommandExecutionError, match=r"lzma data cannot be decompressed \(Memory"):
        initramfs.ramdisk_files(ramdisk, runner)


@pytest.mark.parametrize("kind", images.COMPRESSIONS)
def test_every_compression_is_told_by_its_magic_and_read(runner, kind):
    data = images.compress(b"vmlinux" * 1000, kind)
    assert compression.compression_of(data[:8]) == kind
    assert bytes(compression.decompress(data, kind, "image", runner)[0]) == b"vmlinux" * 1000


def test_lzo_and_unknown_data_are_not_read(runner):
    assert compression.compression_of(b"\x89LZO\x00\r\n\x1a") == "lzo"
    with pytest.raises(CommandExecutionError, match="^image is lzo-compressed: it cannot be"):
        compression.decompress(b"\x89LZO", "lzo", "image", runner)
    with pytest.raises(CommandExecutionError, match="^image is not in a known compression"):
        compression.decompress(b"garbage!", None, "image", runner)


def test_a_tool_that_is_not_installed(runner):
    hidden = runner._replace(which=lambda name: None)
    with pytest.raises(CommandExecutionError,
                       match="^image is zstd-compressed and the zstd command is not installed$"):
        compression.decompress(b"\x28\xb5\x2f\xfd", "zstd", "image", hidden)
    assert runner.run.calls == []
