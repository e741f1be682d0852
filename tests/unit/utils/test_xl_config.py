"""xl.cfg(5): the reader follows xl's grammar, the writer is its inverse."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xen_nfsroot_lib import guest_config, xl_config
from xen_nfsroot_lib.xl_config import XenConfigError


def test_xl_grammar_strings_numbers_lists_comments_separators():
    text = (
        "# comment\n"
        "name = 'a\\'b\\n' ; memory = 0x100 # trailing comment\n"
        "maxmem = 010\n"
        "vif = [ 'mac=00:16:3e:00:00:01',\n"
        "        \"bridge=xenbr0\", ]\n"
        "cpus = [[\"0\", 1], []]\n"
        'extra = "tab\\there \\"quoted\\" back\\\\slash"\n'
        "vif += ['x']"
    )
    assert xl_config.parse_xl(text) == {
        "name": "a'b\n",
        "memory": 256,
        "maxmem": 8,
        "vif": ["mac=00:16:3e:00:00:01", "bridge=xenbr0", "x"],
        "cpus": [["0", 1], []],
        "extra": 'tab\there "quoted" back\\slash',
    }


def test_xl_grammar_rejects_python_with_file_and_line():
    with pytest.raises(XenConfigError, match=r"^g\.cfg:2: config parsing error near "
                                             r"`\(1\)': lexical error \(the file looks"):
        xl_config.parse_xl('name = "x"\nmemory = int(1)\n', source="g.cfg")


def test_injection_through_values_cannot_add_a_key():
    evil = 'x"\nkernel = "/evil"\n#'
    text = xl_config.render_xl({"name": "g", "extra": evil})
    assert xl_config.parse_xl(text) == {"name": "g", "extra": evil}
    assert text.count("\n") == len(text.splitlines())
    assert sum(1 for line in text.splitlines() if line.startswith("kernel")) == 0


# --- round trip (hypothesis) -----------------------------------------------------

XL_KEYS = st.from_regex(r"\A[a-z][._0-9a-z]{0,12}\Z")
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
XL_ATOMS = st.one_of(TEXT, st.integers(min_value=0, max_value=2**40))
XL_VALUES = st.recursive(XL_ATOMS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(XL_KEYS, XL_VALUES, max_size=6))
def test_xl_round_trip(config):
    text = xl_config.render_xl(config)
    assert xl_config.parse_xl(text) == config
    assert guest_config.parse_config(text) == config


def test_what_an_xl_string_cannot_carry_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="^extra: 'a\\\\x00' holds a NUL character"):
        xl_config.render_xl({"extra": "a\x00"})
    with pytest.raises(ValueError, match="^vif: '\\\\udc80' holds a lone surrogate"):
        xl_config.render_xl({"vif": ["\udc80"]})
    with pytest.raises(ValueError, match="^maxmem: 9223372036854775808 is more than xl"):
        xl_config.render_xl({"maxmem": 2**63})


def test_numeric_escapes_read_as_libxlutil_reads_them():
    # xlu__cfgl_dequote: a backslash-digit escape swallows up to three more
    # characters as a decimal number and yields nothing; backslash-x is an error.
    assert xl_config.parse_xl('x = "a\\101b"\n') == {"x": "ab"}
    with pytest.raises(XenConfigError, match="^t.cfg:1: invalid digit after backslash hex"):
        xl_config.parse_xl('x = "\\x41"\n', source="t.cfg")
    with pytest.raises(XenConfigError, match="^t.cfg:1: invalid digit after backslash octal"):
        xl_config.parse_xl('x = "\\7"\n', source="t.cfg")
    with pytest.raises(XenConfigError, match="^t.cfg:1: invalid character after backlash"):
        xl_config.parse_xl('x = "\\q"\n', source="t.cfg")
