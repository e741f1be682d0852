"""xl's own config reader, Xen's libxlutil, loaded with ctypes.

The reader xl runs on a guest config (tools/include/libxlutil.h):
``xlu_cfg_init(FILE *report, const char *report_filename)``,
``xlu_cfg_readdata(cfg, data, length)``, ``xlu_cfg_get_string``,
``xlu_cfg_get_long``, ``xlu_cfg_get_list`` and ``xlu_cfg_get_listitem``.
No hypervisor is needed: the config parser is plain user-space code. The
library comes with Debian's ``libxenmisc4.17`` (tests/setup.sh installs it).

    config = libxlutil.read('name = "g"\\nvif = ["bridge=xenbr0"]\\n')
    config.string("name")  # 'g'
    config.list("vif")     # ['bridge=xenbr0']
"""

import ctypes
import ctypes.util
import errno
import os
import tempfile

#: The sonames tried, newest first: Debian 12 ships libxlutil.so.4.17.
SONAMES = ("libxlutil.so.4.17", "libxlutil.so")


class XlReadError(ValueError):
    """libxlutil refused the text; the message is what it reported."""


def _load():
    errors = []
    for name in SONAMES:
        try:
            return ctypes.CDLL(name), None
        except OSError as err:
            errors.append(str(err))
    return None, "; ".join(errors)


_LIB, LOAD_ERROR = _load()
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_LIBC.fopen.restype = ctypes.c_void_p
_LIBC.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
_LIBC.fflush.argtypes = (ctypes.c_void_p,)
_LIBC.fclose.argtypes = (ctypes.c_void_p,)

if _LIB is not None:
    _LIB.xlu_cfg_init.restype = ctypes.c_void_p
    _LIB.xlu_cfg_init.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    _LIB.xlu_cfg_readdata.restype = ctypes.c_int
    _LIB.xlu_cfg_readdata.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)
    _LIB.xlu_cfg_destroy.restype = None
    _LIB.xlu_cfg_destroy.argtypes = (ctypes.c_void_p,)
    _LIB.xlu_cfg_get_string.restype = ctypes.c_int
    _LIB.xlu_cfg_get_string.argtypes = (
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int)
    _LIB.xlu_cfg_get_long.restype = ctypes.c_int
    _LIB.xlu_cfg_get_long.argtypes = (
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_long), ctypes.c_int)
    _LIB.xlu_cfg_get_list.restype = ctypes.c_int
    _LIB.xlu_cfg_get_list.argtypes = (
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_int), ctypes.c_int)
    _LIB.xlu_cfg_get_listitem.restype = ctypes.c_char_p
    _LIB.xlu_cfg_get_listitem.argtypes = (ctypes.c_void_p, ctypes.c_int)


def available():
    """Whether libxlutil could be loaded (see LOAD_ERROR when not)."""
    return _LIB is not None


def _text(data):
    return data.decode("utf-8", "surrogateescape")


class XlConfig:
    """What libxlutil read: its settings, asked by name as xl asks."""

    def __init__(self, cfg, report):
        self._cfg = cfg
        self._report = report

    def close(self):
        """Free libxlutil's config and its report stream."""
        if self._cfg:
            _LIB.xlu_cfg_destroy(self._cfg)
            _LIBC.fclose(self._report)
            self._cfg = None

    def __del__(self):
        self.close()

    def string(self, name):
        """The string setting name, or None when it is not set."""
        value = ctypes.c_char_p()
        rc = _LIB.xlu_cfg_get_string(self._cfg, name.encode(), ctypes.byref(value), 1)
        if rc == errno.ESRCH:
            return None
        if rc:
            raise XlReadError(f"{name}: not a string ({os.strerror(rc)})")
        return _text(value.value)

    def long(self, name):
        """The number setting name, or None when it is not set."""
        value = ctypes.c_long()
        rc = _LIB.xlu_cfg_get_long(self._cfg, name.encode(), ctypes.byref(value), 1)
        if rc == errno.ESRCH:
            return None
        if rc:
            raise XlReadError(f"{name}: not a number ({os.strerror(rc)})")
        return value.value

    def list(self, name):
        """The list setting name (its string items), or None when it is not set."""
        handle = ctypes.c_void_p()
        count = ctypes.c_int()
        rc = _LIB.xlu_cfg_get_list(self._cfg, name.encode(), ctypes.byref(handle),
                                   ctypes.byref(count), 1)
        if rc == errno.ESRCH:
            return None
        if rc:
            raise XlReadError(f"{name}: not a list ({os.strerror(rc)})")
        items = []
        for index in range(count.value):
            item = _LIB.xlu_cfg_get_listitem(handle, index)
            items.append(None if item is None else _text(item))
        return items


def read(text, source="test.cfg"):
    """Read xl.cfg text (str or bytes) as xl does: an :class:`XlConfig`, or
    :class:`XlReadError` with what libxlutil reported."""
    if _LIB is None:
        raise RuntimeError(f"libxlutil cannot be loaded: {LOAD_ERROR}")
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    with tempfile.NamedTemporaryFile(prefix="xlu-report-") as report_file:
        report = _LIBC.fopen(report_file.name.encode(), b"w")
        if not report:
            raise OSError(ctypes.get_errno(), "fopen failed")
        cfg = _LIB.xlu_cfg_init(report, source.encode())
        if not cfg:
            _LIBC.fclose(report)
            raise MemoryError("xlu_cfg_init")
        config = XlConfig(cfg, report)
        rc = _LIB.xlu_cfg_readdata(cfg, data, len(data))
        _LIBC.fflush(report)
        messages = _text(report_file.read())
    if rc:
        config.close()
        raise XlReadError(f"libxlutil: {os.strerror(rc)}: {messages.strip()}")
    return config


def vif_pairs(spec):
    """The (key, value) pairs xl reads from one vif spec (tools/xl/xl_parse.c):
    strtok at every ',' (empty fields vanish), the spaces before a pair
    skipped, the key up to the first '=' and the value all after it."""
    pairs = []
    for field in filter(None, spec.split(",")):
        key, _, value = field.lstrip(" ").partition("=")
        pairs.append((key, value))
    return pairs
