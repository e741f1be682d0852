"""Where a guest runs across its dom0s: the never-twice rule, once, for the
xen_guest states (this dom0's list and the mine's) and the migration plan
(the dom0s' own answers)."""

import pytest
from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import placement


def domain(state="blocked"):
    return {"id": 3, "memory_mb": 256, "vcpus": 1, "state": state, "flags": "-b----",
            "time_s": 1.5}


def answers(**dom0s):
    """The dom0s' answers: ``dom0_a={"g": domain()}`` ... (xl everywhere)."""
    return {name.replace("_", "-"): {"domains": domains, "toolstack": "xl"}
            for name, domains in dom0s.items()}


@pytest.mark.parametrize(("state", "live"), [
    ("running", True), ("blocked", True), ("paused", True), ("dying", True),
    ("shutdown", False), ("crashed", False),
])
def test_a_guest_runs_where_its_domain_holds_its_root(state, live):
    assert placement.whereabouts("g", {"g": domain(state)}) == (live, [])


def test_the_names_xl_migrate_gives_are_found_in_order():
    listing = {"g--migratedaway": domain(), "g--incoming": domain("paused"), "h": domain()}
    assert placement.whereabouts("g", listing) == (False, ["g--incoming", "g--migratedaway"])
    assert placement.whereabouts("g", {"g": "not a record"}) == (False, [])


def test_locate_reads_here_the_others_and_who_did_not_answer():
    found = placement.locate("g", {"g": domain()}, ["dom0-b", "dom0-c", "dom0-d"],
                             {"dom0-b": {"g--incoming": domain()}, "dom0-c": {"g": domain()}})
    assert found == {"here": True, "there": ["dom0-c"],
                     "transient": {"dom0-b": ["g--incoming"]}, "missing": ["dom0-d"]}


@pytest.mark.parametrize(("found", "domain_state", "booting", "blocks"), [
    ({"there": [], "transient": {}, "missing": []}, "absent", True, False),
    ({"there": ["dom0-b"], "transient": {}, "missing": []}, "blocked", False, True),
    ({"there": [], "transient": {"here": ["g--incoming"]}, "missing": []}, "absent", True,
     True),
    # A silent dom0 stops a boot, not a guest already running here.
    ({"there": [], "transient": {}, "missing": ["dom0-b"]}, "absent", True, True),
    ({"there": [], "transient": {}, "missing": ["dom0-b"]}, "blocked", True, False),
    ({"there": [], "transient": {}, "missing": ["dom0-b"]}, "absent", False, False),
])
def test_what_blocks_a_boot(found, domain_state, booting, blocks):
    assert placement.blocks_boot(found, domain_state, booting) is blocks


def test_boot_refusals_name_where_the_guest_is():
    found = {"here": False, "there": ["dom0-b"], "transient": {}, "missing": []}
    assert placement.boot_refusal("g", found, "dom0-a") is None
    found["here"] = True
    assert placement.boot_refusal("g", found, "dom0-a") == (
        "g runs on two dom0s at once: dom0-a and dom0-b; nothing changed: stop one of them "
        "(two kernels writing one NFS root destroy it)")
    found["transient"] = {"here": ["g--migratedaway"], "dom0-b": ["g--incoming"]}
    assert placement.boot_refusal("g", found, "dom0-a") == (
        "g is being migrated or a migration of it failed (g--incoming on dom0-b; "
        "g--migratedaway on this dom0): not booted, nothing destroyed; finish or clean up "
        "the migration first")
    silent = {"here": False, "there": [], "transient": {}, "missing": ["dom0-b"]}
    assert placement.boot_refusal("g", silent, "dom0-a").startswith(
        "Cannot tell whether g runs on dom0-b (no domain list in the mine")


@pytest.mark.parametrize(("to", "found", "message"), [
    ("dom0-c", {}, "to: 'dom0-c' is not one of the dom0s of g (dom0-a, dom0-b)"),
    ("dom0-a", {}, "to: 'dom0-a' is this dom0: g would migrate onto itself"),
    ("dom0-b", {"transient": {"dom0-b": ["g--incoming"]}},
     "g is being migrated or a migration of it failed (g--incoming on dom0-b)"),
    ("dom0-b", {"here": False, "there": ["dom0-b"]},
     "g does not run on this dom0 (dom0-a) (it runs on dom0-b)"),
    ("dom0-b", {"there": ["dom0-b"]},
     "g runs on two dom0s at once: dom0-a and dom0-b; not migrating it"),
    ("dom0-b", {}, None),
])
def test_migration_refusals(to, found, message):
    found = {"here": True, "there": [], "transient": {}, "missing": [], **found}
    assert placement.migration_refusal("g", to, ["dom0-a", "dom0-b"], found,
                                       "dom0-a") == message


def test_a_move_is_checked_against_the_dom0s_answers():
    said = answers(dom0_a={"g": domain()}, dom0_b={})
    assert placement.running_on("g", said) == (["dom0-a"], {})
    assert placement.move("g", ["dom0-a", "dom0-b"], "dom0-b", said) == {
        "guest": "g", "from": "dom0-a", "to": "dom0-b"}
    with pytest.raises(SaltInvocationError, match="^to: g already runs on dom0-a$"):
        placement.move("g", ["dom0-a", "dom0-b"], "dom0-a", said)
    said["dom0-b"]["toolstack"] = "xm"
    with pytest.raises(SaltInvocationError, match="a live migration needs one toolstack"):
        placement.move("g", ["dom0-a", "dom0-b"], "dom0-b", said)


@pytest.mark.parametrize(("said", "message"), [
    (answers(dom0_a={"g": domain()}, dom0_b={"g": domain()}),
     "guest: g runs on dom0-a and dom0-b: nothing moves"),
    (answers(dom0_a={}, dom0_b={}),
     "guest: g runs on none of its dom0s (dom0-a, dom0-b): nothing to migrate"),
    (answers(dom0_a={"g--migratedaway": domain()}, dom0_b={"g--incoming": domain()}),
     "guest: g is being migrated or a migration of it failed (g--migratedaway on dom0-a; "
     "g--incoming on dom0-b): nothing moves"),
])
def test_no_move_from_an_unclear_place(said, message):
    with pytest.raises(SaltInvocationError) as err:
        placement.move("g", ["dom0-a", "dom0-b"], "dom0-b", said)
    assert str(err.value) == message


def test_the_target_must_be_a_guest_and_one_of_its_dom0s():
    guests = {"g": {"dom0": "dom0-a", "dom0s": ["dom0-a", "dom0-b"], "absent": False}}
    assert placement.migration_target(guests, "g", "dom0-b") is guests["g"]
    with pytest.raises(SaltInvocationError, match=r"^guest: 'h' is not a guest of the pillar"):
        placement.migration_target(guests, "h", "dom0-b")
    with pytest.raises(SaltInvocationError,
                       match=r"^to: None is not one of the dom0s of g \(dom0-a, dom0-b\)"):
        placement.migration_target(guests, "g", None)


def test_an_evacuation_sends_each_guest_home_or_to_its_next_dom0():
    guests = {
        "home-b": {"dom0": "dom0-b", "dom0s": ["dom0-b", "dom0-a"], "absent": False},
        "home-a": {"dom0": "dom0-a", "dom0s": ["dom0-a", "dom0-c", "dom0-b"], "absent": False},
        "alone": {"dom0": "dom0-a", "dom0s": ["dom0-a"], "absent": False},
        "gone": {"dom0": "dom0-b", "dom0s": ["dom0-b", "dom0-a"], "absent": True},
        "elsewhere": {"dom0": "dom0-b", "dom0s": ["dom0-b", "dom0-a"], "absent": False},
    }
    leaving = placement.evacuees(guests, "dom0-a")
    assert sorted(leaving) == ["elsewhere", "home-a", "home-b"]
    said = answers(dom0_a={"home-b": domain(), "home-a": domain()},
                   dom0_b={"elsewhere": domain()}, dom0_c={})
    assert placement.evacuation(leaving, "dom0-a", said) == [
        {"guest": "home-b", "from": "dom0-a", "to": "dom0-b"},
        {"guest": "home-a", "from": "dom0-a", "to": "dom0-c"},
    ]
    with pytest.raises(SaltInvocationError,
                       match="^evacuate: no guest with another dom0 runs on 'dom0-c'"):
        placement.evacuation(placement.evacuees(guests, "dom0-c"), "dom0-c", said)


# --- the arguments of a migration (issue 19) ---------------------------------------------


def test_check_migration_returns_the_checked_arguments():
    assert placement.check_migration("dom0-b", None, ["dom0-a", "dom0-b"], ("dom0-b",), "60",
                                     None) == {
        "to": "dom0-b", "host": "dom0-b", "address": None, "dom0s": ["dom0-a", "dom0-b"],
        "other_dom0s": ["dom0-b"], "timeout": 60, "ssh_command": None}
    assert placement.check_migration("dom0_b", "192.0.2.11")["host"] == "192.0.2.11"


@pytest.mark.parametrize(("arguments", "message"), [
    ({"to": "dom0-b", "other_dom0s": "dom0-b"}, "other_dom0s: 'dom0-b' is not a list"),
    ({"to": "dom0-b", "dom0s": "dom0-a,dom0-b"}, "dom0s: 'dom0-a,dom0-b' is not a list"),
    ({"to": "dom0-b", "dom0s": ["dom0-a", None]}, "dom0s[1]: None is not a minion id"),
    ({"to": "dom0-b\n"}, "to: 'dom0-b\\n' is not a minion id"),
    ({"to": "dom0-b", "address": "fe80::1%$(reboot)"}, "address: 'fe80::1%$(reboot)' is an "),
    ({"to": "dom0-b", "timeout": -1}, "timeout: -1 is not a whole number of seconds"),
    ({"to": "dom0-b", "ssh_command": "ssh\n"}, "ssh_command: 'ssh\\n' is not"),
])
def test_check_migration_refuses(arguments, message):
    with pytest.raises(SaltInvocationError) as err:
        placement.check_migration(**arguments)
    assert str(err.value).startswith(message)


def test_check_dom0s():
    assert placement.check_dom0s(None) is None
    assert placement.check_dom0s(("a", "b")) == ["a", "b"]
    for bad in ("ab", b"ab", {"a": 1}, 3, ["a b"], ["a\n"]):
        with pytest.raises(SaltInvocationError, match=r"^dom0s"):
            placement.check_dom0s(bad)
