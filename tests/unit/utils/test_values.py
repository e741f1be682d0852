"""The shared validators: canonical values back, one error format out."""

import pytest
from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import values


@pytest.mark.parametrize("name", ["XenGuest", "a.b:c+d-e_f", "9"])
def test_domain_names_xen_accepts(name):
    assert values.check_domain_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "-x", "a b", "a/b", "a\nb", None, 3])
def test_domain_names_xen_refuses(name):
    with pytest.raises(SaltInvocationError, match=r"^name: "):
        values.check_domain_name(name)


def test_minion_ids_and_host_names():
    assert values.check_minion_id("dom0-a", "dom0") == "dom0-a"
    with pytest.raises(SaltInvocationError, match=r"^dom0: 'dom0-\*' is not a minion id"):
        values.check_minion_id("dom0-*", "dom0")
    assert values.is_hostname("nfs1.example.org")
    assert not values.is_hostname("192.0.2.300")
    assert not values.is_hostname("-x")
    assert values.is_ip_address("2001:db8::1") and not values.is_ip_address("nfs1")


def test_ipv4_is_canonical_and_ipv6_refused():
    assert values.check_ipv4("192.0.2.1", "nfs_server") == "192.0.2.1"
    with pytest.raises(SaltInvocationError, match=r"^nfs_server: '2001:db8::1' is not an IPv4"):
        values.check_ipv4("2001:db8::1", "nfs_server")


def test_switches_choices_counts():
    assert values.check_switch(True, "autostart") is True
    with pytest.raises(SaltInvocationError, match="is not true or false"):
        values.check_switch("yes", "autostart")
    assert values.check_choice("xl", "toolstack", ("auto", "xl", "xm")) == "xl"
    with pytest.raises(SaltInvocationError, match="must be one of auto, xl, xm"):
        values.check_choice(["xl"], "toolstack", ("auto", "xl", "xm"))
    assert values.check_count(" 512 ", "memory") == 512
    for bad in (0, -1, True, "abc", 1.5, None):
        with pytest.raises(SaltInvocationError, match="^memory: .* is not a positive integer"):
            values.check_count(bad, "memory")


def test_a_list_is_never_a_string():
    assert values.check_list(("a", "b"), "dom0s") == ["a", "b"]
    for bad in ("dom0-b", b"x", {"a": 1}, None):
        with pytest.raises(SaltInvocationError, match="^other_dom0s: .* is not a list"):
            values.check_list(bad, "other_dom0s")
    with pytest.raises(SaltInvocationError, match="is not a non-empty list"):
        values.check_list([], "clients", empty=False)


def test_absolute_paths():
    assert values.check_absolute_path("/srv/my root", "nfs_root") == "/srv/my root"
    refused = {
        "srv/x": "must be an absolute path",
        "/srv/\nx": "control characters",
        "/srv/\tx": "control characters",
    }
    for path, problem in refused.items():
        with pytest.raises(SaltInvocationError, match=problem):
            values.check_absolute_path(path, "nfs_root")
    with pytest.raises(SaltInvocationError, match="must not contain spaces"):
        values.check_absolute_path("/a b", "kernel", spaces=False)
    for path in ("/a/../b", "/a/./b", "/a/", "/a//b"):
        with pytest.raises(SaltInvocationError, match="normalised"):
            values.check_absolute_path(path, "config_dir", normalised=True)
    with pytest.raises(SaltInvocationError, match="below /"):
        values.check_absolute_path("/", "nfs_root", normalised=True, below_root=True)


def test_a_final_newline_is_never_part_of_a_valid_value():
    for check in (values.check_domain_name, values.check_minion_id):
        with pytest.raises(SaltInvocationError):
            check("dom0-b\n", "field")
    assert not values.is_hostname("nfs1\n")


def test_a_memoized_validator_answers_the_same_arguments_once():
    calls = []

    def check(name, clients=None, strict=False):
        calls.append(name)
        if name == "bad":
            raise SaltInvocationError("name: 'bad' is refused")
        return {"name": name, "clients": list(clients or []), "strict": strict}

    memo = values.memoized(check, size=2)
    first = memo("a", [{"hosts": "h"}])
    # Bound to the signature, defaults applied: the same call however spelled.
    assert memo("a", clients=[{"hosts": "h"}], strict=False) == first
    assert calls == ["a"]
    # Each caller gets its own copy.
    first["clients"].append("mutated")
    assert memo("a", [{"hosts": "h"}])["clients"] == [{"hosts": "h"}]
    # Values that repr() tells apart are other arguments: True is not 1, a
    # tuple not a list.
    memo("a", [{"hosts": "h"}], strict=1)
    memo("a", ({"hosts": "h"},))
    assert calls == ["a", "a", "a"]
    # A refusal is raised each time, never kept.
    for _ in range(2):
        with pytest.raises(SaltInvocationError, match="'bad' is refused"):
            memo("bad")
    assert calls.count("bad") == 2
    # Only the last `size` answers are kept; arguments that are not plain
    # data are never keys.
    assert len(memo.kept) == 2
    memo("b", [object()])
    memo("b", [object()])
    assert calls.count("b") == 2


def test_the_guest_settings_checked_per_guest_are_memoized():
    from xen_nfsroot_lib import guest_config  # noqa: PLC0415

    given = {"memory": 128, "nfs_server": "192.0.2.1", "nfs_root": "/srv/xen/g"}
    settings = guest_config.guest_settings("g", "/boot/vmlinuz", **given)
    assert guest_config.guest_settings("g", "/boot/vmlinuz", **given) == settings
    assert guest_config.guest_settings.kept
    with pytest.raises(SaltInvocationError, match="nfs_server"):
        guest_config.guest_settings("g", "/boot/vmlinuz", nfs_root="/srv/xen/g")
