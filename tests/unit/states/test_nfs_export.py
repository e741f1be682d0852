"""nfs_export states with a mocked loader.

The state's ``__salt__`` holds the real exportfs functions (sharing one
``__context__``, as in a state run) working on temporary files; only
``cmd.run_all`` is the shared fake, so every exportfs process is counted.
"""

import inspect
from unittest.mock import patch

import pytest

from tests.support.commands import result
from tests.support.exportfs import CommandsInTurn
from xen_nfsroot.modules import exportfs
from xen_nfsroot.states import nfs_export
from xen_nfsroot_lib import exports as exports_format

SEED_OPTIONS = ["rw", "no_root_squash", "async", "no_subtree_check"]
SEED = [{"hosts": "192.0.2.10", "options": SEED_OPTIONS}]
SEED_TEXT = "192.0.2.10(rw,no_root_squash,async,no_subtree_check)"
LISTED = (
    "/xen          \t192.0.2.10(async,wdelay,hide,no_subtree_check,sec=sys,rw,"
    "no_root_squash,no_all_squash)\n"
)


def ok(stdout="", stderr=""):
    return result(0, stdout, stderr)


@pytest.fixture
def run_all():
    return CommandsInTurn().answer(["exportfs"], stdout=LISTED)


@pytest.fixture
def context():
    return {}


@pytest.fixture
def configure_loader_modules(run_all, context):
    functions = {
        f"exportfs.{name}": getattr(exportfs, name)
        for name in ("add", "remove", "reload", "check_active", "list_configured")
    }
    functions["cmd.run_all"] = run_all
    return {
        exportfs: {"__salt__": functions, "__opts__": {"test": False}, "__context__": context},
        nfs_export: {"__salt__": functions, "__opts__": {"test": False}, "__context__": context},
    }


@pytest.fixture
def exports(tmp_path, monkeypatch):
    monkeypatch.setattr(exports_format, "DEFAULT_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setattr(exports_format, "EXPORTS_D", str(tmp_path / "exports.d"))
    path = tmp_path / "exports"
    path.write_text("# hand made\n/srv/a 192.0.2.1(rw)\n")
    return path


def new_run(context):
    """A new state run: a fresh __context__."""
    context.clear()


def spawned(run_all):
    return [argv[1:] for argv in run_all.argv()]


def test_virtual_needs_the_exportfs_module():
    assert nfs_export.__virtual__() == "nfs_export"
    with patch.dict(nfs_export.__salt__, {}, clear=True):
        loaded, reason = nfs_export.__virtual__()
    assert loaded is False
    assert "exportfs execution module" in reason


def test_present_adds_reloads_and_verifies(exports, run_all):
    ret = nfs_export.present("/xen", hosts="192.0.2.10", options=SEED_OPTIONS,
                             exports=str(exports))
    assert ret["result"] is True
    assert ret["changes"] == {"old": None, "new": SEED}
    assert ret["comment"] == (
        f"Added export /xen for {SEED_TEXT} to {exports}. "
        "Applied with exportfs -ra; exportfs -v lists /xen for 192.0.2.10."
    )
    assert exports.read_text() == f"# hand made\n/srv/a 192.0.2.1(rw)\n/xen {SEED_TEXT}\n"
    assert spawned(run_all) == [["-ra"], ["-v"]]


def test_second_run_changes_nothing_and_only_lists_the_exports(exports, run_all, context):
    nfs_export.present("/xen", clients=SEED, exports=str(exports))
    new_run(context)
    run_all.calls.clear()
    ret = nfs_export.present(
        "/xen", hosts="192.0.2.10",
        options=["no_subtree_check", "async", "no_root_squash", "rw", "wdelay"],
        exports=str(exports),
    )
    assert ret == {
        "name": "/xen",
        "changes": {},
        "result": True,
        "comment": "Export /xen for 192.0.2.10 is already present",
    }
    assert spawned(run_all) == [["-v"]]


def test_omitted_options_converge(exports, run_all, context):
    run_all.answer(["exportfs"], stdout="/srv/pub      \t<world>(sync,wdelay,hide,"
                   "no_subtree_check,sec=sys,ro,secure,root_squash,no_all_squash)\n")
    first = nfs_export.present("/srv/pub", hosts="*", exports=str(exports))
    assert first["changes"]["new"] == [{"hosts": "*", "options": []}]
    assert exports.read_text().endswith("/srv/pub *()\n")
    new_run(context)
    assert nfs_export.present("/srv/pub", hosts="*", exports=str(exports))["changes"] == {}


def test_test_mode_predicts_and_changes_nothing(tmp_path, exports, run_all):
    missing = tmp_path / "exports.d" / "xen_nfsroot.exports"
    with patch.dict(nfs_export.__opts__, {"test": True}):
        ret = nfs_export.present("/xen", clients=SEED, exports=str(missing))
        assert ret["result"] is None
        assert ret["changes"] == {"old": None, "new": SEED}
        assert ret["comment"] == (
            f"Would have added export /xen for {SEED_TEXT} to {missing} (creating the file). "
            "Would then run exportfs -ra."
        )
        update = nfs_export.present("/srv/a", hosts="192.0.2.1", options=["ro"],
                                    exports=str(exports), reload=False)
        assert update["comment"] == (
            f"Would have updated export /srv/a in {exports} to 192.0.2.1(ro) "
            "(was 192.0.2.1(rw)). exportfs -ra is left to nfs_export.reloaded."
        )
        gone = nfs_export.absent("/srv/a", exports=str(exports), reload=False)
        assert gone["comment"] == (
            f"Would have removed export /srv/a (192.0.2.1(rw)) from {exports}. "
            "exportfs -ra is left to nfs_export.reloaded."
        )
        reloaded = nfs_export.reloaded("exports")
        assert reloaded["result"] is None
        assert reloaded["comment"] == "Would have run exportfs -ra to apply the changes to /srv/a"
        assert nfs_export.reloaded("exports")["result"] is True
    assert not missing.parent.exists()
    assert exports.read_text() == "# hand made\n/srv/a 192.0.2.1(rw)\n"
    assert run_all.calls == []


def test_update_rewrites_the_line(exports, run_all):
    ret = nfs_export.present(
        "/srv/a", clients=[{"hosts": "192.0.2.1", "options": ["ro"]}], exports=str(exports),
        reload=False,
    )
    assert ret["changes"] == {
        "old": [{"hosts": "192.0.2.1", "options": ["rw"]}],
        "new": [{"hosts": "192.0.2.1", "options": ["ro"]}],
    }
    assert ret["comment"] == (
        f"Updated export /srv/a in {exports} to 192.0.2.1(ro) (was 192.0.2.1(rw)). "
        "Not in effect yet: exportfs -ra is left to nfs_export.reloaded."
    )
    assert exports.read_text() == "# hand made\n/srv/a 192.0.2.1(ro)\n"
    assert run_all.calls == []


def test_deferred_exports_cost_one_reload(exports, run_all, context):
    for index in range(5):
        ret = nfs_export.present(f"/srv/g{index}", hosts=f"10.0.0.{index}",
                                 exports=str(exports), reload=False)
        assert ret["result"] is True
    nfs_export.absent("/srv/a", exports=str(exports), reload=False)
    assert run_all.calls == []
    ret = nfs_export.reloaded("exports applied")
    assert spawned(run_all) == [["-ra"], ["-v"]]
    assert ret["changes"]["reloaded"] == [f"/srv/g{index}" for index in range(5)] + ["/srv/a"]
    assert "/srv/a not exported" in ret["comment"]
    assert ret["result"] is False  # the mocked exportfs -v lists none of the guests
    assert "exportfs -v does not list /srv/g0 for 10.0.0.0" in ret["comment"]
    again = nfs_export.reloaded("exports applied")
    assert again == {
        "name": "exports applied",
        "changes": {},
        "result": True,
        "comment": "No export changed in this run: exportfs -ra is not needed",
    }
    assert len(run_all.calls) == 2


def test_rejected_reload_restores_the_file_and_fails(exports, run_all):
    before = exports.read_bytes()
    run_all.answer_in_turn(
        ["exportfs"], result(1, "", "exportfs: Failed to stat /xen: No such file"), ok(),
    )
    ret = nfs_export.present("/xen", clients=SEED, exports=str(exports))
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"] == (
        f"Added export /xen for {SEED_TEXT} to {exports}. exportfs -ra failed with exit "
        "code 1: exportfs: Failed to stat /xen: No such file; restored "
        f"{exports} to the contents before this run"
    )
    assert exports.read_bytes() == before


def test_absent(exports, run_all, context):
    ret = nfs_export.absent("/srv/a", exports=str(exports))
    assert ret["changes"] == {"old": [{"hosts": "192.0.2.1", "options": ["rw"]}], "new": None}
    assert ret["comment"].startswith(
        f"Removed export /srv/a (192.0.2.1(rw)) from {exports}. Applied with exportfs -ra"
    )
    assert exports.read_text() == "# hand made\n"
    new_run(context)
    again = nfs_export.absent("/srv/a", exports=str(exports))
    assert again["comment"] == f"Export /srv/a is already absent from {exports}"
    assert again["changes"] == {}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"clients": [{"hosts": "192.0.2.10", "options": ["rw", "rwx"]}]},
         "clients[0].options[1]: unknown export option 'rwx'"),
        ({"hosts": "192.0.2.10 (rw)"}, "hosts: '192.0.2.10 (rw)' has whitespace before '('"),
        ({"name": "/xen\n/etc", "hosts": "192.0.2.10"}, "contains a newline"),
        ({"name": "xen", "hosts": "192.0.2.10"}, "name: 'xen' is not an absolute path"),
        ({"hosts": "*", "options": ["rw", "no_root_squash"]},
         "refusing to export /xen to '*' with no_root_squash: every host matching '*' would "
         "get root access"),
        ({"clients": "192.0.2.10(rw)"}, "clients: expected a list of {hosts, options}"),
        ({"clients": [{"hosts": "192.0.2.10"}], "hosts": "192.0.2.11"}, "not both"),
        ({}, "Either 'clients' or 'hosts' must be defined"),
    ],
)
def test_bad_input_fails_before_writing(exports, run_all, arguments, message):
    before = exports.stat()
    arguments = {"name": "/xen", **arguments}
    ret = nfs_export.present(exports=str(exports), **arguments)
    assert ret["result"] is False
    assert message in ret["comment"]
    assert ret["changes"] == {}
    assert exports.read_text() == "# hand made\n/srv/a 192.0.2.1(rw)\n"
    assert exports.stat().st_mtime_ns == before.st_mtime_ns
    assert run_all.calls == []


def test_world_root_is_allowed_on_request(exports):
    ret = nfs_export.present("/srv/lab", hosts="*", options=["rw", "no_root_squash"],
                             exports=str(exports), reload=False, allow_world_root=True)
    assert ret["result"] is True


def test_mod_watch_reloads_even_without_changes(exports, run_all):
    run_all.answer(["exportfs"], stdout="/srv/a        \t192.0.2.1(sync,wdelay,hide,"
                   "no_subtree_check,sec=sys,rw,secure,root_squash,no_all_squash)\n")
    ret = nfs_export.mod_watch("exports applied", sfun="reloaded")
    assert spawned(run_all) == [["-ra"]]
    assert ret["result"] is True
    assert ret["comment"] == "Applied with exportfs -ra."
    ret = nfs_export.mod_watch("/srv/a", sfun="present", hosts="192.0.2.1", options=["rw"],
                               exports=str(exports), __id__="x", fun="present")
    assert spawned(run_all) == [["-ra"], ["-v"], ["-ra"]]
    assert ret["result"] is True
    assert ret["comment"] == (
        "Export /srv/a for 192.0.2.1 is already present. Applied with exportfs -ra."
    )
    assert nfs_export.mod_watch("x", sfun="other")["result"] is False

def test_a_watch_and_reloaded_predict_their_reload_in_test_mode(exports, run_all, context):
    run_all.answer(["exportfs"], stdout="/srv/a        \t192.0.2.1(sync,wdelay,hide,"
                   "no_subtree_check,sec=sys,rw,secure,root_squash,no_all_squash)\n")
    with patch.dict(nfs_export.__opts__, {"test": True}):
        ret = nfs_export.mod_watch("/srv/a", sfun="present", hosts="192.0.2.1", options=["rw"],
                                   exports=str(exports))
        assert ret["result"] is None
        assert ret["comment"] == ("Export /srv/a for 192.0.2.1 is already present. "
                                  "Would then run exportfs -ra.")
        nfs_export.present("/srv/b", hosts="192.0.2.2", exports=str(exports), reload=False)
        ret = nfs_export.reloaded("exports applied")
        assert (ret["result"], ret["changes"]) == (None, {"reloaded": ["/srv/b"]})
        nfs_export.present("/srv/c", hosts="192.0.2.3", exports=str(exports), reload=False)
        failed = nfs_export.mod_watch("/srv/d", sfun="present", hosts="192.0.2.4 (rw)",
                                      exports=str(exports))
        assert failed["result"] is False
        assert failed["comment"].endswith("Would then run exportfs -ra for /srv/c.")
    assert spawned(run_all) == [["-v"]]
    assert exports.read_text() == "# hand made\n/srv/a 192.0.2.1(rw)\n"



# --- the live export table ------------------------------------------------------------


def test_an_export_missing_from_the_live_table_is_applied_again(exports, run_all, context):
    exports.write_text(f"/xen {SEED_TEXT}\n")
    run_all.answer(["exportfs"], stdout="")  # after exportfs -ua: nothing exported
    with patch.dict(nfs_export.__opts__, {"test": True}):
        predicted = nfs_export.present("/xen", clients=SEED, exports=str(exports))
    assert predicted["result"] is None
    assert predicted["changes"] == {"active": {
        "old": "exportfs -v does not list /xen for 192.0.2.10", "new": SEED_TEXT}}
    assert predicted["comment"] == (
        f"Export /xen for 192.0.2.10 is in {exports} but not active (exportfs -v does not "
        "list /xen for 192.0.2.10): would apply it again. Would then run exportfs -ra."
    )
    assert spawned(run_all) == [["-v"]]
    new_run(context)
    run_all.calls.clear()
    run_all.answer_in_turn(["exportfs"], ok(stdout=""), ok(), ok(stdout=LISTED))
    ret = nfs_export.present("/xen", clients=SEED, exports=str(exports))
    assert ret["result"] is True
    assert ret["changes"] == predicted["changes"]
    assert ret["comment"].endswith(
        "applying it again. Applied with exportfs -ra; exportfs -v lists /xen for 192.0.2.10."
    )
    assert spawned(run_all) == [["-v"], ["-ra"], ["-v"]]
    assert exports.read_text() == f"/xen {SEED_TEXT}\n"


def test_an_absent_export_still_active_is_withdrawn(exports, run_all):
    exports.write_text("")
    run_all.answer_in_turn(["exportfs"], ok(stdout=LISTED), ok(), ok(stdout=""))
    ret = nfs_export.absent("/xen", exports=str(exports))
    assert ret["result"] is True
    assert ret["changes"]["active"]["new"] is None
    assert ret["comment"].startswith(
        f"Export /xen is absent from {exports} but still active (exportfs -v still lists /xen "
        "for 192.0.2.10(async,")
    assert ret["comment"].endswith("withdrawing it. Applied with exportfs -ra; exportfs -v "
                                   "lists /xen not exported.")


def chunk(identifier, name, fun="present", **arguments):
    return {"state": "nfs_export", "__id__": identifier, "name": name, "fun": fun, **arguments}


def run_chunks(chunks, exports, test=False):
    """Call each chunk's state function as a Salt run would, with __low__,
    __lowstate__ and __running__ injected."""
    running = {}
    returns = []
    for low in chunks:
        function = getattr(nfs_export, low["fun"])
        accepted = inspect.signature(function).parameters
        arguments = {key: value for key, value in low.items()
                     if key in accepted and key != "name"}
        injected = {"__low__": low, "__lowstate__": chunks, "__running__": dict(running)}
        with patch.multiple(nfs_export, create=True, **injected), \
                patch.dict(nfs_export.__opts__, {"test": test}):
            ret = function(low["name"], exports=str(exports), **arguments)
        running[nfs_export._tag(low)] = ret
        returns.append(ret)
    return returns


def test_a_run_of_3007_style_states_reloads_once(exports, run_all):
    chunks = [chunk(f"export-{index}", f"/srv/g{index}", hosts=f"10.0.0.{index}")
              for index in range(4)]
    listing = "".join(f"{f'/srv/g{index}':<14}\t10.0.0.{index}(sync,wdelay,hide,"
                      "no_subtree_check,sec=sys,ro,secure,root_squash,no_all_squash)\n"
                      for index in range(4))
    run_all.answer(["exportfs"], stdout=listing)
    returns = run_chunks(chunks, exports)
    assert spawned(run_all) == [["-ra"], ["-v"]]
    for ret in returns[:3]:
        assert ret["result"] is True
        assert ret["comment"].endswith("exportfs -ra is left to the exports state export-3 of "
                                       "this run.")
    assert returns[3]["comment"].endswith(
        "Applied with exportfs -ra; exportfs -v lists /srv/g0 for 10.0.0.0, /srv/g1 for "
        "10.0.0.1, /srv/g2 for 10.0.0.2, /srv/g3 for 10.0.0.3.")


def test_the_reload_is_not_left_to_a_state_that_may_not_run(exports, run_all):
    chunks = [chunk("first", "/srv/g0", hosts="10.0.0.0"),
              chunk("second", "/srv/g1", hosts="10.0.0.1", require=[{"file": "x"}]),
              chunk("third", "/srv/g2", hosts="10.0.0.2", onlyif="true")]
    returns = run_chunks(chunks, exports)
    assert spawned(run_all) == [["-ra"], ["-v"]] * 3
    assert all("Applied with exportfs -ra" in ret["comment"] for ret in returns)


def test_a_failing_last_state_still_reloads_for_the_others(exports, run_all):
    chunks = [chunk("first", "/srv/g0", hosts="10.0.0.0"),
              chunk("last", "/srv/g1", hosts="10.0.0.1 (rw)")]
    listing = ("/srv/g0       \t10.0.0.0(sync,wdelay,hide,no_subtree_check,sec=sys,ro,secure,"
               "root_squash,no_all_squash)\n")
    run_all.answer(["exportfs"], stdout=listing)
    first, last = run_chunks(chunks, exports)
    assert first["comment"].endswith("exportfs -ra is left to the exports state last of this "
                                     "run.")
    assert last["result"] is False
    assert last["comment"].startswith("hosts: '10.0.0.1 (rw)' has whitespace before '('")
    assert last["comment"].endswith("Applied with exportfs -ra; exportfs -v lists /srv/g0 for "
                                    "10.0.0.0.")
    assert spawned(run_all) == [["-ra"], ["-v"]]


def test_failhard_keeps_every_state_reloading_itself(exports, run_all):
    chunks = [chunk("first", "/srv/g0", hosts="10.0.0.0"),
              chunk("second", "/srv/g1", hosts="10.0.0.1", failhard=True)]
    run_chunks(chunks, exports)
    assert spawned(run_all) == [["-ra"], ["-v"]] * 2


def test_test_mode_predicts_the_shared_reload(exports, run_all):
    chunks = [chunk(f"export-{index}", f"/srv/g{index}", hosts=f"10.0.0.{index}")
              for index in range(3)]
    returns = run_chunks(chunks, exports, test=True)
    assert [ret["result"] for ret in returns] == [None, None, None]
    assert returns[0]["comment"].endswith("left to the exports state export-2 of this run.")
    assert returns[2]["comment"].endswith("Would then run exportfs -ra (for /srv/g0, /srv/g1 "
                                          "too).")
    assert run_all.calls == []
    assert exports.read_text() == "# hand made\n/srv/a 192.0.2.1(rw)\n"


def test_a_failed_shared_reload_names_every_export_it_left_out_of_effect(exports, run_all):
    """The states that left the reload to a later one say their exports are
    not in effect yet; the one whose reload fails names each of them."""
    chunks = [chunk("guest a", "/srv/g0", hosts="10.0.0.0"),
              chunk("/srv/g1", "/srv/g1", hosts="10.0.0.1"),
              chunk("last", "/srv/g2", hosts="10.0.0.2")]
    before = exports.read_bytes()
    run_all.answer_in_turn(
        ["exportfs"], result(1, "", "exportfs: Failed to stat /srv/g2: No such file"), ok(),
    )
    first, second, last = run_chunks(chunks, exports)
    for ret in (first, second):
        assert ret["result"] is True
        assert ret["comment"].endswith(
            "Not in effect yet: exportfs -ra is left to the exports state last of this run.")
    assert last["result"] is False
    assert last["changes"] == {}
    assert last["comment"].endswith(
        f"restored {exports} to the contents before this run. Not in effect, of the exports "
        "this run changed: /srv/g0 (state guest a), /srv/g1, /srv/g2 (state last).")
    assert exports.read_bytes() == before
