"""
xl.cfg(5): the reader and the writer of xl's guest config files.

The reader follows xl's own grammar (libxlu's lexer and parser): strings
(``'...'`` or ``"..."`` with C escapes), numbers (decimal, 0-octal,
0x-hex), lists (nested allowed), ``#`` comments, ``;`` separators, ``+=``.
The writer is its inverse: every value it writes reads back as it was, and
no value can end its literal or start a line (a quote or newline in a value
cannot add a key); what xl cannot carry (a NUL, a lone surrogate, a number
past a C long) is refused. It is tested against xl's own reader, libxlutil.
The reader reads libxlutil's numeric escapes (backslash x or digits) as C
does; libxlutil itself reads them as nothing or refuses them, so the writer
never writes one.

:class:`XenConfigError` is the error of both config formats (xl here, xm in
:mod:`xen_nfsroot_lib.xm_config`): its message names the file and the line.
"""

import re

XL_KEY_RE = re.compile(r"^[a-z][._0-9a-z]*\Z")

#: The first line of every config file the formula writes.
HEADER = "# Managed by Salt (xen-nfsroot): local changes are overwritten.\n"
XL_HEADER = HEADER + (
    "# xl.cfg(5) syntax: xl ignores the xm-only NFS keys, so the NFS root is in extra.\n"
)


class XenConfigError(ValueError):
    """A Xen guest config file that cannot be read; the message names file and line."""


_XL_TOKEN_RE = re.compile(
    r"""
    (?P<space>[ \t]+)
  | (?P<newline>\n|\#[^\n]*(?:\n|\Z))
  | (?P<ident>[a-z][._0-9a-z]*)
  | (?P<number>[0-9][0-9a-fx]*)
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<append>\+=)
  | (?P<punct>[,\[\]=;])
    """,
    re.VERBOSE,
)
_XL_SIMPLE_ESCAPES = {
    '"': '"', "'": "'", "\\": "\\", "a": "\a", "b": "\b", "f": "\f",
    "n": "\n", "r": "\r", "t": "\t", "v": "\v",
}
_XL_PYTHON_CHARS = "+-.():"


def _xl_tokens(text, source):
    """Tokens of an xl.cfg file: (kind, text, line). Follows libxlu_cfg_l.l."""
    pos = 0
    line = 1
    tokens = []
    while pos < len(text):
        match = _XL_TOKEN_RE.match(text, pos)
        if not match:
            bad = re.match(r"[^ \t\n]*", text[pos:]).group(0) or text[pos]
            hint = ""
            if text[pos] in _XL_PYTHON_CHARS:
                hint = " (the file looks like Python: xl does not run Python configs)"
            raise XenConfigError(
                f"{source}:{line}: config parsing error near `{bad}': lexical error{hint}"
            )
        kind = match.lastgroup
        value = match.group(0)
        if kind != "space":
            tokens.append((kind, value, line))
        line += value.count("\n")
        pos = match.end()
    tokens.append(("eof", "", line))
    return tokens


def _c_strtoul_length(text):
    """How many characters C's strtoul(text, &end, 10) consumes: spaces, a
    sign, digits; none when no digit follows."""
    match = re.match(r"[ \t\n\v\f\r]*[+-]?[0-9]+", text)
    return match.end() if match else 0


def _xl_dequote(literal, source, line):
    """A string literal as libxlutil's xlu__cfgl_dequote reads it: the C
    control escapes, and its numeric escapes as it really treats them (a
    backslash-x escape is always an error; a backslash-digit one swallows up
    to three more characters as a decimal number and yields nothing)."""
    body = literal[1:-1]
    out = []
    pos = 0
    while pos < len(body):
        char = body[pos]
        pos += 1
        if char != "\\":
            out.append(char)
            continue
        escape = body[pos]
        pos += 1
        if escape in _XL_SIMPLE_ESCAPES:
            out.append(_XL_SIMPLE_ESCAPES[escape])
        elif escape in "01234567":
            # strncpy of 3 characters (the closing quote included) then
            # strtoul base 10; fewer than 2 consumed is an error.
            consumed = _c_strtoul_length(literal[1 + pos:1 + pos + 3])
            if consumed <= 1:
                raise XenConfigError(
                    f"{source}:{line}: invalid digit after backslash octalnumerical "
                    "character escape in quoted string")
            pos += consumed
        elif escape == "x":
            raise XenConfigError(
                f"{source}:{line}: invalid digit after backslash hexnumerical character "
                "escape in quoted string")
        else:
            raise XenConfigError(
                f"{source}:{line}: invalid character after backlash in quoted string")
    return "".join(out)


def _xl_number(text):
    """strtol(text, 0) as xl reads numbers; an atom that is no number stays text."""
    try:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if re.fullmatch(r"0[0-7]*", text):
            return int(text, 8)
        if re.fullmatch(r"[1-9][0-9]*", text):
            return int(text, 10)
    except ValueError:
        pass
    return text


def parse_xl(text, source="<string>"):
    """Parse xl.cfg(5) text into a dict of settings (pure).

    Strings ('...' or "..." with C escapes) become ``str``, numbers (decimal,
    0-octal, 0x-hex) ``int``, lists (nested allowed) ``list``; ``#``
    comments and ``;`` separators are honoured; a later assignment wins, and
    ``+=`` appends. Anything else raises :class:`XenConfigError` naming the
    source and line.
    """
    return _XlParser(_xl_tokens(text, source), source).settings()


class _XlParser:
    """The grammar of libxlu_cfg_y.y over _xl_tokens: settings, values, lists."""

    def __init__(self, tokens, source):
        self.tokens = tokens
        self.source = source
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos]

    def take(self):
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, token, what):
        near = "<newline>" if token[0] == "newline" else token[1].strip() or "<end of file>"
        raise XenConfigError(
            f"{self.source}:{token[2]}: config parsing error near `{near}': syntax error, "
            f"{what}"
        )

    def skip_newlines(self):
        while self.peek()[0] == "newline":
            self.pos += 1

    def value(self):
        token = self.take()
        if token[0] == "string":
            return _xl_dequote(token[1], self.source, token[2])
        if token[0] == "number":
            return _xl_number(token[1])
        if token[1] == "[":
            return self.items()
        self.fail(token, "expecting a string, a number or '['")
        return None

    def items(self):
        """A list's items, after its '['."""
        items = []
        self.skip_newlines()
        while self.peek()[1] != "]":
            items.append(self.value())
            self.skip_newlines()
            if self.peek()[1] == ",":
                self.pos += 1
                self.skip_newlines()
            elif self.peek()[1] != "]":
                self.fail(self.peek(), "expecting ',' or ']'")
        self.pos += 1
        return items

    def setting(self, config):
        """One `key = value` (or `key += value`) into config."""
        token = self.take()
        if token[0] != "ident":
            self.fail(token, "expecting a setting name")
        key = token[1]
        operator = self.take()
        if operator[1] not in ("=", "+="):
            self.fail(operator, "expecting '='")
        value = self.value()
        if operator[1] == "+=" and key in config:
            previous = config[key]
            if type(previous) is not type(value) or not isinstance(value, (list, str)):
                self.fail(operator, f"cannot append to {key}")
            value = previous + value
        config[key] = value
        end = self.peek()
        if end[0] not in ("newline", "eof") and end[1] != ";":
            self.fail(end, "expecting a newline or ';'")

    def settings(self):
        config = {}
        while self.peek()[0] != "eof":
            if self.peek()[0] == "newline" or self.peek()[1] == ";":
                self.pos += 1
                continue
            self.setting(config)
        return config


#: The C escapes libxlutil's xlu__cfgl_dequote reads back as one character.
#: Its numeric escapes (backslash x or digits) are never written: they read back as
#: nothing or as an error.
_XL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
               "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
#: The most a number may be: xl reads numbers with strtol into a long.
XL_NUMBER_MAX = 2**63 - 1


def _xl_string(value, key="value"):
    r"""A double-quoted xl.cfg string that libxlutil's lexer
    (``\"([^\"\\\n]|\\.)*\"``, 8-bit) and its dequoter read back as
    exactly value: ``"``, ``\`` and the C control escapes escaped, every
    other character as its UTF-8 bytes. A NUL ends a C string and a lone
    surrogate has no UTF-8: both are refused."""
    if "\x00" in value:
        raise ValueError(f"{key}: {value!r} holds a NUL character, which an xl.cfg string "
                         "cannot carry (xl would cut the value there)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key}: {value!r} holds a lone surrogate, which is not "
                         "UTF-8 text") from None
    return '"' + "".join(_XL_ESCAPES.get(char, char) for char in value) + '"'


def _xl_value(value, key):
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{key}: xl.cfg has no {type(value).__name__} values")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{key}: xl.cfg numbers cannot be negative ({value})")
        if value > XL_NUMBER_MAX:
            raise ValueError(f"{key}: {value} is more than xl reads as a number "
                             f"({XL_NUMBER_MAX})")
        return str(value)
    if isinstance(value, str):
        return _xl_string(value, key)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_xl_value(item, key) for item in value) + "]"
    raise ValueError(f"{key}: xl.cfg cannot hold a {type(value).__name__} ({value!r})")


def render_xl(config, header=XL_HEADER):
    """Render a dict of settings as xl.cfg(5) text (pure; inverse of :func:`parse_xl`).

    Values: ``str`` (always double-quoted, C escapes, read back by xl's own
    libxlutil as exactly the value; a NUL or a lone surrogate is refused),
    ``int`` from 0 to :data:`XL_NUMBER_MAX`, and lists of those (nested
    allowed). Keys must match ``[a-z][._0-9a-z]*``.
    """
    lines = [header] if header else []
    for key, value in config.items():
        if not isinstance(key, str) or not XL_KEY_RE.match(key):
            raise ValueError(f"{key!r} is not an xl.cfg setting name")
        lines.append(f"{key} = {_xl_value(value, key)}\n")
    return "".join(lines)
