"""
The xm config format (Xen <= 4.4): a Python file of literal assignments.

The reader never runs the file: every top-level statement must assign one
literal (string, number or list) to one name, read with
``ast.literal_eval``. The writer escapes every string so that no value can
end its literal or start a new line; its files are UTF-8 with a coding
line, read alike by Python 2 (xm) and Python 3.
"""

import ast
import keyword
import math
import re

from xen_nfsroot_lib.xl_config import HEADER, XenConfigError

XM_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
XM_HEADER = "# -*- mode: python; coding: utf-8 -*-\n" + HEADER


def _xm_literal(value, source, line, key):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_xm_literal(item, source, line, key) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (str, int, float)):
        return value
    raise XenConfigError(
        f"{source}:{line}: {key} is a {type(value).__name__}; xm configs hold "
        "strings, numbers and lists"
    )


def parse_xm(text, source="<string>"):
    """Read an xm config (Python) without running it (pure).

    Every top-level statement must assign one literal (string, number or
    list) to one name; each value is read with ``ast.literal_eval``, nothing
    is executed. As xm does, ``True``/``False``/``None`` values are ignored.
    Any other statement (code, computed values, imports) raises
    :class:`XenConfigError` naming the source and line.
    """
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as err:
        raise XenConfigError(f"{source}:{err.lineno}: not valid Python: {err.msg}") from None
    config = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            continue  # a docstring
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            raise XenConfigError(
                f"{source}:{node.lineno}: only assignments of literal values are read "
                f"(found {type(node).__name__}); xm configs are never executed here"
            )
        key = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise XenConfigError(
                f"{source}:{node.lineno}: {key} is computed, not a literal value; "
                "xm configs are never executed here"
            ) from None
        value = _xm_literal(value, source, node.lineno, key)
        if isinstance(value, bool) or value is None:
            config.pop(key, None)
            continue
        config[key] = value
    return config


def _py_string(value, quote):
    out = [quote]
    for char in value:
        code = ord(char)
        if char in ("\\", quote):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"{value!r} holds a lone surrogate")
        else:
            out.append(char)
    out.append(quote)
    return "".join(out)


def _xm_value(value, key, quote='"'):
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{key}: xm ignores {type(value).__name__} values")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key}: {value!r} has no literal form")
        return repr(value)
    if isinstance(value, str):
        return _py_string(value, quote)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_xm_value(item, key, "'") for item in value) + "]"
    raise ValueError(f"{key}: an xm config cannot hold a {type(value).__name__} ({value!r})")


def render_xm(config, header=XM_HEADER):
    """Render a dict of settings as an xm config: Python literal assignments (pure).

    Strings are escaped so that no value can end its literal or start a new
    line (a quote or newline in a value cannot add a key); the file is UTF-8
    with a coding line, read alike by Python 2 (xm) and Python 3.
    """
    lines = [header] if header else []
    for key, value in config.items():
        if not isinstance(key, str) or not XM_KEY_RE.match(key) or keyword.iskeyword(key):
            raise ValueError(f"{key!r} is not a Python variable name")
        lines.append(f"{key} = {_xm_value(value, key)}\n")
    return "".join(lines)
