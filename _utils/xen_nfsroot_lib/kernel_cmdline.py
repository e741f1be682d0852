"""
The guest kernel's command line: how Linux splits it, and the validator of
every value the formula puts on it.

Linux splits its command line with ``next_arg`` (``lib/cmdline.c``), one
byte at a time: an argument ends at a byte ``isspace`` calls a space, and
the kernel's ctype table (``lib/ctype.c``) counts six of them: tab, newline,
vertical tab, form feed, carriage return and space (9-13, 32) and also
0xA0, which is the second byte of the UTF-8 non-breaking space and of many
other characters (0x85 is not one). A ``"`` toggles quoting wherever it
stands, so one quote joins every following argument into one. There is no
escape.

Xen hands a PV guest its command line in ``start_info.cmd_line``,
``MAX_GUEST_CMDLINE`` (1024) bytes with the NUL: a longer one is cut, and
the guest silently loses its tail. xl assembles it as ``root=<root>
<extra>``; xend (xm) as ``root=<root> ip=<ip> nfsroot=<server>:<path>
<extra>`` (:func:`xl_cmdline`, :func:`xm_cmdline`).

So a value travels as exactly the intended arguments, or is refused: no
``"``, no byte the kernel reads as a space, no control character inside an
argument, and at most 1023 bytes in all (:func:`check_token`,
:func:`check_words`, :func:`check_cmdline`). :func:`split` is the kernel's
reader, for tests and checks alike.
"""

import re

from xen_nfsroot_lib import values

#: Xen's limit on a PV guest's command line, the terminating NUL included
#: (xen/include/public/xen.h).
MAX_GUEST_CMDLINE = 1024
#: The most bytes a command line may have: one less, for the NUL.
MAX_LENGTH = MAX_GUEST_CMDLINE - 1
#: The bytes the kernel's isspace() is true for (lib/ctype.c: _S).
KERNEL_SPACES = frozenset(b"\t\n\v\f\r \xa0")


def _bytes(cmdline):
    if isinstance(cmdline, str):
        return cmdline.encode("utf-8", "surrogateescape")
    return bytes(cmdline)


def _text(data):
    return data.decode("utf-8", "surrogateescape")


def _skip_spaces(data, pos):
    while pos < len(data) and data[pos] in KERNEL_SPACES:
        pos += 1
    return pos


def _cstring(buffer, start):
    """The C string at buffer[start:]: up to the first NUL."""
    stop = buffer.find(0, start)
    return bytes(buffer[start:] if stop < 0 else buffer[start:stop])


def _scan(data, pos, in_quote):
    """next_arg's loop: where the argument ends and where its first '='
    stands (0: none; an '=' first of all counts as none, as in the kernel)."""
    end = pos
    equals = 0
    while end < len(data) and (in_quote or data[end] not in KERNEL_SPACES):
        if equals == 0 and data[end] == ord("="):
            equals = end - pos
        if data[end] == ord('"'):
            in_quote = not in_quote
        end += 1
    return end, equals


def _next_arg(data, pos):
    """lib/cmdline.c next_arg from data[pos]: (param, value or None, next pos)."""
    quoted = data[pos:pos + 1] == b'"'
    pos += quoted
    end, equals = _scan(data, pos, quoted)
    # The kernel ends the param and the value by writing NULs into its
    # buffer: at the '=', at a value's closing quote, at a quoted argument's
    # closing quote.
    arg = bytearray(data[pos:end]) + b"\0"
    last = len(arg) - 2  # the argument's last byte; -1 for an empty one
    closing = last >= 0 and arg[last] == ord('"')
    value = None
    if equals:
        arg[equals] = 0
        value = equals + 1
        if arg[value] == ord('"'):
            value += 1
            if closing:
                arg[last] = 0
    if quoted and closing:
        arg[last] = 0
    param = _text(_cstring(arg, 0))
    if value is not None:
        value = _text(_cstring(arg, value))
    if end < len(data):
        end += 1
    return param, value, _skip_spaces(data, end)


def split(cmdline):
    """
    The arguments the kernel reads from a command line, as ``(param, value)``
    pairs (``value`` None for an argument without ``=``), by the rules of
    ``parse_args``/``next_arg``: spaces skipped first, arguments split at the
    kernel's space bytes outside quotes, a ``"`` toggles quoting, the quotes
    around a value (or a whole argument) dropped, a NUL ends it all.
    """
    data = _bytes(cmdline)
    if 0 in data:
        data = data[:data.index(0)]
    args = []
    pos = _skip_spaces(data, 0)
    while pos < len(data):
        param, value, pos = _next_arg(data, pos)
        args.append((param, value))
    return args


def arguments(cmdline):
    """The kernel's arguments as text again (``param`` or ``param=value``)."""
    return [param if value is None else f"{param}={value}" for param, value in split(cmdline)]


#: What keeps a value from travelling as one kernel argument: a test of
#: its UTF-8 bytes, and the problem.
_PROBLEMS = (
    (lambda data: not data, "must not be empty on the kernel command line"),
    (lambda data: b'"' in data, "must not contain '\"' (the kernel's quote joins the "
                                "arguments that follow into this one)"),
    (lambda data: values.CONTROL_RE.search(data.decode("utf-8")),
     "must not contain control characters (newlines, tabs, NUL)"),
    (lambda data: b" " in data, "must not contain spaces (the kernel splits its "
                                "arguments there)"),
    (lambda data: b"\xa0" in data, "must not contain a character with the byte 0xA0 in "
                                   "UTF-8, such as a non-breaking space (the kernel "
                                   "reads it as a space)"),
)


def _problem(value):
    """What keeps a value from travelling as one kernel argument, or None."""
    if not isinstance(value, str):
        return "must be a string"
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be UTF-8 text (it holds a lone surrogate)"
    return next((problem for test, problem in _PROBLEMS if test(data)), None)


def check_token(value, field):
    """
    Check a value that must reach the guest kernel as one argument (or one
    part of one: a path in ``nfsroot=``, ``root=``'s device): no ``"``, no
    byte the kernel reads as a space (0xA0 included), no control character,
    not empty. Returns it.
    """
    problem = _problem(value)
    if problem:
        raise values.invalid(field, value, problem)
    return value


def check_words(value, field):
    """
    Check a piece of command line made of arguments separated by spaces
    (``extra``, ``root`` with its flags such as ``/dev/hda1 ro``): each
    argument must travel as itself (:func:`check_token`). Returns the
    arguments, in order.
    """
    if not isinstance(value, str):
        raise values.invalid(field, value, "must be a string")
    words = [word for word in value.split(" ") if word]
    for word in words:
        problem = _problem(word)
        if problem:
            raise values.invalid(field, value, f"has the argument {word!r} that {problem}")
    return words


def xl_cmdline(root=None, extra=None):
    """The command line xl gives a PV guest: ``root=<root> <extra>``
    (tools/xl/xl_parse.c parse_cmdline)."""
    if root and extra:
        return f"root={root} {extra}"
    if root:
        return f"root={root}"
    return extra or ""


def xm_cmdline(config):
    """The command line xend gives a PV guest from xm config keys: xm create
    puts ``nfsroot=`` in front of ``extra`` and builds ``ip=``; xend puts
    ``ip=`` and ``root=`` in front of that unless the arguments already
    match ``ip=[^ ]+`` / ``root=`` (Xen 4.4 xm/create.py, XendConfig.py)."""
    args = config.get("extra") or ""
    if config.get("nfs_root"):
        args = f"nfsroot={config.get('nfs_server')}:{config['nfs_root']} {args}"
    dhcp = config.get("dhcp") or "off"
    if config.get("ip") or dhcp != "off":
        ip_arg = ":".join([config.get("ip") or "", config.get("nfs_server") or "127.0.255.255",
                           config.get("gateway") or "", config.get("netmask") or "",
                           config.get("hostname") or "", config.get("interface") or "eth0",
                           dhcp])
        if not re.search(r"ip=[^ ]+", args):
            args = f"ip={ip_arg} {args}"
    if config.get("root") and not re.search(r"root=", args):
        args = f"root={config['root']} {args}"
    return args


def check_cmdline(cmdline, intended, field="extra", value=None):
    """
    Check a whole PV command line: the kernel reads exactly the ``intended``
    arguments (``param=value`` or ``param`` strings) from it, and it fits in
    Xen's ``MAX_GUEST_CMDLINE`` with its NUL (at most 1023 bytes). Errors
    name the field, its ``value`` (by default the command line) and the
    length. Returns the command line.
    """
    value = cmdline if value is None else value
    length = len(_bytes(cmdline))
    if length > MAX_LENGTH:
        raise values.invalid(
            field, value,
            f"makes the guest's kernel command line {length} bytes long; Xen passes at "
            f"most {MAX_LENGTH} (MAX_GUEST_CMDLINE {MAX_GUEST_CMDLINE} with its NUL) "
            "and the kernel would silently lose the rest")
    read = arguments(cmdline)
    if read != list(intended):
        raise values.invalid(field, value,
                             f"would reach the guest's kernel as {read}, not as {list(intended)}")
    return cmdline
