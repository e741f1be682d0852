"""The guest kernel's command line: Linux's splitting rules (lib/cmdline.c
next_arg, lib/ctype.c isspace), the validators of the values the formula puts
on it, and Xen's length limit (MAX_GUEST_CMDLINE)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import guest_config, kernel_cmdline

# --- the kernel's splitter --------------------------------------------------------


@pytest.mark.parametrize(("cmdline", "args"), [
    ("root=/dev/nfs  console=hvc0\tquiet\n", [("root", "/dev/nfs"), ("console", "hvc0"),
                                             ("quiet", None)]),
    ("  a=b", [("a", "b")]),
    # A quote toggles quoting: the spaces up to the next quote do not split.
    ('a="b c" d', [("a", "b c"), ("d", None)]),
    ('"a b" c', [("a b", None), ("c", None)]),
    ('nfsroot=192.0.2.1:/x"y console=hvc0 quiet',
     [("nfsroot", '192.0.2.1:/x"y console=hvc0 quiet')]),
    # 0xA0 is a space to the kernel (lib/ctype.c: 160 is _S|_SP); 0x85 is not.
    (b"a=1\xa0b=2", [("a", "1"), ("b", "2")]),
    (b"a=1\x85b=2", [("a", "1\udc85b=2")]),
    ("nfsroot=192.0.2.1:/a\u00a0b console=hvc0",
     [("nfsroot", "192.0.2.1:/a\udcc2"), ("b", None), ("console", "hvc0")]),
    # An '=' first of all is no separator; the value runs to the end.
    ("=x a==b", [("=x", None), ("a", "=b")]),
    ("a\x00b c", [("a", None)]),
])
def test_split_follows_next_arg(cmdline, args):
    assert kernel_cmdline.split(cmdline) == args


def test_the_kernel_spaces_are_its_ctype_table():
    assert kernel_cmdline.KERNEL_SPACES == frozenset([9, 10, 11, 12, 13, 32, 0xA0])


# --- the validators ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "problem"), [
    ('/srv/x"y', "must not contain '\"'"),
    ("/srv/a\u00a0b", "non-breaking space"),
    ("/srv/\u0820", "0xA0"),  # U+0820 is E0 A0 A0 in UTF-8
    ("/srv/a b", "must not contain spaces"),
    ("/srv/a\tb", "control characters"),
    ("", "must not be empty"),
    (3, "must be a string"),
])
def test_a_token_that_would_not_travel_as_itself_is_refused(value, problem):
    with pytest.raises(SaltInvocationError, match=r"^nfs_root: ") as info:
        kernel_cmdline.check_token(value, "nfs_root")
    assert problem in str(info.value)


def test_a_token_with_other_characters_travels():
    assert kernel_cmdline.check_token("/srv/xen/gäst\u0085", "nfs_root") == "/srv/xen/gäst\u0085"
    assert kernel_cmdline.check_words("console=hvc0  quiet", "extra") == ["console=hvc0", "quiet"]
    with pytest.raises(SaltInvocationError,
                       match="^extra: 'a=\"b c\"' has the argument 'a=\"b' that must not"):
        kernel_cmdline.check_words('a="b c"', "extra")


def test_how_xl_and_xend_assemble_the_command_line():
    assert kernel_cmdline.xl_cmdline("/dev/nfs", "console=hvc0") == "root=/dev/nfs console=hvc0"
    assert kernel_cmdline.xl_cmdline("/dev/nfs", None) == "root=/dev/nfs"
    assert kernel_cmdline.xl_cmdline(None, "quiet") == "quiet"
    assert kernel_cmdline.xm_cmdline({
        "dhcp": "dhcp", "nfs_server": "192.0.2.1", "nfs_root": "/xen", "root": "/dev/hda1",
        "extra": "quiet"}) == ("ip=:192.0.2.1::::eth0:dhcp nfsroot=192.0.2.1:/xen quiet")
    assert kernel_cmdline.xm_cmdline({"root": "/dev/hda1 ro", "extra": "3"}) == (
        "root=/dev/hda1 ro 3")


def test_a_command_line_over_1023_bytes_is_refused_naming_field_and_length():
    kernel_cmdline.check_cmdline("a" * 1023, ["a" * 1023])
    with pytest.raises(SaltInvocationError,
                       match=r"^extra: 'x' makes the guest's kernel command line 1024 bytes "
                             r"long; Xen passes at most 1023"):
        kernel_cmdline.check_cmdline("a" * 1024, ["a" * 1024], "extra", "x")
    # Bytes, not characters: 512 two-byte characters are 1024 bytes.
    with pytest.raises(SaltInvocationError, match="1024 bytes"):
        kernel_cmdline.check_cmdline("é" * 512, ["é" * 512])


# --- the guest's config: what the formula puts on the command line ----------------

GUEST = {"memory": 256, "dhcp": "dhcp", "nfs_server": "192.0.2.1", "nfs_root": "/srv/xen/g",
         "root": "/dev/nfs", "extra": "console=hvc0"}


def _config(toolstack="xl", **changes):
    return guest_config.guest_config("g", "/boot/vmlinuz", toolstack=toolstack,
                                     **{**GUEST, **changes})


@pytest.mark.parametrize("toolstack", ["xl", "xm"])
@pytest.mark.parametrize(("changes", "field", "problem"), [
    # Old code: accepted, and the kernel read nfsroot='192.0.2.1:/srv/x"y,vers=3 console=hvc0'.
    ({"nfs_root": '/srv/x"y'}, "nfs_root", "must not contain '\"'"),
    # Old code: accepted, and the kernel read the path as /srv/a\xc2 and an argument 'b'.
    ({"nfs_root": "/srv/a\u00a0b"}, "nfs_root", "non-breaking space"),
    ({"extra": 'console=hvc0 a="b'}, "extra", "must not contain '\"'"),
    ({"extra": "console=hvc0\u00a0quiet"}, "extra", "non-breaking space"),
    ({"root": '/dev/nfs"'}, "root", "must not contain '\"'"),
])
def test_a_value_the_kernel_would_split_otherwise_is_refused(toolstack, changes, field, problem):
    with pytest.raises(SaltInvocationError, match=f"^{field}: ") as info:
        _config(toolstack, **changes)
    assert problem in str(info.value)


@pytest.mark.parametrize("toolstack", ["xl", "xm"])
def test_an_extra_that_overflows_the_command_line_is_refused(toolstack):
    # Old code: accepted; Xen cut the command line at 1023 bytes and the guest
    # silently lost the tail of extra.
    one = _config(toolstack, extra="a")
    if toolstack == "xm":
        base = len(kernel_cmdline.xm_cmdline(one)) - 1
    else:
        base = len(kernel_cmdline.xl_cmdline(one["root"], one["extra"])) - 1
    room = kernel_cmdline.MAX_LENGTH - base
    assert _config(toolstack, extra="a" * room)
    with pytest.raises(SaltInvocationError) as info:
        _config(toolstack, extra="a" * (room + 1))
    message = str(info.value)
    assert message.startswith("extra: 'aaa")
    assert "command line 1024 bytes long; Xen passes at most 1023" in message


def test_the_kernel_reads_the_intended_arguments_of_a_guest():
    config = _config("xl", extra="console=hvc0 net.ifnames=0", dhcp=None, network={
        "address": "10.0.0.2", "netmask": 24, "gateway": "10.0.0.1", "hostname": "g"})
    cmdline = kernel_cmdline.xl_cmdline(config["root"], config["extra"])
    assert kernel_cmdline.arguments(cmdline) == [
        "root=/dev/nfs", "ip=10.0.0.2:192.0.2.1:10.0.0.1:255.255.255.0:g:eth0:off",
        "nfsroot=192.0.2.1:/srv/xen/g,vers=3", "console=hvc0", "net.ifnames=0"]


HOSTILE = st.text(st.sampled_from(
    ['"', " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x00", "\x7f", "\u00a0", "\u0085",
     "\u0820", "\u2028", "\udc80", "=", ",", ":", "/", "a", "b", "é", "-", "\\", "'"]),
    min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(nfs_root=HOSTILE.map(lambda text: "/srv/" + text), extra=st.one_of(st.none(), HOSTILE),
       toolstack=st.sampled_from(["xl", "xm"]))
def test_hostile_values_are_refused_or_reach_the_kernel_intact(nfs_root, extra, toolstack):
    try:
        config = _config(toolstack, nfs_root=nfs_root, extra=extra)
    except SaltInvocationError as err:
        assert str(err).split(":")[0] in ("nfs_root", "extra")
        return
    if toolstack == "xl":
        cmdline = kernel_cmdline.xl_cmdline(config["root"], config["extra"])
    else:
        cmdline = kernel_cmdline.xm_cmdline(config)
    args = kernel_cmdline.split(cmdline)
    assert ("nfsroot", f"192.0.2.1:{nfs_root},vers=3") in args
    words = [word for word in (extra or "").strip().split(" ") if word]
    read = kernel_cmdline.arguments(cmdline)
    assert read[len(read) - len(words):] == words
    assert len(cmdline.encode()) <= 1023


def test_a_long_nfs_root_without_extra_names_nfs_root():
    with pytest.raises(SaltInvocationError, match=r"^nfs_root: '/srv/aaa.*' makes the guest's "
                                                  r"kernel command line \d+ bytes long"):
        _config("xl", extra=None, nfs_root="/srv/" + "a" * 1100)
