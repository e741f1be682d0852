"""
A guest kernel's image: its format, its release, its decompressed body and
the configuration embedded in it.

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

A kernel built with ``CONFIG_IKCONFIG`` carries its ``.config``:
``IKCFG_ST``, a gzip stream, ``IKCFG_ED`` in the decompressed kernel.
"""

import mmap
import os
import re
import struct

from xen_nfsroot_lib import compression
from xen_nfsroot_lib.compression import ImageError

# The most a kernel config (a file or the embedded one) may be.
MAX_CONFIG = 16 * 1024 * 1024

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
_RELEASE_RE = re.compile(r"^[0-9][0-9A-Za-z._+~-]*\Z")
_BANNER_RE = re.compile(rb"Linux version ([0-9][0-9A-Za-z._+~-]*) \(")
_FILE_NAME_RE = re.compile(r"^vmlinu[xz]-(.+?)(?:\.(?:gz|bz2|xz|lzma|zst|lz4))?$")
_IKCONFIG_MAGIC = b"IKCFG_ST"


# ---------------------------------------------------------------------------
# The setup header
# ---------------------------------------------------------------------------


def parse_setup_header(header):
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


def parse_version_string(raw):
    """(version string, release) of the NUL-terminated bytes raw."""
    text = raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    words = text.split()
    release = words[0] if words and _RELEASE_RE.match(words[0]) else None
    return text or None, release


def _read_setup_header(handle):
    """(setup header fields or None, the first bytes) of the open kernel file."""
    head = handle.read(_HEADER_END)
    fields = parse_setup_header(head)
    if fields is None:
        return None, head
    fields["version_string"] = fields["release"] = None
    offset = fields["version_offset"]
    # The version string lives in the setup code, before the protected-mode code.
    if offset is not None and offset < fields["protected_mode_offset"]:
        handle.seek(offset)
        raw = handle.read(min(_VERSION_MAX, fields["protected_mode_offset"] - offset))
        fields["version_string"], fields["release"] = parse_version_string(raw)
    return fields, head


def setup_header(path):
    """
    The x86 boot protocol setup header of a bzImage kernel.

    Returns ``None`` when the file is not a bzImage (no ``HdrS`` at 0x202),
    else ``{"protocol": "2.15", "setup_sects": N, "protected_mode_offset":
    N, "version_offset": N, "version_string": "...", "release": RELEASE,
    "payload_offset": N, "payload_length": N}``; offsets are from the start
    of the file, ``None`` where the header has no such field. Only the
    header and the version string are read.
    """
    with open(path, "rb") as handle:
        return _read_setup_header(handle)[0]


# ---------------------------------------------------------------------------
# The release, the body, the embedded configuration
# ---------------------------------------------------------------------------


def release_from_name(path):
    """The release in the file name of path's target, else of path; None if neither."""
    for name in (os.path.basename(os.path.realpath(path)), os.path.basename(path)):
        match = _FILE_NAME_RE.match(name)
        if match and _RELEASE_RE.match(match.group(1)):
            return match.group(1)
    return None


def banner_release(body):
    """The release in the ``Linux version RELEASE (`` banner of a decompressed kernel."""
    match = _BANNER_RE.search(body)
    return match.group(1).decode("ascii") if match else None


def embedded_config(body, what):
    """The text of the IKCONFIG block in the decompressed kernel body, or None."""
    start = body.find(_IKCONFIG_MAGIC + b"\x1f\x8b")
    if start < 0:
        return None
    stream = memoryview(body)[start + len(_IKCONFIG_MAGIC) :]
    try:
        text, _ = compression.inflate(stream, "gzip", MAX_CONFIG,
                                      f"{what}: the embedded IKCONFIG")
    finally:
        stream.release()
    return text.decode("utf-8", "replace")


class KernelImage:
    """A kernel file, its setup header read at once, its body decompressed on
    demand (with runner's commands for zstd and lz4). A context manager."""

    def __init__(self, path, runner):
        self.path = path
        self.runner = runner
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
        found = compression.compression_of(magic)
        return f"{found}-compressed" if found else None

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
        data = compression.read_bounded(self.path, compression.MAX_DECOMPRESSED, self.path)
        body, _ = compression.decompress(data, compression.compression_of(data[:8]), self.path,
                                         self.runner)
        if not body.startswith(_ELF_MAGIC):
            raise ImageError(f"{self.path} decompresses to something other than an ELF kernel")
        return body

    def _payload(self):
        offset, length = self.header["payload_offset"], self.header["payload_length"]
        what = f"the kernel payload of {self.path}"
        if offset is None:
            raise ImageError(f"{self.path}: boot protocol {self.header['protocol']} "
                             "has no payload fields (2.08 or later needed)")
        if length > compression.MAX_DECOMPRESSED:
            raise ImageError(
                f"{what} is larger than {compression.size_text(compression.MAX_DECOMPRESSED)}")
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            payload = handle.read(length)
        if len(payload) < length:
            raise ImageError(f"{what} is cut short: {len(payload)} of {length} bytes")
        found = compression.compression_of(payload[:8])
        if found in compression.TOOL_COMPRESSIONS:
            payload = payload[:-4]  # the decompressed size the build appends
        body, _ = compression.decompress(payload, found, what, self.runner)
        return body

    def release(self):
        """(release, where it came from)."""
        if self.header is not None and self.header["release"]:
            return self.header["release"], "setup header"
        if self.format is not None:
            body = self.body()
            release = banner_release(body) if body is not None else None
            if release:
                return release, "banner"
        release = release_from_name(self.path)
        return (release, "file name") if release else (None, None)
