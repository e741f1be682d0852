"""Small synthetic kernels and initramfs images, built the way the real ones are.

* :func:`bzimage`: an x86 boot sector and setup header (``HdrS`` at 0x202,
  the version string at ``kernel_version + 0x200``, ``payload_offset`` and
  ``payload_length`` from protocol 2.08) followed by protected-mode code
  whose payload is a compressed ``vmlinux``, the decompressed size appended
  for every compression but gzip, as the kernel's build does.
* :func:`vmlinux`: the start of an ELF file with a ``Linux version`` banner
  and, optionally, an IKCONFIG block (``IKCFG_ST`` + gzip + ``IKCFG_ED``).
* :func:`cpio`: a cpio "newc" archive ending in ``TRAILER!!!``, padded with
  zeros to 512 bytes like GNU cpio's; :func:`initramfs` puts an optional
  uncompressed early archive before the compressed main one.

zstd and lz4 data are made by the real ``zstd`` and ``lz4`` commands (lz4's
legacy frame, ``-l``, as the kernel and mkinitramfs use); a missing command
makes the test fail.
"""

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess

COMPRESSIONS = ("gzip", "bzip2", "xz", "lzma", "zstd", "lz4")
TOOL_COMMANDS = {"zstd": ["zstd", "-q", "-c", "-19"], "lz4": ["lz4", "-l", "-q", "-c", "-9"]}

DEBIAN_VERSION_STRING = (
    "6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC "
    "Debian 6.1.176-1 (2026-07-02)"
)

#: The options of a xenlinux kernel that mounts its root over NFS without an
#: initramfs (a RHEL 5 xen kernel rebuilt for it, as in the seed's guest).
NFS_ROOT_CONFIG = """\
CONFIG_XEN=y
CONFIG_NFS_FS=y
CONFIG_ROOT_NFS=y
CONFIG_IP_PNP=y
CONFIG_IP_PNP_DHCP=y
CONFIG_XEN_NETDEV_FRONTEND=y
"""


def compress(data, compression):
    """data compressed as the kernel's build or mkinitramfs would."""
    if compression == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    if compression == "bzip2":
        return bz2.compress(data, 9)
    if compression == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if compression == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    command = TOOL_COMMANDS[compression]
    if shutil.which(command[0]) is None:
        raise AssertionError(
            f"the {command[0]} command is missing: it must be installed for these tests "
            "(Debian packages zstd and lz4)"
        )
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def banner(release):
    """The kernel's ``linux_banner`` (init/version.c) for release."""
    return (
        f"Linux version {release} (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
        f"12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian "
        f"6.1.176-1 (2026-07-02)\n"
    ).encode()


def ikconfig(config_text):
    """The IKCONFIG block kernel/configs.c embeds: IKCFG_ST, gzip of .config, IKCFG_ED."""
    return b"IKCFG_ST" + gzip.compress(config_text.encode(), mtime=0) + b"IKCFG_ED"


def vmlinux(release=None, config_text=None, filler=4096):
    """An ELF-looking vmlinux: ELF magic, code-like filler, banner, IKCONFIG."""
    body = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * (filler // 256)
    body += b"%s version %s\x00Linux version \x00"  # printk formats must not fool the search
    if release is not None:
        body += b"\x00" + banner(release) + b"\x00"
    if config_text is not None:
        body += b"\x00" * 16 + ikconfig(config_text)
    return body + b"\x00" * 64


def bzimage(version_string=DEBIAN_VERSION_STRING, payload=None, compression="xz", **header):
    """A bzImage: boot sector, setup header and setup code, then the payload.

    payload is the decompressed vmlinux (default: one with the version
    string's release in its banner); header overrides ``protocol``,
    ``setup_sects``, ``version_offset`` (0 for none) and ``payload_offset``
    (relative to the protected-mode code).
    """
    if payload is None:
        payload = vmlinux(version_string.split()[0] if version_string else None)
    stream = compress(payload, compression)
    if compression != "gzip":
        stream += struct.pack("<I", len(payload))  # the build's size_append
    setup_sects = header.get("setup_sects", 4)
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, header.get("protocol", 0x020F))
    version_at = header.get("version_offset", 0x400)
    if version_string is not None and version_at:
        encoded = version_string.encode() + b"\x00"
        setup[version_at : version_at + len(encoded)] = encoded
    struct.pack_into("<H", setup, 0x20E, version_at - 0x200 if version_at else 0)
    payload_offset = header.get("payload_offset", 0x2CC)
    struct.pack_into("<II", setup, 0x248, payload_offset, len(stream))
    decompressor = b"\x90" * payload_offset  # stands for arch/x86/boot/compressed's code
    return bytes(setup[: (setup_sects + 1) * 512]) + decompressor + stream + b"\x00" * 512


def cpio(files):
    """A cpio newc archive of files: {name: bytes (a file) or None (a directory)}."""
    archive = bytearray()
    entries = [*files.items(), ("TRAILER!!!", b"")]
    for number, (name, content) in enumerate(entries, start=1):
        is_dir = content is None
        data = b"" if is_dir else content
        if name == "TRAILER!!!":
            ino, mode, nlink = 0, 0, 1
        else:
            ino = number
            mode, nlink = (0o040755, 2) if is_dir else (0o100644, 1)
        encoded = name.encode() + b"\x00"
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        archive += b"070701" + b"".join(b"%08X" % field for field in fields) + encoded
        archive += b"\x00" * (-len(archive) % 4) + data + b"\x00" * (-len(data) % 4)
    return bytes(archive + b"\x00" * (-len(archive) % 512))


def microcode_cpio():
    """The early archive initramfs-tools puts first: CPU microcode, uncompressed."""
    return cpio({
        "kernel": None,
        "kernel/x86": None,
        "kernel/x86/microcode": None,
        "kernel/x86/microcode/GenuineIntel.bin": b"\x01\x00\x00\x00" * 64,
    })


def initramfs(files, compression="zstd", early=True):
    """An initramfs: the early microcode cpio (if early), then the compressed main cpio."""
    main = cpio(files)
    image = microcode_cpio() if early else b""
    return image + (compress(main, compression) if compression else main)


def initramfs_tools_files(release="6.1.0-50-amd64", nfs=True, netfront=True, script=True):
    """What Debian's mkinitramfs puts in a guest's initramfs (merged /usr)."""
    modules = f"usr/lib/modules/{release}/kernel"
    files = {
        ".": None,
        "init": b"#!/bin/sh\n. /scripts/functions\n",
        "conf": None,
        "conf/initramfs.conf": b"BOOT=local\n",
        "scripts": None,
        "scripts/functions": b"# functions\n",
        "scripts/local": b"# local\n",
        "usr/lib/modules": None,
        f"usr/lib/modules/{release}": None,
        f"{modules}/fs/ext4/ext4.ko": b"\x7fELF ext4",
        f"{modules}/drivers/block/xen-blkfront.ko": b"\x7fELF xen-blkfront",
    }
    if script:
        files["scripts/nfs"] = b"# NFS filesystem mounting\nnfs_mount_root()\n{\n}\n"
    if nfs:
        files[f"{modules}/fs/nfs/nfs.ko"] = b"\x7fELF nfs"
        files[f"{modules}/fs/nfs/nfsv3.ko"] = b"\x7fELF nfsv3"
    if netfront:
        files[f"{modules}/drivers/net/xen-netfront.ko"] = b"\x7fELF xen-netfront"
    return files


def dracut_files(release="6.1.0-50-amd64"):
    """What dracut with its nfs module puts in an initramfs (modules xz-compressed)."""
    modules = f"usr/lib/modules/{release}/kernel"
    return {
        "usr/lib/dracut/modules.txt": b"base\nnetwork\nnfs\nshutdown\n",
        "usr/lib/dracut/hooks/cmdline/90-parse-nfsroot.sh": b"#!/bin/sh\n",
        "usr/sbin/nfsroot": b"#!/bin/sh\n",
        "usr/bin/dracut-cmdline": b"#!/bin/sh\n",
        f"{modules}/fs/nfs/nfs.ko.xz": b"\xfd7zXZ\x00 nfs",
        f"{modules}/drivers/net/xen-netfront.ko.xz": b"\xfd7zXZ\x00 xen-netfront",
    }


def write(path, data):
    """Write an image's bytes to path; its path as a string, as the modules take it."""
    path.write_bytes(data)
    return str(path)
