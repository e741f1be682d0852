"""
Guest kernels: can a Xen guest's kernel, with or without its initramfs, mount
its root filesystem over NFS?

:func:`check` answers before the guest is booted, from the files on the dom0
(read with ``open(path, "rb")``; nothing runs in a guest tree).

The kernel's release comes from the image itself, its file name second:

* x86 bzImage (Linux/x86 boot protocol, ``Documentation/arch/x86/boot.rst``):
  the magic ``HdrS`` at 0x202; the 16-bit little-endian ``kernel_version``
  at 0x20E, plus 0x200, is the offset of a NUL-terminated version string
  whose first word is the release (``6.1.0-50-amd64 (debian-kernel@...) #1
  SMP ...``). ``setup_sects`` (0x1F1, 0 meaning 4) sectors of setup code
  follow the boot sector; the protected-mode code starts at
  ``(setup_sects + 1) * 512``. From protocol 2.08 (0x206) ``payload_offset``
  (0x248, relative to the protected-mode code) and ``payload_length``
  (0x24C) locate the compressed kernel, an ELF ``vmlinux`` whose compression
  is told by its magic. The kernel's build appends the decompressed size
  (4 bytes) to every payload but a gzip one.
* an ELF ``vmlinux``, plain or compressed (``vmlinux.gz``, as the old
  xenlinux PV kernels ship, or bzip2, xz, lzma, zstd, lz4): its banner
  ``Linux version RELEASE (...``.
* otherwise the file name, ``vmlinuz-RELEASE`` or ``vmlinux-RELEASE``
  (of the symlink's target first when the path is a symlink).

Compression magics, as the kernel's ``lib/decompress.c`` knows them: gzip
``1f 8b``, bzip2 ``BZh``, xz ``fd 37 7a 58 5a 00``, lzma ``5d 00 00``, lz4
(the legacy frame the kernel uses) ``02 21 4c 18``, zstd ``28 b5 2f fd``,
lzo ``89 4c 5a 4f`` (recognised, not read). gzip, bzip2, xz and lzma are
read with the standard library; zstd and lz4 with the ``zstd`` and ``lz4``
commands, writing to a temporary file under ``prlimit --fsize``. Nothing
decompresses to more than :data:`MAX_DECOMPRESSED` bytes.

The kernel's configuration is ``config-RELEASE`` beside the image (beside
the symlink and beside its target), or the one embedded with
``CONFIG_IKCONFIG``: ``IKCFG_ST``, a gzip stream of ``.config``,
``IKCFG_ED`` in the decompressed kernel. Its lines are ``CONFIG_X=y``,
``=m``, ``="string"``, ``=number`` and ``# CONFIG_X is not set``.

The verdict (Kconfig and ``Documentation/admin-guide/nfs/nfsroot.rst``):

* Without an initramfs the kernel mounts the root itself: it needs
  ``CONFIG_ROOT_NFS=y``, which depends on ``CONFIG_NFS_FS=y`` and
  ``CONFIG_IP_PNP=y``, plus ``CONFIG_IP_PNP_DHCP=y`` for ``ip=dhcp`` and the
  Xen network frontend built in (``CONFIG_XEN_NETDEV_FRONTEND=y``). The
  Debian 12 kernel has ``CONFIG_NFS_FS=m`` and no ``CONFIG_IP_PNP``: it
  boots from NFS only with an initramfs.
* With an initramfs, the initramfs mounts the root: it needs an NFS boot
  script (initramfs-tools ``scripts/nfs``, dracut's ``sbin/nfsroot`` or its
  ``parse-nfsroot.sh`` cmdline hook) and the ``nfs`` and ``xen-netfront``
  modules (``lib/modules/RELEASE/.../nfs.ko[.gz|.xz|.zst]``) unless the
  kernel has them built in.
* Either way the kernel must boot as the guest type: ``CONFIG_XEN_PV=y``
  for ``pv`` (or, in kernels older than that option, such as the 2.6.18
  xenlinux ones, ``CONFIG_XEN=y``), ``CONFIG_XEN_PVH=y`` for ``pvh``.

An initramfs is a sequence of cpio "newc" archives (magic ``070701`` or
``070702``, 110-byte headers of hexadecimal fields, name and data each
padded to 4 bytes, ending with ``TRAILER!!!``), zeros between them; often an
uncompressed early archive (CPU microcode) then the compressed main one.
When Python cannot read an image, ``lsinitramfs`` (initramfs-tools) or
``lsinitrd`` (dracut) lists it, if installed. Only names are read.

A check that cannot be made is not a failure: with no configuration found,
or an initramfs that cannot be read, the result says ``checked: False`` and
why; it is ``ok: False`` only when something found is missing.
"""

import bz2
import logging
import lzma
import mmap
import os
import re
import signal
import stat
import struct
import tempfile
import zlib

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "guest_kernel"

__all__ = [
    "check",
    "verdict",
    "kernel_version",
    "kernel_config",
    "setup_header",
    "parse_config",
    "ramdisk_files",
]

GUEST_TYPES = ("pv", "pvh")
# The most any image, kernel payload or initramfs, may decompress to.
MAX_DECOMPRESSED = 512 * 1024 * 1024
# The most a kernel config (a file or the embedded one) may be.
MAX_CONFIG = 16 * 1024 * 1024
TOOL_TIMEOUT = 300
_LZMA_MEMORY = 256 * 1024 * 1024
EMBEDDED_CONFIG = "embedded IKCONFIG"

# Linux/x86 boot protocol: setup header fields.
_SETUP_SECTS = 0x1F1
_HEADER_MAGIC = 0x202
_PROTOCOL = 0x206
_KERNEL_VERSION = 0x20E
_PAYLOAD_OFFSET = 0x248
_HEADER_END = 0x250
_PAYLOAD_PROTOCOL = 0x0208
_SECTOR = 512
_VERSION_MAX = 256

_ELF_MAGIC = b"\x7fELF"
_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x89LZO", "lzo"),
)
_TOOL_COMPRESSIONS = ("zstd", "lz4")

_RELEASE_RE = re.compile(r"^[0-9][0-9A-Za-z._+~-]*$")
_BANNER_RE = re.compile(rb"Linux version ([0-9][0-9A-Za-z._+~-]*) \(")
_FILE_NAME_RE = re.compile(r"^vmlinu[xz]-(.+?)(?:\.(?:gz|bz2|xz|lzma|zst|lz4))?$")
_IKCONFIG_MAGIC = b"IKCFG_ST"

_SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
_HEX_RE = re.compile(r"^-?0[xX][0-9A-Fa-f]+$")
_DECIMAL_RE = re.compile(r"^-?[0-9]+$")

_CPIO_MAGICS = (b"070701", b"070702")
_CPIO_HEADER = 110
_CPIO_TRAILER = "TRAILER!!!"
_NOT_ZERO = re.compile(rb"[^\x00]")
_LSINITRD_ENTRY = re.compile(r"^[-dlcbps][-rwxsStT]{9}\S*\s")

_INITRAMFS_TOOLS_SCRIPT = "scripts/nfs"
_DRACUT_NFS_RE = re.compile(
    r"^(?:(?:usr/)?s?bin/nfsroot"
    r"|(?:usr/lib|var/lib|lib)/dracut/hooks/cmdline/[0-9]*-?parse-nfsroot\.sh)$"
)
_MODULE_RE = re.compile(
    r"^(?:usr/)?lib/modules/([^/]+)/(?:.*/)?(nfs|xen[-_]netfront)\.ko(?:\.(?:gz|xz|zst))?$"
)
# Kernel module -> the option that builds it in.
_MODULES = (
    ("nfs", "CONFIG_NFS_FS", "the guest cannot mount NFS"),
    ("xen-netfront", "CONFIG_XEN_NETDEV_FRONTEND", "the guest has no network interface"),
)
# What a kernel needs to mount its root without an initramfs.
_ROOT_NFS_OPTIONS = (
    ("CONFIG_ROOT_NFS", "this kernel cannot mount its root over NFS without an initramfs"),
    ("CONFIG_NFS_FS", "the root over NFS without an initramfs needs the NFS client built in"),
    ("CONFIG_IP_PNP", "the kernel cannot configure its network (ip=) without an initramfs"),
)
_DHCP_OPTION = (
    "CONFIG_IP_PNP_DHCP",
    "the kernel cannot get its address by DHCP (ip=dhcp) without an initramfs",
)
_NETFRONT_OPTION = (
    "CONFIG_XEN_NETDEV_FRONTEND",
    "the guest's network interface (xen-netfront) must be built in without an initramfs",
)


def __virtual__():
    return __virtualname__


class ImageError(CommandExecutionError):
    """A kernel or initramfs image that cannot be read (format, compression, tool)."""


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _regular_file(field, path):
    """Return path, or raise naming the field and the path."""
    if not isinstance(path, str) or not path:
        raise SaltInvocationError(f"{field}: {path!r} is not a file path")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CommandExecutionError(f"{field} {path} does not exist") from None
    except OSError as err:
        raise CommandExecutionError(f"{field} {path} cannot be read: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        raise CommandExecutionError(f"{field} {path} is not a regular file")
    return path


def _read_bounded(path, limit, what):
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"{what} is larger than {_size(limit)}")
    return data


def _size(limit):
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


def _compression(magic):
    """The compression whose magic starts magic, or None."""
    for prefix, name in _COMPRESSIONS:
        if magic.startswith(prefix):
            return name
    return None


# ---------------------------------------------------------------------------
# Decompression (bounded)
# ---------------------------------------------------------------------------


def _decompressor(compression):
    if compression == "gzip":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    kind = lzma.FORMAT_XZ if compression == "xz" else lzma.FORMAT_ALONE
    # The header sets the dictionary size (up to 4 GiB); kernels use 64 MiB at most.
    return lzma.LZMADecompressor(format=kind, memlimit=_LZMA_MEMORY)


def _inflate(stream, compression, limit, what):
    """Decompress the stream at the start of stream: (data, bytes consumed)."""
    decompressor = _decompressor(compression)
    try:
        # One call: short of limit + 1 bytes, the stream has ended or is cut short.
        output = decompressor.decompress(stream, limit + 1)
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as err:
        raise ImageError(f"{what}: its {compression} data cannot be decompressed ({err})") from None
    if len(output) > limit:
        raise ImageError(f"{what} decompresses to more than {_size(limit)}")
    if not decompressor.eof:
        raise ImageError(f"{what}: its {compression} data ends before the end of its stream")
    return output, len(stream) - len(decompressor.unused_data)


def _tool_command(compression, source, target):
    # --no-sparse: zeros are written, so the file's size is what was decompressed.
    if compression == "zstd":
        return ["zstd", "-d", "-q", "-f", "--no-sparse", "-o", target, source]
    return ["lz4", "-d", "-q", "-f", "--no-sparse", source, target]


def _run_tool(compression, stream, limit, what):
    """Decompress stream (all of it) with the zstd or lz4 command."""
    if not salt.utils.path.which(compression):
        raise ImageError(
            f"{what} is {compression}-compressed and the {compression} command is not installed"
        )
    with tempfile.TemporaryDirectory(prefix="guest_kernel.") as work:
        source, target = os.path.join(work, "image"), os.path.join(work, "decompressed")
        with open(source, "wb") as handle:
            handle.write(stream)
        command = _tool_command(compression, source, target)
        prlimit = salt.utils.path.which("prlimit")
        if prlimit:
            command = [prlimit, f"--fsize={limit + 1}", "--", *command]
        ret = __salt__["cmd.run_all"](
            command, python_shell=False, ignore_retcode=True, timeout=TOOL_TIMEOUT
        )
        size = os.path.getsize(target) if os.path.exists(target) else 0
        # prlimit's file size limit stops the command with SIGXFSZ.
        if size > limit or ret["retcode"] in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            raise ImageError(f"{what} decompresses to more than {_size(limit)}")
        if ret["retcode"] != 0:
            message = (ret.get("stderr") or ret.get("stdout") or "").strip() or "no message"
            raise ImageError(f"{what}: {compression} -d failed (exit {ret['retcode']}): {message}")
        with open(target, "rb") as handle:
            return bytearray(handle.read(limit + 1))


def _decompress(stream, compression, what):
    """(data, bytes consumed) of the compressed stream at the start of stream.

    A stream read by a command is taken to run to the end of stream.
    """
    if compression in _TOOL_COMPRESSIONS:
        return _run_tool(compression, stream, MAX_DECOMPRESSED, what), len(stream)
    if compression is None or compression == "lzo":
        kind = "lzo-compressed" if compression else "not in a known compression"
        raise ImageError(f"{what} is {kind}: it cannot be read here")
    return _inflate(stream, compression, MAX_DECOMPRESSED, what)


# ---------------------------------------------------------------------------
# The kernel image
# ---------------------------------------------------------------------------


def _parse_setup_header(header):
    """The setup header's fields from the first 0x250 bytes, or None if not a bzImage."""
    if len(header) < _KERNEL_VERSION + 2 or header[_HEADER_MAGIC : _HEADER_MAGIC + 4] != b"HdrS":
        return None
    protocol = struct.unpack_from("<H", header, _PROTOCOL)[0]
    setup_sects = header[_SETUP_SECTS] or 4
    kernel_version = struct.unpack_from("<H", header, _KERNEL_VERSION)[0]
    fields = {
        "protocol": f"{protocol >> 8}.{protocol & 0xFF:02d}",
        "setup_sects": setup_sects,
        "protected_mode_offset": (setup_sects + 1) * _SECTOR,
        "version_offset": kernel_version + 0x200 if kernel_version else None,
        "payload_offset": None,
        "payload_length": None,
    }
    if protocol >= _PAYLOAD_PROTOCOL and len(header) >= _HEADER_END:
        offset, length = struct.unpack_from("<II", header, _PAYLOAD_OFFSET)
        if length:
            fields["payload_offset"] = fields["protected_mode_offset"] + offset
            fields["payload_length"] = length
    return fields


def _parse_version_string(raw):
    """(version string, release) of the NUL-terminated bytes raw."""
    text = raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    words = text.split()
    release = words[0] if words and _RELEASE_RE.match(words[0]) else None
    return text or None, release


def _read_setup_header(handle):
    """(setup header fields or None, the first bytes) of the open kernel file."""
    head = handle.read(_HEADER_END)
    fields = _parse_setup_header(head)
    if fields is None:
        return None, head
    fields["version_string"] = fields["release"] = None
    offset = fields["version_offset"]
    # The version string lives in the setup code, before the protected-mode code.
    if offset is not None and offset < fields["protected_mode_offset"]:
        handle.seek(offset)
        raw = handle.read(min(_VERSION_MAX, fields["protected_mode_offset"] - offset))
        fields["version_string"], fields["release"] = _parse_version_string(raw)
    return fields, head


def _release_from_name(path):
    """The release in the file name of path's target, else of path; None if neither."""
    for name in (os.path.basename(os.path.realpath(path)), os.path.basename(path)):
        match = _FILE_NAME_RE.match(name)
        if match and _RELEASE_RE.match(match.group(1)):
            return match.group(1)
    return None


def _banner_release(body):
    match = _BANNER_RE.search(body)
    return match.group(1).decode("ascii") if match else None


def _embedded_config(body, what):
    """The text of the IKCONFIG block in the decompressed kernel body, or None."""
    start = body.find(_IKCONFIG_MAGIC + b"\x1f\x8b")
    if start < 0:
        return None
    stream = memoryview(body)[start + len(_IKCONFIG_MAGIC) :]
    try:
        text, _ = _inflate(stream, "gzip", MAX_CONFIG, f"{what}: the embedded IKCONFIG")
    finally:
        stream.release()
    return text.decode("utf-8", "replace")


class _KernelImage:
    """A kernel file, its setup header read at once, its body decompressed on demand."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as handle:
            self.header, head = _read_setup_header(handle)
        self.format = self._format(head[:8])
        self._body = None
        self._map = None
        self.body_error = None

    def _format(self, magic):
        if self.header is not None:
            return "bzImage"
        if magic.startswith(_ELF_MAGIC):
            return "ELF"
        compression = _compression(magic)
        return f"{compression}-compressed" if compression else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._map is not None:
            self._map.close()

    def body(self):
        """The decompressed kernel (an ELF vmlinux), or None; why not in body_error."""
        if self._body is None and self.body_error is None:
            try:
                self._body = self._read_body()
            except (ImageError, OSError) as err:
                self.body_error = str(err)
        return self._body

    def _read_body(self):
        if self.format == "ELF":
            with open(self.path, "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            return self._map
        if self.format == "bzImage":
            return self._payload()
        if self.format is None:
            raise ImageError(f"{self.path} is neither a bzImage, an ELF file nor compressed")
        data = _read_bounded(self.path, MAX_DECOMPRESSED, self.path)
        body, _ = _decompress(data, _compression(data[:8]), self.path)
        if not body.startswith(_ELF_MAGIC):
            raise ImageError(f"{self.path} decompresses to something other than an ELF kernel")
        return body

    def _payload(self):
        offset, length = self.header["payload_offset"], self.header["payload_length"]
        what = f"the kernel payload of {self.path}"
        if offset is None:
            raise ImageError(f"{self.path}: boot protocol {self.header['protocol']} "
                             "has no payload fields (2.08 or later needed)")
        if length > MAX_DECOMPRESSED:
            raise ImageError(f"{what} is larger than {_size(MAX_DECOMPRESSED)}")
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            payload = handle.read(length)
        if len(payload) < length:
            raise ImageError(f"{what} is cut short: {len(payload)} of {length} bytes")
        compression = _compression(payload[:8])
        if compression in _TOOL_COMPRESSIONS:
            payload = payload[:-4]  # the decompressed size the build appends
        body, _ = _decompress(payload, compression, what)
        return body

    def release(self):
        """(release, where it came from)."""
        if self.header is not None and self.header["release"]:
            return self.header["release"], "setup header"
        if self.format is not None:
            body = self.body()
            release = _banner_release(body) if body is not None else None
            if release:
                return release, "banner"
        release = _release_from_name(self.path)
        return (release, "file name") if release else (None, None)


# ---------------------------------------------------------------------------
# The kernel's configuration
# ---------------------------------------------------------------------------


def _config_value(raw):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    if _HEX_RE.match(raw):
        return int(raw, 16)
    if _DECIMAL_RE.match(raw):
        return int(raw, 10)
    return raw


def _config_files(path, release):
    """config-RELEASE beside the kernel and beside its target (a symlink's)."""
    folders = [os.path.dirname(os.path.abspath(path))]
    target = os.path.dirname(os.path.realpath(path))
    if target not in folders:
        folders.append(target)
    return [os.path.join(folder, f"config-{release}") for folder in folders]


def _beside(path, release):
    """(config file, options) of the first config-RELEASE found, or (None, None)."""
    for candidate in _config_files(path, release):
        if os.path.isfile(candidate):
            text = _read_bounded(candidate, MAX_CONFIG, candidate)
            return candidate, parse_config(text.decode("utf-8", "replace"))
    return None, None


def _embedded(image):
    """(options, why not) from the image's IKCONFIG."""
    body = image.body()
    if body is None:
        return None, f"its embedded IKCONFIG could not be read ({image.body_error})"
    try:
        text = _embedded_config(body, image.path)
    except ImageError as err:
        return None, f"its embedded IKCONFIG could not be read ({err})"
    if text is None:
        return None, "no embedded IKCONFIG"
    return parse_config(text), None


def _find_config(image, release):
    """(config, options, reason): config is a path, EMBEDDED_CONFIG or None (reason says why)."""
    if release:
        config, options = _beside(image.path, release)
        if config:
            return config, options, None
        folders = sorted({os.path.dirname(c) for c in _config_files(image.path, release)})
        missing = f"no config-{release} beside it (in {' or '.join(folders)})"
    else:
        missing = "its release is unknown (no version in the image or its file name)"
    options, why_not = _embedded(image)
    if options is not None:
        return EMBEDDED_CONFIG, options, None
    return None, None, f"{missing} and {why_not}"


# ---------------------------------------------------------------------------
# The initramfs
# ---------------------------------------------------------------------------


def _cpio_field(data, pos, index, what):
    start = pos + 6 + 8 * index
    try:
        return int(bytes(data[start : start + 8]), 16)
    except ValueError:
        raise ImageError(f"{what}: bad cpio header at offset {pos}") from None


def _align4(pos):
    return (pos + 3) & ~3


def _cpio_archive(data, pos, what):
    """(names, end) of the cpio newc archive at pos, up to its TRAILER!!!."""
    names = []
    while True:
        if pos + _CPIO_HEADER > len(data) or bytes(data[pos : pos + 6]) not in _CPIO_MAGICS:
            raise ImageError(f"{what}: cpio archive cut short or bad header at offset {pos}")
        file_size = _cpio_field(data, pos, 6, what)
        name_size = _cpio_field(data, pos, 11, what)
        name_end = pos + _CPIO_HEADER + name_size
        end = _align4(_align4(name_end) + file_size)
        if name_size == 0 or end > _align4(len(data)):
            raise ImageError(f"{what}: cpio entry at offset {pos} runs past the end")
        raw = bytes(data[pos + _CPIO_HEADER : name_end - 1])
        name = raw.decode("utf-8", "surrogateescape")
        if name == _CPIO_TRAILER:
            return names, end
        names.append(_normalise(name))
        pos = end


def _normalise(name):
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return name


def _initramfs_names(data, what, compressed=True):
    """Names in a sequence of cpio archives (compressed ones if compressed) and zeros."""
    names = []
    pos = 0
    view = memoryview(data)
    while True:
        found = _NOT_ZERO.search(data, pos)
        if found is None:
            return names
        pos = found.start()
        if bytes(view[pos : pos + 6]) in _CPIO_MAGICS:
            entries, pos = _cpio_archive(view, pos, what)
            names.extend(entries)
            continue
        compression = _compression(bytes(view[pos : pos + 8]))
        if not compressed or compression is None:
            raise ImageError(f"{what}: neither a cpio archive nor compressed data at offset {pos}")
        inner, used = _decompress(view[pos:], compression, f"{what} (archive at offset {pos})")
        names.extend(_initramfs_names(inner, what, compressed=False))
        pos += used


def _listing_tool():
    for tool in ("lsinitramfs", "lsinitrd"):
        path = salt.utils.path.which(tool)
        if path:
            return tool, path
    return None, None


def _listing_name(tool, line):
    if tool == "lsinitrd":
        if not _LSINITRD_ENTRY.match(line):
            return None
        fields = line.split(None, 8)
        line = fields[8].split(" -> ", 1)[0] if len(fields) == 9 else ""
    name = _normalise(line.strip())
    return name if name and name != "." else None


def _parse_listing(tool, text):
    """Names from ``lsinitramfs`` (one per line) or ``lsinitrd`` (``ls -l`` lines)."""
    names = (_listing_name(tool, line) for line in text.splitlines())
    return [name for name in names if name]


def _list_with_tool(path, error):
    """Names from lsinitramfs/lsinitrd when installed; raise error otherwise."""
    tool, binary = _listing_tool()
    if tool is None:
        raise ImageError(f"{error} (and neither lsinitramfs nor lsinitrd is installed)")
    ret = __salt__["cmd.run_all"](
        [binary, path], python_shell=False, ignore_retcode=True, timeout=TOOL_TIMEOUT
    )
    if ret["retcode"] != 0:
        message = (ret.get("stderr") or "").strip() or "no message"
        raise ImageError(f"{error}; {tool} {path} failed (exit {ret['retcode']}): {message}")
    return _parse_listing(tool, ret.get("stdout") or "")


def _ramdisk_names(path):
    try:
        data = _read_bounded(path, MAX_DECOMPRESSED, path)
        return _initramfs_names(data, path)
    except ImageError as err:
        return _list_with_tool(path, str(err))


# ---------------------------------------------------------------------------
# The configuration file format
# ---------------------------------------------------------------------------


def parse_config(text):
    """
    Parse a kernel configuration (``.config``, ``/boot/config-RELEASE``).

    Returns ``{"CONFIG_X": value}``: ``"y"``, ``"m"``, ``"n"`` for
    ``# CONFIG_X is not set``, a string without its quotes for
    ``CONFIG_X="..."``, an integer for a decimal or ``0x`` number. Other
    lines (comments, blanks) are ignored.

    CLI Example:

    .. code-block:: bash

        salt-call guest_kernel.parse_config "$(cat /boot/config-6.1.0-50-amd64)"
    """
    options = {}
    for raw in text.splitlines():
        line = raw.strip()
        match = _SET_RE.match(line)
        if match:
            options[match.group(1)] = _config_value(match.group(2))
            continue
        match = _UNSET_RE.match(line)
        if match:
            options[match.group(1)] = "n"
    return options


# ---------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------


def _state(options, name):
    value = options.get(name, "n")
    if value == "n":
        return "is not set"
    if value in ("y", "m"):
        return f"is {value}"
    return f"is {value!r}"


def _require(options, config, option, why):
    """(problems, evidence) for one option that must be y."""
    if options.get(option) == "y":
        return [], [f"{option}=y in {config}"]
    return [f"{option} {_state(options, option)} in {config}: {why}"], []


def _guest_support(options, config, guest_type):
    if guest_type == "pvh":
        why = "this kernel cannot boot as a Xen PVH guest"
        return _require(options, config, "CONFIG_XEN_PVH", why)
    if "CONFIG_XEN_PV" not in options and options.get("CONFIG_XEN") == "y":
        # A kernel older than the CONFIG_XEN_PV option (2.6.18 xenlinux, early
        # pvops): its CONFIG_XEN is PV support. Newer ones say "XEN_PV is not set".
        return [], [f"CONFIG_XEN=y in {config} (a kernel older than CONFIG_XEN_PV)"]
    return _require(options, config, "CONFIG_XEN_PV", "this kernel cannot boot as a Xen PV guest")


def _builtin_root(options, config, dhcp):
    problems, evidence = [], []
    wanted = list(_ROOT_NFS_OPTIONS) + ([_DHCP_OPTION] if dhcp else []) + [_NETFRONT_OPTION]
    for option, why in wanted:
        missing, found = _require(options, config, option, why)
        problems += missing
        evidence += found
    return problems, evidence


def _boot_script(files):
    """What in the names (in archive order) mounts an NFS root, or None."""
    if _INITRAMFS_TOOLS_SCRIPT in files:
        return f"initramfs-tools {_INITRAMFS_TOOLS_SCRIPT}"
    for name in files:
        if _DRACUT_NFS_RE.match(name):
            return f"dracut's nfs module ({name})"
    return None


def _modules_in(files):
    """{module: {release: file}} of the nfs and xen-netfront modules in the names."""
    found = {}
    for name in files:
        match = _MODULE_RE.match(name)
        if match:
            module = match.group(2).replace("_", "-")
            found.setdefault(module, {}).setdefault(match.group(1), name)
    return found


def _module_check(module, option, why, facts):
    """(problems, evidence, unknowns) for one kernel module the initramfs must carry."""
    options, config, ramdisk = facts["options"], facts["config"], facts["ramdisk"]
    if options is not None and options.get(option) == "y":
        return [], [f"{option}=y in {config}: no {module} module needed"], []
    releases = facts["modules"].get(module, {})
    release = facts["release"]
    if release in releases or (release is None and releases):
        return [], [f"{releases.get(release) or min(releases.values())} in {ramdisk}"], []
    if releases:
        missing = (
            f"{ramdisk} has the {module} module only for {', '.join(sorted(releases))}, "
            f"not for {release}"
        )
    else:
        missing = f"{ramdisk} has no {module} module"
    if options is None:
        return [], [], [f"{missing}, and whether the kernel has it built in is unknown"]
    return [f"{missing} and {option} {_state(options, option)} in {config}: {why}"], [], []


def _ramdisk_root(kernel, ramdisk):
    """(problems, evidence, unknowns) of an initramfs mounting the root."""
    if ramdisk.get("files") is None:
        return [], [], [f"{ramdisk['path']} was not checked: {ramdisk.get('reason')}"]
    problems, evidence, unknowns = [], [], []
    files = ramdisk["files"]
    script = _boot_script(files)
    if script:
        evidence.append(f"{script} in {ramdisk['path']}")
    else:
        problems.append(
            f"{ramdisk['path']} has no NFS boot script (initramfs-tools scripts/nfs or "
            "dracut's nfs module): it cannot mount an NFS root"
        )
    facts = {
        "options": kernel.get("options"),
        "config": kernel.get("config"),
        "ramdisk": ramdisk["path"],
        "release": kernel.get("version"),
        "modules": _modules_in(files),
    }
    for module, option, why in _MODULES:
        missing, found, unknown = _module_check(module, option, why, facts)
        problems += missing
        evidence += found
        unknowns += unknown
    return problems, evidence, unknowns


def _kernel_root(kernel, ramdisk, dhcp, guest_type):
    """(problems, evidence, unknowns) the kernel's own options decide."""
    options, config = kernel.get("options"), kernel.get("config")
    if options is None:
        name = kernel.get("path") or "the kernel"
        return [], [], [f"{name} was not checked: {kernel.get('reason') or 'no config found'}"]
    problems, evidence = ([], []) if ramdisk is not None else _builtin_root(options, config, dhcp)
    support, support_evidence = _guest_support(options, config, guest_type)
    return problems + support, evidence + support_evidence, []


def _guest_type(guest_type):
    if guest_type not in GUEST_TYPES:
        raise SaltInvocationError(
            f"guest_type: {guest_type!r} is not one of {', '.join(GUEST_TYPES)}"
        )
    return guest_type


def verdict(kernel, ramdisk=None, dhcp=False, guest_type="pv"):
    """
    Decide from facts already read whether a guest can mount its root over NFS.

    kernel
        ``{"path": PATH, "version": RELEASE, "config": where the options
        come from, "options": {...} or None, "reason": why there are no
        options}``; ``options`` as :func:`parse_config` returns them.
    ramdisk
        ``{"path": PATH, "files": [names in the initramfs] or None,
        "reason": why there are no files}``, or ``None`` when the guest
        boots without an initramfs.
    dhcp
        ``True`` when the guest gets its address by DHCP (``ip=dhcp``).
    guest_type
        ``pv`` (default) or ``pvh``.

    Returns ``{"ok": True | False | None, "problems": [...], "evidence":
    [...], "unknowns": [...]}``: ``ok`` is ``False`` when something is
    missing, ``None`` when nothing is missing but something could not be
    told (``unknowns`` says what).

    CLI Example:

    .. code-block:: bash

        salt-call guest_kernel.verdict '{"config": "/boot/config-6.6.0-nfsroot",
            "options": {"CONFIG_ROOT_NFS": "y", "CONFIG_NFS_FS": "y", "CONFIG_IP_PNP": "y",
            "CONFIG_XEN_NETDEV_FRONTEND": "y", "CONFIG_XEN_PV": "y"}}'
    """
    guest_type = _guest_type(guest_type)
    problems, evidence, unknowns = _kernel_root(kernel, ramdisk, dhcp, guest_type)
    if ramdisk is not None:
        more_problems, more_evidence, more_unknowns = _ramdisk_root(kernel, ramdisk)
        problems, evidence = more_problems + problems, more_evidence + evidence
        unknowns += more_unknowns
    if problems:
        ok = False
    else:
        ok = None if unknowns else True
    return {"ok": ok, "problems": problems, "evidence": evidence, "unknowns": unknowns}


# ---------------------------------------------------------------------------
# Reading kernels and initramfs images
# ---------------------------------------------------------------------------


def setup_header(kernel):
    """
    Read the x86 boot protocol setup header of a bzImage kernel.

    Returns ``None`` when the file is not a bzImage (no ``HdrS`` at 0x202),
    else ``{"protocol": "2.15", "setup_sects": N, "protected_mode_offset":
    N, "version_offset": N, "version_string": "...", "release": RELEASE,
    "payload_offset": N, "payload_length": N}``; offsets are from the start
    of the file, ``None`` where the header has no such field. Only the
    header and the version string are read.

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.setup_header /boot/vmlinuz-6.1.0-50-amd64
    """
    with open(_regular_file("kernel", kernel), "rb") as handle:
        return _read_setup_header(handle)[0]


def kernel_version(kernel):
    """
    Tell a kernel's release and where it was read.

    Returns ``{"version": RELEASE or None, "version_source": "setup header"
    | "banner" | "file name" | None, "format": "bzImage" | "ELF" |
    "gzip-compressed" | ... | None}``: the bzImage's version string, else
    the ``Linux version RELEASE`` banner of the decompressed kernel, else
    the file name (``vmlinuz-RELEASE``, the symlink's target first).

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.kernel_version /boot/vmlinuz-6.1.0-50-amd64
    """
    with _KernelImage(_regular_file("kernel", kernel)) as image:
        release, source = image.release()
        return {"version": release, "version_source": source, "format": image.format}


def kernel_config(kernel):
    """
    Find and read a kernel's configuration.

    ``config-RELEASE`` beside the kernel (and beside a symlink's target),
    else the configuration embedded in the image (``CONFIG_IKCONFIG``).

    Returns ``{"version", "version_source", "config": path |
    "embedded IKCONFIG" | None, "options": {...} | None, "reason": why
    nothing was found | None}``.

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.kernel_config /boot/vmlinuz-6.1.0-50-amd64
    """
    with _KernelImage(_regular_file("kernel", kernel)) as image:
        release, source = image.release()
        config, options, reason = _find_config(image, release)
    return {
        "version": release,
        "version_source": source,
        "config": config,
        "options": options,
        "reason": reason,
    }


def ramdisk_files(ramdisk):
    """
    List the names in an initramfs image (its cpio archives, early and main).

    gzip, bzip2, xz and lzma are read in Python, zstd and lz4 with their
    commands; failing that ``lsinitramfs`` or ``lsinitrd`` lists the image.
    Raises an error saying why when the image cannot be read.

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.ramdisk_files /boot/initrd.img-6.1.0-50-amd64
    """
    return _ramdisk_names(_regular_file("ramdisk", ramdisk))


def _reason(result, unknowns):
    if result["ok"] is False:
        return "; ".join(result["problems"])
    if result["ok"] is None:
        return "; ".join(unknowns)
    how = f"with the initramfs {result['ramdisk']}" if result["ramdisk"] else "by itself"
    return f"{result['kernel']} ({result['version']}) can mount its root over NFS {how}"


def _kernel_facts(kernel):
    try:
        with _KernelImage(kernel) as image:
            release, source = image.release()
            config, options, reason = _find_config(image, release)
    except OSError as err:
        raise CommandExecutionError(f"kernel {kernel} cannot be read: {err.strerror}") from None
    return {
        "path": kernel,
        "version": release,
        "version_source": source,
        "config": config,
        "options": options,
        "reason": reason,
    }


def _ramdisk_facts(ramdisk):
    try:
        return {"path": ramdisk, "files": _ramdisk_names(ramdisk), "reason": None}
    except ImageError as err:
        return {"path": ramdisk, "files": None, "reason": str(err)}
    except OSError as err:
        raise CommandExecutionError(f"ramdisk {ramdisk} cannot be read: {err.strerror}") from None


def check(kernel, ramdisk=None, dhcp=False, guest_type="pv"):
    """
    Check, before booting, that a guest's kernel (and initramfs) can mount its root over NFS.

    kernel
        The kernel file on the dom0 (bzImage, ELF vmlinux, compressed or not).
    ramdisk
        The guest's initramfs, if it has one.
    dhcp
        ``True`` when the guest gets its address by DHCP.
    guest_type
        ``pv`` (default) or ``pvh``.

    Returns ``{"checked", "ok", "kernel", "version", "version_source",
    "config", "ramdisk", "problems", "evidence", "reason"}``. ``ok`` is
    ``False`` with a problem per missing option or file, naming the file
    that says so; ``checked`` is ``False`` and ``ok`` ``None`` when nothing
    is missing but the kernel's configuration was not found or the
    initramfs cannot be read, ``reason`` saying why. A kernel or initramfs
    that does not exist or is not a regular file is an error.

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.check /boot/vmlinuz-6.1.0-50-amd64 \\
            ramdisk=/boot/initrd.img-6.1.0-50-amd64
        salt '*' guest_kernel.check /boot/vmlinuz-2.6.18-53.1.14.el5.myxen dhcp=True
    """
    guest_type = _guest_type(guest_type)
    if not isinstance(dhcp, bool):
        raise SaltInvocationError(f"dhcp: {dhcp!r} is not true or false")
    _regular_file("kernel", kernel)
    if ramdisk is not None:
        _regular_file("ramdisk", ramdisk)
    kernel_facts = _kernel_facts(kernel)
    ramdisk_facts = _ramdisk_facts(ramdisk) if ramdisk is not None else None
    found = verdict(kernel_facts, ramdisk_facts, dhcp, guest_type)
    result = {
        "checked": found["ok"] is not None,
        "ok": found["ok"],
        "kernel": kernel,
        "version": kernel_facts["version"],
        "version_source": kernel_facts["version_source"],
        "config": kernel_facts["config"],
        "ramdisk": ramdisk,
        "problems": found["problems"],
        "evidence": found["evidence"],
    }
    result["reason"] = _reason(result, found["unknowns"])
    return result
