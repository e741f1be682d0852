"""
The names in an initramfs image.

An initramfs is a sequence of cpio "newc" archives (magic ``070701`` or
``070702``, 110-byte headers of hexadecimal fields, name and data each
padded to 4 bytes, ending with ``TRAILER!!!``), zeros between them; often an
uncompressed early archive (CPU microcode) then the compressed main one.
When Python cannot read an image, ``lsinitramfs`` (initramfs-tools) or
``lsinitrd`` (dracut) lists it, if installed. Only names are read.
"""

import re

from xen_nfsroot_lib import compression
from xen_nfsroot_lib.compression import ImageError

_CPIO_MAGICS = (b"070701", b"070702")
_CPIO_HEADER = 110
_CPIO_TRAILER = "TRAILER!!!"
_NOT_ZERO = re.compile(rb"[^\x00]")
_LSINITRD_ENTRY = re.compile(r"^[-dlcbps][-rwxsStT]{9}\S*\s")
#: The commands that list an image Python cannot read, in the order tried.
LISTING_TOOLS = ("lsinitramfs", "lsinitrd")


# ---------------------------------------------------------------------------
# cpio archives
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


def names(data, what, runner, compressed=True):
    """Names in a sequence of cpio archives (compressed ones if compressed)
    and zeros: the bytes of an initramfs image; what names it in errors."""
    found_names = []
    pos = 0
    view = memoryview(data)
    while True:
        found = _NOT_ZERO.search(data, pos)
        if found is None:
            return found_names
        pos = found.start()
        if bytes(view[pos : pos + 6]) in _CPIO_MAGICS:
            entries, pos = _cpio_archive(view, pos, what)
            found_names.extend(entries)
            continue
        kind = compression.compression_of(bytes(view[pos : pos + 8]))
        if not compressed or kind is None:
            raise ImageError(f"{what}: neither a cpio archive nor compressed data at offset {pos}")
        inner, used = compression.decompress(view[pos:], kind,
                                             f"{what} (archive at offset {pos})", runner)
        found_names.extend(names(inner, what, runner, compressed=False))
        pos += used


# ---------------------------------------------------------------------------
# lsinitramfs and lsinitrd
# ---------------------------------------------------------------------------


def _listing_name(tool, line):
    if tool == "lsinitrd":
        if not _LSINITRD_ENTRY.match(line):
            return None
        fields = line.split(None, 8)
        line = fields[8].split(" -> ", 1)[0] if len(fields) == 9 else ""
    name = _normalise(line.strip())
    return name if name and name != "." else None


def parse_listing(tool, text):
    """Names from ``lsinitramfs`` (one per line) or ``lsinitrd`` (``ls -l`` lines)."""
    listed = (_listing_name(tool, line) for line in text.splitlines())
    return [name for name in listed if name]


def _list_with_tool(path, error, runner):
    """Names from lsinitramfs/lsinitrd when installed; raise error otherwise."""
    for tool in LISTING_TOOLS:
        binary = runner.which(tool)
        if binary:
            break
    else:
        raise ImageError(f"{error} (and neither lsinitramfs nor lsinitrd is installed)")
    ret = runner.run([binary, path], python_shell=False, ignore_retcode=True,
                     timeout=compression.TOOL_TIMEOUT)
    if ret["retcode"] != 0:
        message = (ret.get("stderr") or "").strip() or "no message"
        raise ImageError(f"{error}; {tool} {path} failed (exit {ret['retcode']}): {message}")
    return parse_listing(tool, ret.get("stdout") or "")


def ramdisk_files(path, runner):
    """
    The names in the initramfs image at path (its cpio archives, early and
    main): gzip, bzip2, xz and lzma are read in Python, zstd and lz4 with
    their commands; failing that ``lsinitramfs`` or ``lsinitrd`` lists the
    image. Raises :class:`ImageError` saying why when it cannot be read.
    """
    try:
        data = compression.read_bounded(path, compression.MAX_DECOMPRESSED, path)
        return names(data, path, runner)
    except ImageError as err:
        return _list_with_tool(path, str(err), runner)
