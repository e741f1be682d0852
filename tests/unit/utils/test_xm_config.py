"""The xm config format: read without running it, written so no value can add a key."""

import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xen_nfsroot_lib import guest_config, xm_config
from xen_nfsroot_lib.xl_config import XenConfigError


def test_xm_reader_never_executes(tmp_path):
    marker = tmp_path / "ran"
    text = f"import os\nos.system('touch {marker}')\n"
    with pytest.raises(XenConfigError, match=r"^x\.cfg:1: only assignments"):
        xm_config.parse_xm(text, source="x.cfg")
    with pytest.raises(XenConfigError, match=r"^x\.cfg:2: hostname is computed"):
        xm_config.parse_xm('name = "a"\nhostname = "vm%d" % vmid\n', source="x.cfg")
    assert not marker.exists()


def test_xm_reader_ignores_booleans_as_xm_does():
    assert xm_config.parse_xm("a = True\nb = None\nc = (1, 'x')\n") == {"c": [1, "x"]}


def test_injection_through_values_cannot_add_a_key():
    evil = 'x"\nkernel = "/evil"\n#'
    text = xm_config.render_xm({"name": "g", "extra": evil})
    assert xm_config.parse_xm(text) == {"name": "g", "extra": evil}
    assert text.count("\n") == len(text.splitlines())
    assert sum(1 for line in text.splitlines() if line.startswith("kernel")) == 0


# --- round trip (hypothesis) -----------------------------------------------------

XM_KEYS = st.from_regex(r"\A[a-z_][a-z0-9_]{0,12}\Z").filter(
    lambda k: not keyword.iskeyword(k)
)
XM_ATOMS = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
)
XM_VALUES = st.recursive(XM_ATOMS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(XM_KEYS, XM_VALUES, max_size=6))
def test_xm_round_trip(config):
    text = xm_config.render_xm(config)
    assert xm_config.parse_xm(text) == config
    assert guest_config.parse_config(text, toolstack="xm") == config
    assert guest_config.parse_config(text) == config
