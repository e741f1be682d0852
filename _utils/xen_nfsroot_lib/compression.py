"""
The compressions of kernels and initramfs images, read with a bound.

Compression magics, as the kernel's ``lib/decompress.c`` knows them: gzip
``1f 8b``, bzip2 ``BZh``, xz ``fd 37 7a 58 5a 00``, lzma ``5d 00 00``, lz4
(the legacy frame the kernel uses) ``02 21 4c 18``, zstd ``28 b5 2f fd``,
lzo ``89 4c 5a 4f`` (recognised, not read). gzip, bzip2, xz and lzma are
read with the standard library; zstd and lz4 with the ``zstd`` and ``lz4``
commands, writing to a temporary file under ``prlimit --fsize``. Nothing
decompresses to more than :data:`MAX_DECOMPRESSED` bytes.

Commands are run through a :class:`Runner`: Salt's ``cmd.run_all`` and
``salt.utils.path.which`` in the ``guest_kernel`` execution module, so a
command runs, is logged and is faked in tests as every other command of
the formula.
"""

import bz2
import lzma
import os
import signal
import tempfile
import zlib
from typing import Callable, NamedTuple

from salt.exceptions import CommandExecutionError

# The most any image, kernel payload or initramfs, may decompress to.
MAX_DECOMPRESSED = 512 * 1024 * 1024
#: Seconds a decompression or listing command may run.
TOOL_TIMEOUT = 300
_LZMA_MEMORY = 256 * 1024 * 1024

COMPRESSIONS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x89LZO", "lzo"),
)
#: The compressions read with their commands.
TOOL_COMPRESSIONS = ("zstd", "lz4")


class ImageError(CommandExecutionError):
    """A kernel or initramfs image that cannot be read (format, compression, tool)."""


class Runner(NamedTuple):
    """How commands are found and run.

    run
        Salt's ``cmd.run_all`` (an argument list, ``python_shell=False``,
        ``ignore_retcode``, ``timeout``), returning ``{"retcode", "stdout",
        "stderr"}``.
    which
        The path of a command, or None when it is not installed
        (``salt.utils.path.which``).
    """

    run: Callable
    which: Callable


def size_text(limit):
    """A limit in words: ``512 MiB`` or ``1000 bytes``."""
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


def read_bounded(path, limit, what):
    """The bytes of the file path, refused when it is larger than limit."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"{what} is larger than {size_text(limit)}")
    return data


def compression_of(magic):
    """The compression whose magic starts magic, or None."""
    for prefix, name in COMPRESSIONS:
        if magic.startswith(prefix):
            return name
    return None


def _decompressor(compression):
    if compression == "gzip":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    kind = lzma.FORMAT_XZ if compression == "xz" else lzma.FORMAT_ALONE
    # The header sets the dictionary size (up to 4 GiB); kernels use 64 MiB at most.
    return lzma.LZMADecompressor(format=kind, memlimit=_LZMA_MEMORY)


def inflate(stream, compression, limit, what):
    """Decompress the gzip, bzip2, xz or lzma stream at the start of stream:
    (data, bytes consumed)."""
    decompressor = _decompressor(compression)
    try:
        # One call: short of limit + 1 bytes, the stream has ended or is cut short.
        output = decompressor.decompress(stream, limit + 1)
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as err:
        raise ImageError(f"{what}: its {compression} data cannot be decompressed ({err})") from None
    if len(output) > limit:
        raise ImageError(f"{what} decompresses to more than {size_text(limit)}")
    if not decompressor.eof:
        raise ImageError(f"{what}: its {compression} data ends before the end of its stream")
    return output, len(stream) - len(decompressor.unused_data)


def _tool_command(compression, source, target):
    # --no-sparse: zeros are written, so the file's size is what was decompressed.
    if compression == "zstd":
        return ["zstd", "-d", "-q", "-f", "--no-sparse", "-o", target, source]
    return ["lz4", "-d", "-q", "-f", "--no-sparse", source, target]


def _run_tool(compression, stream, limit, what, runner):
    """Decompress stream (all of it) with the zstd or lz4 command."""
    if not runner.which(compression):
        raise ImageError(
            f"{what} is {compression}-compressed and the {compression} command is not installed"
        )
    with tempfile.TemporaryDirectory(prefix="guest_kernel.") as work:
        source, target = os.path.join(work, "image"), os.path.join(work, "decompressed")
        with open(source, "wb") as handle:
            handle.write(stream)
        command = _tool_command(compression, source, target)
        prlimit = runner.which("prlimit")
        if prlimit:
            command = [prlimit, f"--fsize={limit + 1}", "--", *command]
        ret = runner.run(command, python_shell=False, ignore_retcode=True, timeout=TOOL_TIMEOUT)
        size = os.path.getsize(target) if os.path.exists(target) else 0
        # prlimit's file size limit stops the command with SIGXFSZ.
        if size > limit or ret["retcode"] in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            raise ImageError(f"{what} decompresses to more than {size_text(limit)}")
        if ret["retcode"] != 0:
            message = (ret.get("stderr") or ret.get("stdout") or "").strip() or "no message"
            raise ImageError(f"{what}: {compression} -d failed (exit {ret['retcode']}): {message}")
        with open(target, "rb") as handle:
            return bytearray(handle.read(limit + 1))


def decompress(stream, compression, what, runner):
    """(data, bytes consumed) of the compressed stream at the start of stream,
    at most :data:`MAX_DECOMPRESSED` bytes.

    A stream read by a command is taken to run to the end of stream.
    """
    if compression in TOOL_COMPRESSIONS:
        return _run_tool(compression, stream, MAX_DECOMPRESSED, what, runner), len(stream)
    if compression is None or compression == "lzo":
        kind = "lzo-compressed" if compression else "not in a known compression"
        raise ImageError(f"{what} is {kind}: it cannot be read here")
    return inflate(stream, compression, MAX_DECOMPRESSED, what)
