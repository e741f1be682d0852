"""xen_nfsroot with guests on several dom0s: the dom0s field, the state data of
home and other dom0s, migration trust and the migration plan.

The example pillar's XenGuest has its home on dom0-a and may run on dom0-a and
dom0-b; StaticGuest lives on dom0-b alone. ``saltutil.cmd`` is a stand-in
answering for the dom0s of a :class:`Cluster`.
"""

import copy
from unittest.mock import call

import pytest
import salt.utils.yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import REPO
from tests.support.loader import MODULES, functions
from xen_nfsroot.modules import xen_nfsroot

EXAMPLE = salt.utils.yaml.safe_load((REPO / "pillar" / "xen_nfsroot.sls").read_text())
SSH = ("ssh -i /etc/xen-nfsroot/migrate_key -o BatchMode=yes -o IdentitiesOnly=yes "
       "-o UserKnownHostsFile=/etc/xen-nfsroot/known_hosts -o StrictHostKeyChecking=yes")
KEY = "xen_nfsroot-migrate-key"
TRUST = "xen_nfsroot-migrate-trust"
CONSOLE = "xen_nfsroot-console-logging"
DEFAULT_KEY = {KEY: {"xen_migrate.key": [{"name": "/etc/xen-nfsroot/migrate_key"}]}}


def domain(state="blocked"):
    return {"id": 3, "memory_mb": 256, "vcpus": 1, "state": state, "flags": "-b----",
            "time_s": 1.5}


class Cluster:
    """What each dom0 answers to ``saltutil.cmd`` (a dom0 in ``silent`` does not)."""

    def __init__(self):
        self.domains = {"dom0-a": {}, "dom0-b": {}, "dom0-c": {}}
        self.toolstacks = {"dom0-a": "xl", "dom0-b": "xl", "dom0-c": "xl"}
        self.silent = set()
        self.failing = {}
        self.calls = []

    def cmd(self, tgt, fun, tgt_type="glob", kwarg=None, timeout=None):
        self.calls.append(call(tgt=tgt, fun=fun, tgt_type=tgt_type, kwarg=kwarg,
                               timeout=timeout))
        assert tgt_type == "list"
        answers = {}
        for dom0 in tgt:
            if dom0 in self.silent:
                continue
            if dom0 in self.failing:
                answers[dom0] = {"ret": self.failing[dom0], "retcode": 1}
            elif fun == "xm.list_domains":
                assert kwarg == {"fresh": True}
                answers[dom0] = {"ret": copy.deepcopy(self.domains[dom0]), "retcode": 0}
            else:
                assert fun == "xm.toolstack"
                answers[dom0] = {"ret": self.toolstacks[dom0], "retcode": 0}
        return answers


@pytest.fixture
def pillar():
    return copy.deepcopy(EXAMPLE)


@pytest.fixture
def cluster():
    return Cluster()


@pytest.fixture
def opts():
    return {"id": "dom0-a"}


@pytest.fixture
def configure_loader_modules(pillar, cluster, opts):
    salt = functions()
    salt["saltutil.cmd"] = cluster.cmd
    loader = {module: {"__salt__": salt, "__context__": {}} for module in MODULES}
    loader[xen_nfsroot] = {"__salt__": salt, "__pillar__": pillar, "__opts__": opts,
                           "__context__": {}}
    return loader


def _guest(pillar, name="XenGuest"):
    return pillar["xen_nfsroot"]["guests"][name]


@pytest.fixture
def third(pillar):
    """Third: home dom0-b, may run on dom0-b, dom0-c and dom0-a (in that order)."""
    pillar["xen_nfsroot"]["guests"]["Third"] = {
        "nfs_server": "nfs1", "nfs_server_address": "192.0.2.1", "nfs_root": "/srv/xen/third",
        "export_clients": ["192.0.2.12"], "dom0": "dom0-b",
        "dom0s": ["dom0-b", "dom0-c", "dom0-a"], "kernel": "/boot/vmlinuz-guest",
        "vif": ["mac=00:16:3e:00:00:12"]}


@pytest.fixture
def addresses(pillar):
    pillar["xen_nfsroot"]["dom0"] = {"addresses": {"dom0-a": "192.0.2.21",
                                                   "dom0-b": "192.0.2.22"}}


# --- the dom0s field ------------------------------------------------------------------


def test_dom0s_lists_where_a_guest_may_run_and_defaults_to_its_home():
    guests = xen_nfsroot.validate()
    assert guests["XenGuest"]["dom0s"] == ["dom0-a", "dom0-b"]
    assert guests["StaticGuest"]["dom0s"] == ["dom0-b"]
    assert "dom0s" not in guests["XenGuest"]["states"]["xen_guest"]
    assert xen_nfsroot.schema()["dom0s"] == {
        "required": False, "default": None, "states": [],
        "doc": "every dom0 that may run the guest, its home among them (null: [dom0]); each "
               "gets its kernel and config, it runs on one at a time"}


def test_dom0s_from_the_defaults_section(pillar):
    pillar["xen_nfsroot"]["defaults"]["dom0s"] = ["dom0-a", "dom0-b"]
    guests = xen_nfsroot.validate()
    assert guests["StaticGuest"]["dom0s"] == ["dom0-a", "dom0-b"]
    assert guests["StaticGuest"]["dom0s"] is not guests["XenGuest"]["dom0s"]


@pytest.mark.parametrize(("value", "message"), [
    ("dom0-a", "dom0s: 'dom0-a' is not a non-empty list of minion ids"),
    ("dom0-a,dom0-b", "dom0s: 'dom0-a,dom0-b' is not a non-empty list of minion ids"),
    ([], "dom0s: [] is not a non-empty list of minion ids"),
    ({"dom0-a": True}, "dom0s: {'dom0-a': True} is not a non-empty list of minion ids"),
    (["dom0-a", "dom0-b", "dom0-a"],
     "dom0s: 'dom0-a' is listed twice in ['dom0-a', 'dom0-b', 'dom0-a']"),
    (["dom0-b", "dom0-c"],
     "dom0s: does not hold the guest's home dom0 'dom0-a', got ['dom0-b', 'dom0-c']"),
    (["dom0-a", "dom0-*"], "dom0s: 'dom0-*' is not a minion id ([A-Za-z0-9_.-]+)"),
    (["dom0-a", "L@dom0-b"], "dom0s: 'L@dom0-b' is not a minion id ([A-Za-z0-9_.-]+)"),
    (["dom0-a", ""], "dom0s: '' is not a minion id ([A-Za-z0-9_.-]+)"),
    (["dom0-a", 7], "dom0s: 7 is not a minion id ([A-Za-z0-9_.-]+)"),
    (["dom0-a", None], "dom0s: None is not a minion id ([A-Za-z0-9_.-]+)"),
])
def test_bad_dom0s_are_named_with_their_value(pillar, value, message):
    _guest(pillar)["dom0s"] = value
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.validate()
    assert str(err.value) == f"xen_nfsroot pillar: guest 'XenGuest': {message}"


def test_selection_and_roles_of_a_dom0_that_is_not_the_home():
    assert list(xen_nfsroot.guests("dom0")) == ["XenGuest"]
    assert list(xen_nfsroot.guests("dom0", minion_id="dom0-b")) == ["StaticGuest", "XenGuest"]
    assert list(xen_nfsroot.guests("dom0", minion_id="dom0-b", only="XenGuest")) == ["XenGuest"]
    assert xen_nfsroot.guests("dom0", minion_id="dom0-c") == {}
    assert xen_nfsroot.roles("dom0-b") == ["dom0"]
    assert xen_nfsroot.roles("dom0-c") == []


# --- dom0 settings: addresses and the trust's files ---------------------------------------


def test_dom0_settings_defaults():
    assert xen_nfsroot.settings("dom0") == {
        "console_logging": True, "parallel_boots": 32, "console_dir": "/var/log/xen/console",
        "xen_settings_file": "/etc/default/xen", "addresses": {},
        "migrate_key": "/etc/xen-nfsroot/migrate_key",
        "authorized_keys": "/root/.ssh/authorized_keys",
        "known_hosts": "/etc/xen-nfsroot/known_hosts",
        "migrate_wrapper": "/usr/local/sbin/xen-nfsroot-migrate-receive"}


def test_a_dom0_is_reached_at_its_address_or_its_minion_id(pillar, addresses):
    pillar["xen_nfsroot"]["dom0"]["addresses"]["dom0-c"] = "2001:DB8::3"
    assert xen_nfsroot.dom0_address("dom0-b") == "192.0.2.22"
    assert xen_nfsroot.dom0_address("dom0-c") == "2001:db8::3"
    assert xen_nfsroot.dom0_address("dom0-d") == "dom0-d"


@pytest.mark.parametrize(("dom0", "message"), [
    ({"addresses": ["192.0.2.22"]},
     "dom0: addresses: ['192.0.2.22'] is not a mapping of minion id to address"),
    ({"addresses": {"dom0-*": "192.0.2.22"}},
     "dom0: addresses: 'dom0-*' is not a minion id ([A-Za-z0-9_.-]+)"),
    ({"addresses": {"dom0-b": "192.0.2.300"}},
     "dom0: addresses:dom0-b: '192.0.2.300' is not an IP address or host name"),
    ({"addresses": {"dom0-b": "dom0 b"}},
     "dom0: addresses:dom0-b: 'dom0 b' is not an IP address or host name"),
    ({"migrate_key": "migrate_key"},
     "dom0: migrate_key: 'migrate_key' is not a normalised absolute path of [A-Za-z0-9_./+-]"),
    ({"authorized_keys": "/root/.ssh/../authorized_keys"},
     "dom0: authorized_keys: '/root/.ssh/../authorized_keys' is not a normalised absolute "
     "path"),
    ({"known_hosts": "/etc/known hosts"}, "dom0: known_hosts: '/etc/known hosts' is not a"),
    ({"migrate_wrapper": 1}, "dom0: migrate_wrapper: 1 is not a normalised absolute path"),
    ({"migrate_keys": "/k"}, "dom0: migrate_keys: unknown key, got '/k'"),
])
def test_bad_dom0_settings_are_named(pillar, dom0, message):
    pillar["xen_nfsroot"]["dom0"] = dom0
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.validate()
    assert str(err.value).startswith(f"xen_nfsroot pillar: {message}")


# --- state data of the home dom0 and of the others --------------------------------------


def _guest_args(name, **extra):
    """The guest's xen_guest arguments as state_data lists them."""
    base = dict(xen_nfsroot.guest(name)["states"]["xen_guest"], **extra)
    return [{key: value} for key, value in base.items() if value is not None]


def test_the_home_dom0_runs_the_guest_where_it_runs_nowhere_else(addresses):
    high = xen_nfsroot.state_data("dom0")
    assert list(high) == [CONSOLE, KEY, TRUST, "xen_nfsroot-guest-XenGuest"]
    assert high[KEY] == DEFAULT_KEY[KEY]
    assert high[TRUST] == {"xen_migrate.trusted": [
        {"name": "/root/.ssh/authorized_keys"}, {"peers": {"dom0-b": "192.0.2.22"}},
        {"known_hosts": "/etc/xen-nfsroot/known_hosts"},
        {"wrapper": "/usr/local/sbin/xen-nfsroot-migrate-receive"},
        {"require": [{"xen_migrate": KEY}]}]}
    args = high["xen_nfsroot-guest-XenGuest"]["xen_guest.running"]
    assert args == [*_guest_args("XenGuest", console_dir="/var/log/xen/console",
                                 other_dom0s=["dom0-b"]),
                    {"require": [{"xen_console": CONSOLE}]}]
    assert {"other_dom0s": ["dom0-b"]} in args
    assert {"name": "XenGuest"} in args


def test_the_other_dom0_configures_the_guest_and_trusts_its_home(opts, addresses):
    opts["id"] = "dom0-b"
    high = xen_nfsroot.state_data("dom0")
    assert list(high) == [CONSOLE, "xen_nfsroot-guest-StaticGuest", KEY, TRUST,
                          "xen_nfsroot-guest-XenGuest"]
    assert high[TRUST]["xen_migrate.trusted"][1] == {"peers": {"dom0-a": "192.0.2.21"}}
    args = high["xen_nfsroot-guest-XenGuest"]["xen_guest.configured"]
    wanted = {key: value for key, value in xen_nfsroot.guest("XenGuest")["states"]["xen_guest"]
              .items() if key not in ("restart_on_change", "boot_timeout", "boot_marker")}
    assert args == [{key: value} for key, value in wanted.items() if value is not None]
    keys = {key for arg in args for key in arg}
    assert not keys & {"other_dom0s", "console_dir", "retry", "restart_on_change", "require"}
    assert list(high["xen_nfsroot-guest-StaticGuest"]) == ["xen_guest.configured"]


def test_a_boot_on_the_other_dom0_boots_only_its_own_guests(opts):
    opts["id"] = "dom0-b"
    high = xen_nfsroot.state_data("dom0", boot=True)
    assert list(high["xen_nfsroot-guest-XenGuest"]) == ["xen_guest.configured"]
    static = high["xen_nfsroot-guest-StaticGuest"]["xen_guest.running"]
    assert not any("other_dom0s" in arg for arg in static)
    assert {"console_dir": "/var/log/xen/console"} in static


def test_a_guest_of_one_dom0_gets_no_trust_and_no_other_dom0s(pillar):
    del _guest(pillar)["dom0s"]
    high = xen_nfsroot.state_data("dom0")
    assert list(high) == [CONSOLE, "xen_nfsroot-guest-XenGuest"]
    args = high["xen_nfsroot-guest-XenGuest"]["xen_guest.running"]
    assert args == [*_guest_args("XenGuest", console_dir="/var/log/xen/console"),
                    {"require": [{"xen_console": CONSOLE}]}]
    assert xen_nfsroot.migration_peers() == {}


def test_an_absent_guest_is_removed_from_every_dom0_and_trusts_nobody(pillar, opts):
    _guest(pillar)["absent"] = True
    for dom0 in ("dom0-a", "dom0-b"):
        opts["id"] = dom0
        high = xen_nfsroot.state_data("dom0")
        assert high["xen_nfsroot-guest-XenGuest"] == {"xen_guest.absent": [{"name": "XenGuest"}]}
        assert KEY not in high
        assert TRUST not in high
    assert xen_nfsroot.migration_peers("dom0-a") == {}


def test_the_trust_spans_every_guest_not_only_the_selected_one(third, addresses):
    assert xen_nfsroot.migration_peers() == {"dom0-b": "192.0.2.22", "dom0-c": "dom0-c"}
    assert xen_nfsroot.migration_peers("dom0-c") == {"dom0-a": "192.0.2.21",
                                                     "dom0-b": "192.0.2.22"}
    assert xen_nfsroot.migration_peers("dom0-b") == {"dom0-a": "192.0.2.21", "dom0-c": "dom0-c"}
    assert xen_nfsroot.migration_peers("dom0-z") == {}
    high = xen_nfsroot.state_data("dom0", only="XenGuest")
    assert list(high) == [CONSOLE, KEY, TRUST, "xen_nfsroot-guest-XenGuest"]
    assert high[TRUST]["xen_migrate.trusted"][1] == {
        "peers": {"dom0-b": "192.0.2.22", "dom0-c": "dom0-c"}}
    third_only = xen_nfsroot.state_data("dom0", only="Third")
    assert list(third_only["xen_nfsroot-guest-Third"]) == ["xen_guest.configured"]
    assert third_only[TRUST] == high[TRUST]


def test_the_trust_states_follow_the_dom0_settings(pillar):
    pillar["xen_nfsroot"]["dom0"] = {
        "migrate_key": "/etc/xen-nfsroot/key2", "authorized_keys": "/root/.ssh/keys2",
        "known_hosts": "/etc/xen-nfsroot/hosts2", "migrate_wrapper": "/usr/sbin/receive2"}
    high = xen_nfsroot.state_data("dom0")
    assert high[KEY] == {"xen_migrate.key": [{"name": "/etc/xen-nfsroot/key2"}]}
    assert high[TRUST] == {"xen_migrate.trusted": [
        {"name": "/root/.ssh/keys2"}, {"peers": {"dom0-b": "dom0-b"}},
        {"known_hosts": "/etc/xen-nfsroot/hosts2"}, {"wrapper": "/usr/sbin/receive2"},
        {"require": [{"xen_migrate": KEY}]}]}
    assert xen_nfsroot.state_data("migrate_key") == {
        KEY: {"xen_migrate.key": [{"name": "/etc/xen-nfsroot/key2"}]}}


def test_the_migrate_key_state_data():
    assert xen_nfsroot.state_data("migrate_key") == DEFAULT_KEY


# --- state data of one migration -----------------------------------------------------------


MIGRATION = {"from": "dom0-a", "to": "dom0-b"}


def test_the_source_migrates_the_guest_to_the_targets_address(addresses):
    high = xen_nfsroot.state_data("migrate", migration=MIGRATION, only="XenGuest")
    assert high == {"xen_nfsroot-migrate-XenGuest": {"xen_guest.migrated": [
        {"name": "XenGuest"}, {"to": "dom0-b"}, {"address": "192.0.2.22"},
        {"ssh_command": SSH}, {"dom0s": ["dom0-a", "dom0-b"]}, {"other_dom0s": ["dom0-b"]}]}}


def test_the_source_uses_the_formulas_key_and_known_hosts_and_the_toolstack(pillar):
    pillar["xen_nfsroot"]["dom0"] = {"migrate_key": "/etc/xen-nfsroot/key2",
                                     "known_hosts": "/etc/xen-nfsroot/hosts2"}
    _guest(pillar)["toolstack"] = "xl"
    high = xen_nfsroot.state_data("migrate", migration=MIGRATION, only="XenGuest")
    assert high["xen_nfsroot-migrate-XenGuest"]["xen_guest.migrated"] == [
        {"name": "XenGuest"}, {"to": "dom0-b"}, {"address": "dom0-b"},
        {"ssh_command": SSH.replace("migrate_key", "key2").replace("known_hosts", "hosts2")},
        {"dom0s": ["dom0-a", "dom0-b"]}, {"other_dom0s": ["dom0-b"]}, {"toolstack": "xl"}]


def test_the_target_receives_the_guest(opts, addresses):
    opts["id"] = "dom0-b"
    high = xen_nfsroot.state_data("migrate", migration=MIGRATION, only="XenGuest")
    assert high == {"xen_nfsroot-migrate-XenGuest": {"xen_guest.received": [
        {"name": "XenGuest"}, {"source": "dom0-a"}, {"other_dom0s": ["dom0-a"]}]}}


def test_a_dom0_neither_source_nor_target_gets_nothing(opts, third):
    opts["id"] = "dom0-c"
    assert xen_nfsroot.state_data("migrate", migration=MIGRATION, only="Third") == {}
    assert xen_nfsroot.state_data("migrate", migration=MIGRATION, only="XenGuest") == {}


@pytest.mark.parametrize("migration", [None, "dom0-b", ["dom0-a", "dom0-b"]])
def test_a_migration_that_is_not_a_mapping_is_an_error(migration):
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.state_data("migrate", migration=migration, only="XenGuest")
    assert str(err.value) == f"migration: {migration!r} is not {{from, to}}"


def test_the_roles_of_state_data_are_named():
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.state_data("migration")
    assert str(err.value) == ("role: expected server, dom0, mounted, migrate or migrate_key, "
                              "got 'migration'")


# --- ask_dom0s ------------------------------------------------------------------------------


def test_the_dom0s_are_asked_for_their_domains_and_toolstack(cluster):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.toolstacks["dom0-b"] = "xm"
    assert xen_nfsroot.ask_dom0s(["dom0-a", "dom0-b"]) == {
        "dom0-a": {"domains": {"XenGuest": domain()}, "toolstack": "xl"},
        "dom0-b": {"domains": {}, "toolstack": "xm"}}
    assert cluster.calls == [
        call(tgt=["dom0-a", "dom0-b"], fun="xm.list_domains", tgt_type="list",
             kwarg={"fresh": True}, timeout=60),
        call(tgt=["dom0-a", "dom0-b"], fun="xm.toolstack", tgt_type="list", kwarg={},
             timeout=60)]


def test_a_dom0_that_does_not_answer_is_named(cluster):
    cluster.silent.add("dom0-b")
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.ask_dom0s(("dom0-a", "dom0-b"))
    assert str(err.value) == "dom0 dom0-b did not answer xm.list_domains: nothing moves"


def test_a_dom0_that_answers_an_error_is_named_with_it(cluster):
    cluster.failing["dom0-a"] = "ERROR: xl is installed but not answering"
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.ask_dom0s(["dom0-a", "dom0-b"])
    assert str(err.value) == ("dom0 dom0-a did not answer xm.list_domains: ERROR: xl is "
                              "installed but not answering: nothing moves")


# --- the migration plan ------------------------------------------------------------------


def test_a_migration_plan_moves_the_guest_from_where_it_runs(cluster):
    cluster.domains["dom0-a"] = {"Domain-0": domain("running"), "XenGuest": domain()}
    plan = xen_nfsroot.migration_plan(guest="XenGuest", to="dom0-b")
    assert plan == [{"guest": "XenGuest", "from": "dom0-a", "to": "dom0-b"}]
    assert [c.kwargs["tgt"] for c in cluster.calls] == [["dom0-a", "dom0-b"]] * 2


def test_a_migration_plan_back_to_the_home(cluster):
    cluster.domains["dom0-b"] = {"XenGuest": domain("paused")}
    assert xen_nfsroot.migration_plan(guest="XenGuest", to="dom0-a") == [
        {"guest": "XenGuest", "from": "dom0-b", "to": "dom0-a"}]


@pytest.mark.parametrize(("asked", "message"), [
    ({"guest": "XenGuest", "to": "dom0-c"},
     "to: 'dom0-c' is not one of the dom0s of XenGuest (dom0-a, dom0-b)"),
    ({"guest": "XenGuest", "to": None},
     "to: None is not one of the dom0s of XenGuest (dom0-a, dom0-b)"),
    ({"guest": "XenGuest"}, "to: None is not one of the dom0s of XenGuest (dom0-a, dom0-b)"),
    ({"guest": "StaticGuest", "to": "dom0-a"},
     "to: 'dom0-a' is not one of the dom0s of StaticGuest (dom0-b)"),
    ({"guest": "NoSuchGuest", "to": "dom0-b"}, "guest: 'NoSuchGuest' is not a guest of the pillar"),
    ({"guest": ["XenGuest"], "to": "dom0-b"}, "guest: ['XenGuest'] is not a guest of the pillar"),
    ({}, "guest: None is not a guest of the pillar"),
    ({"evacuate": "dom0-a", "guest": "XenGuest"},
     "evacuate: give either evacuate or guest and to, not both"),
    ({"evacuate": "dom0-a", "to": "dom0-b"},
     "evacuate: give either evacuate or guest and to, not both"),
    ({"evacuate": "dom0-*"}, "evacuate: 'dom0-*' is not a minion id ([A-Za-z0-9_.-]+)"),
])
def test_bad_input_asks_no_dom0(cluster, asked, message):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.migration_plan(**asked)
    assert str(err.value) == message
    assert cluster.calls == []


@pytest.mark.parametrize(("domains", "to", "message"), [
    ({}, "dom0-b",
     "guest: XenGuest runs on none of its dom0s (dom0-a, dom0-b): nothing to migrate"),
    ({"dom0-a": {"XenGuest": domain("crashed")}}, "dom0-b",
     "guest: XenGuest runs on none of its dom0s (dom0-a, dom0-b): nothing to migrate"),
    ({"dom0-a": {"XenGuest": domain()}, "dom0-b": {"XenGuest": domain("running")}}, "dom0-b",
     "guest: XenGuest runs on dom0-a and dom0-b: nothing moves"),
    ({"dom0-a": {"XenGuest--migratedaway": domain("paused")},
      "dom0-b": {"XenGuest--incoming": domain("paused")}}, "dom0-b",
     "guest: XenGuest is being migrated or a migration of it failed (XenGuest--migratedaway on "
     "dom0-a; XenGuest--incoming on dom0-b): nothing moves"),
    ({"dom0-a": {"XenGuest": domain()}, "dom0-b": {"XenGuest--incoming": domain("paused")}},
     "dom0-b", "guest: XenGuest is being migrated or a migration of it failed "
               "(XenGuest--incoming on dom0-b): nothing moves"),
    ({"dom0-a": {"XenGuest": domain()}}, "dom0-a", "to: XenGuest already runs on dom0-a"),
])
def test_a_migration_plan_needs_the_guest_running_once(cluster, domains, to, message):
    cluster.domains.update(domains)
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.migration_plan(guest="XenGuest", to=to)
    assert str(err.value) == message


@pytest.mark.parametrize("fault", ["silent", "failing"])
def test_a_migration_plan_with_a_dom0_that_does_not_answer(cluster, fault):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    if fault == "silent":
        cluster.silent.add("dom0-b")
        shown = ""
    else:
        cluster.failing["dom0-b"] = "'xm.list_domains' is not available."
        shown = ": 'xm.list_domains' is not available."
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.migration_plan(guest="XenGuest", to="dom0-b")
    assert str(err.value) == f"dom0 dom0-b did not answer xm.list_domains{shown}: nothing moves"


def test_a_migration_plan_with_a_dom0_silent_on_its_toolstack(cluster):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    original = cluster.cmd

    def cmd(tgt, fun, **kwargs):
        answers = original(tgt, fun, **kwargs)
        if fun == "xm.toolstack":
            answers.pop("dom0-b")
        return answers

    xen_nfsroot.__salt__["saltutil.cmd"] = cmd
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.migration_plan(guest="XenGuest", to="dom0-b")
    assert str(err.value) == "dom0 dom0-b did not answer xm.toolstack: nothing moves"


def test_a_migration_plan_needs_one_toolstack(cluster):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.toolstacks["dom0-b"] = "xm"
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.migration_plan(guest="XenGuest", to="dom0-b")
    assert str(err.value) == ("to: dom0-b runs xm, dom0-a runs xl: a live migration needs one "
                              "toolstack")


# --- evacuation ----------------------------------------------------------------------------


def test_evacuating_the_home_moves_the_guest_to_its_next_dom0(cluster):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    assert xen_nfsroot.migration_plan(evacuate="dom0-a") == [
        {"guest": "XenGuest", "from": "dom0-a", "to": "dom0-b"}]
    assert [c.kwargs["tgt"] for c in cluster.calls] == [["dom0-a", "dom0-b"]] * 2


def test_evacuating_another_dom0_brings_the_guests_home(cluster, third):
    cluster.domains["dom0-b"] = {"XenGuest": domain(), "Third": domain(),
                                 "StaticGuest": domain()}
    assert xen_nfsroot.migration_plan(evacuate="dom0-b") == [
        {"guest": "Third", "from": "dom0-b", "to": "dom0-c"},
        {"guest": "XenGuest", "from": "dom0-b", "to": "dom0-a"}]
    assert [c.kwargs["tgt"] for c in cluster.calls] == [["dom0-a", "dom0-b", "dom0-c"]] * 2


def test_evacuating_moves_only_what_runs_there(cluster, third):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.domains["dom0-c"] = {"Third": domain()}
    assert xen_nfsroot.migration_plan(evacuate="dom0-c") == [
        {"guest": "Third", "from": "dom0-c", "to": "dom0-b"}]


@pytest.mark.parametrize("evacuate", ["dom0-b", "dom0-z"])
def test_evacuating_a_dom0_that_runs_nothing_is_an_error(cluster, evacuate):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.domains["dom0-b"] = {"StaticGuest": domain()}
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.migration_plan(evacuate=evacuate)
    assert str(err.value) == (f"evacuate: no guest with another dom0 runs on {evacuate!r}: "
                              "nothing to move")


def test_evacuating_with_a_dom0_that_does_not_answer(cluster):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.silent.add("dom0-b")
    with pytest.raises(CommandExecutionError) as err:
        xen_nfsroot.migration_plan(evacuate="dom0-a")
    assert str(err.value) == "dom0 dom0-b did not answer xm.list_domains: nothing moves"


def test_evacuating_needs_one_toolstack(cluster):
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.toolstacks["dom0-b"] = "xm"
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.migration_plan(evacuate="dom0-a")
    assert str(err.value) == ("to: dom0-b runs xm, dom0-a runs xl: a live migration needs one "
                              "toolstack")


def test_evacuating_ignores_an_absent_guest(cluster, pillar):
    _guest(pillar)["absent"] = True
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    with pytest.raises(SaltInvocationError, match="no guest with another dom0 runs on 'dom0-a'"):
        xen_nfsroot.migration_plan(evacuate="dom0-a")


def test_evacuating_a_dom0_whose_guest_also_runs_elsewhere_is_refused(cluster, third):
    """XenGuest runs on dom0-a and on dom0-b: evacuating dom0-b must not leave
    it there unmentioned while Third moves (the guest runs exactly once, on
    the source, before anything moves)."""
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.domains["dom0-b"] = {"XenGuest": domain(), "Third": domain()}
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.migration_plan(evacuate="dom0-b")
    assert str(err.value) == "guest: XenGuest runs on dom0-a and dom0-b: nothing moves"


def test_evacuating_a_dom0_holding_a_migrations_leftover_is_refused(cluster, third):
    """dom0-b holds XenGuest--incoming (a failed migration's leftover) while
    XenGuest runs on dom0-a: an evacuation of dom0-b reports it instead of
    moving Third alone."""
    cluster.domains["dom0-a"] = {"XenGuest": domain()}
    cluster.domains["dom0-b"] = {"XenGuest--incoming": domain("paused"), "Third": domain()}
    with pytest.raises(SaltInvocationError) as err:
        xen_nfsroot.migration_plan(evacuate="dom0-b")
    assert str(err.value) == ("guest: XenGuest is being migrated or a migration of it failed "
                              "(XenGuest--incoming on dom0-b): nothing moves")
