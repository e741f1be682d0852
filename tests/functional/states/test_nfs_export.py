"""nfs_export states with the real Salt loader and the real ``exportfs``.

Each ``states.nfs_export.*`` call is one state run (``state.single``);
``modules.state.template_str`` runs several states in one run. An exportfs
shim first on PATH logs every exportfs process the states start.
"""

import pathlib
import subprocess

import pytest

from tests.support.exportfs import REAL_EXPORTFS, active, spawns
from tests.support.exports_cases import EXPORTS_CASES, EXPORTS_FILES, exported_directories
from tests.support.seed import SEED_EXPORT as SEED
from tests.support.seed import SEED_EXPORT_LINE as SEED_LINE

SEED_TEXT = "192.0.2.10(rw,no_root_squash,async,no_subtree_check)"
HAND_MADE = (
    b"# /etc/exports: the access control list for filesystems which may be exported\n"
    b"#\t\tto NFS clients.  See exports(5).\n"
    b"\n"
    b"/srv/nfs/home\t192.0.2.0/24(rw,sync,no_subtree_check)   # homes\n"
    b"/srv/nfs/iso   *(ro,no_subtree_check) \\\n"
    b"               10.0.0.0/8(ro,no_subtree_check)\n"
    b"# pub\n"
    b"/srv/nfs/pub -ro,sync,no_subtree_check @lab 192.0.2.128/25\n"
)


@pytest.fixture
def hand_made(system_exports):
    """/etc/exports with comments and three unrelated exports, all applied."""
    for path in ("/xen", "/srv/nfs/home", "/srv/nfs/iso", "/srv/nfs/pub"):
        pathlib.Path(path).mkdir(parents=True, exist_ok=True)
    system_exports.write_bytes(HAND_MADE)
    return system_exports


def test_seed_export_keeps_every_other_byte_and_is_active(states, hand_made, exportfs_log):
    ret = states.nfs_export.present(name="/xen", hosts="192.0.2.10", options=SEED[0]["options"])
    assert ret.result is True
    assert ret.changes == {"old": None, "new": SEED}
    assert ret.comment == (
        f"Added export /xen for {SEED_TEXT} to /etc/exports. "
        "Applied with exportfs -ra; exportfs -v lists /xen for 192.0.2.10."
    )
    assert hand_made.read_bytes() == HAND_MADE + SEED_LINE
    assert spawns(exportfs_log) == ["-ra", "-v"]
    (xen,) = active()["/xen"]
    assert xen["hosts"] == "192.0.2.10"
    assert {"rw", "no_root_squash", "async"} <= set(xen["options"])
    assert {"/srv/nfs/home", "/srv/nfs/iso", "/srv/nfs/pub"} <= set(active())


def test_second_run_changes_nothing_and_only_lists_the_exports(states, hand_made,
                                                               exportfs_log):
    states.nfs_export.present(name="/xen", clients=SEED)
    spawns(exportfs_log)
    written = hand_made.stat()
    reordered = [{"hosts": "192.0.2.10",
                  "options": ["async", "no_subtree_check", "no_root_squash", "rw", "wdelay"]}]
    ret = states.nfs_export.present(name="/xen", clients=reordered)
    assert ret.result is True
    assert ret.changes == {}
    assert ret.comment == "Export /xen for 192.0.2.10 is already present"
    assert spawns(exportfs_log) == ["-v"]
    assert hand_made.stat().st_mtime_ns == written.st_mtime_ns


def test_test_mode_predicts_and_changes_nothing(states, hand_made, exportfs_log):
    before = hand_made.stat()
    ret = states.nfs_export.present(name="/xen", clients=SEED, test=True)
    assert ret.result is None
    assert ret.changes == {"old": None, "new": SEED}
    assert ret.comment == (
        f"Would have added export /xen for {SEED_TEXT} to /etc/exports. "
        "Would then run exportfs -ra.")
    drop_in = "/etc/exports.d/xen_nfsroot.exports"
    ret = states.nfs_export.present(name="/xen", clients=SEED, exports=drop_in, test=True)
    assert ret.comment.endswith(f"to {drop_in} (creating the file). Would then run exportfs -ra.")
    ret = states.nfs_export.absent(name="/srv/nfs/iso", test=True)
    assert ret.comment == (
        "Would have removed export /srv/nfs/iso (*(ro,no_subtree_check) "
        "10.0.0.0/8(ro,no_subtree_check)) from /etc/exports. Would then run exportfs -ra."
    )
    assert hand_made.read_bytes() == HAND_MADE
    assert hand_made.stat().st_mtime_ns == before.st_mtime_ns
    assert not pathlib.Path("/etc/exports.d").exists()
    assert spawns(exportfs_log) == []
    states.nfs_export.present(name="/xen", clients=SEED)
    spawns(exportfs_log)
    ret = states.nfs_export.present(name="/xen", clients=SEED, test=True)
    assert (ret.result, ret.changes) == (True, {})
    assert spawns(exportfs_log) == ["-v"]


def test_export_rejected_by_exportfs_is_rolled_back(states, hand_made, exportfs_log):
    """The same client with other options in a drop-in: only exportfs can tell."""
    pathlib.Path("/etc/exports.d").mkdir()
    pathlib.Path("/etc/exports.d/other.exports").write_text("/xen 192.0.2.10(ro,sync)\n")
    ret = states.nfs_export.present(name="/xen", clients=SEED)
    assert ret.result is False
    assert ret.changes == {}
    assert ret.comment.startswith(
        f"Added export /xen for {SEED_TEXT} to /etc/exports. exportfs -ra failed with exit "
        "code 1: exportfs: incompatible duplicated export entries:"
    )
    assert ret.comment.endswith("restored /etc/exports to the contents before this run")
    assert hand_made.read_bytes() == HAND_MADE
    assert spawns(exportfs_log) == ["-ra", "-ra"]


def test_missing_directory_is_rolled_back(states, hand_made, exportfs_log):
    ret = states.nfs_export.present(name="/xen/no-such-guest", clients=SEED)
    assert ret.result is False
    assert (
        "exportfs: Failed to stat /xen/no-such-guest: No such file or directory" in ret.comment
    )
    assert hand_made.read_bytes() == HAND_MADE
    assert "/xen/no-such-guest" not in active()


def test_one_exportfs_ra_per_run(modules, hand_made, exportfs_log):
    for guest in ("a", "b", "c"):
        pathlib.Path(f"/srv/guests/{guest}").mkdir(parents=True, exist_ok=True)
    sls = """
{% for guest in ["a", "b", "c"] %}
/srv/guests/{{ guest }}:
  nfs_export.present:
    - clients:
      - hosts: 192.0.2.1{{ loop.index }}
        options: [rw, no_root_squash, async, no_subtree_check]
    - exports: /etc/exports.d/xen_nfsroot.exports
    - reload: false
{% endfor %}
/srv/nfs/pub:
  nfs_export.absent:
    - reload: false
exports applied:
  nfs_export.reloaded:
    - order: last
"""
    first = modules.state.template_str(sls)
    assert all(ret.result is True for ret in first), [ret.comment for ret in first]
    assert spawns(exportfs_log) == ["-ra", "-v"]
    reloaded = first["exports applied"]
    assert reloaded.changes["reloaded"] == [
        "/srv/guests/a", "/srv/guests/b", "/srv/guests/c", "/srv/nfs/pub"]
    assert reloaded.comment == (
        "Applied with exportfs -ra; exportfs -v lists /srv/guests/a for 192.0.2.11, "
        "/srv/guests/b for 192.0.2.12, /srv/guests/c for 192.0.2.13, /srv/nfs/pub not exported."
    )
    assert set(active()) == {"/srv/guests/a", "/srv/guests/b", "/srv/guests/c",
                             "/srv/nfs/home", "/srv/nfs/iso"}
    second = modules.state.template_str(sls)
    assert all(ret.result is True and ret.changes == {} for ret in second)
    assert second["exports applied"].comment == (
        "No export changed in this run: exportfs -ra is not needed"
    )
    assert spawns(exportfs_log) == ["-v"]


def test_salt_3007_forms_keep_working(states, hand_made, exportfs_log):
    pathlib.Path("/srv/nfs/multi").mkdir(parents=True, exist_ok=True)
    clients = [
        {"hosts": "10.0.2.0/24", "options": ["rw"]},
        {"hosts": "192.168.0.0/24,172.19.0.0/16", "options": ["ro", "subtree_check"]},
    ]
    ret = states.nfs_export.present(name="/srv/nfs/multi", clients=clients)
    assert ret.result is True, ret.comment
    assert hand_made.read_bytes().endswith(
        b"/srv/nfs/multi 10.0.2.0/24(rw) 192.168.0.0/24(ro,subtree_check) "
        b"172.19.0.0/16(ro,subtree_check)\n"
    )
    hosts = sorted(client["hosts"] for client in active()["/srv/nfs/multi"])
    assert hosts == ["10.0.2.0/24", "172.19.0.0/16", "192.168.0.0/24"]
    again = states.nfs_export.present(name="/srv/nfs/multi", clients=clients)
    assert again.changes == {}
    ret = states.nfs_export.absent(name="/srv/nfs/multi")
    assert ret.result is True
    assert hand_made.read_bytes() == HAND_MADE
    assert "/srv/nfs/multi" not in active()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "/xen", "hosts": "192.0.2.10", "options": ["rw", "rwx"]},
         "options[1]: unknown export option 'rwx' (did you mean 'rw'?)"),
        ({"name": "/xen", "hosts": "192.0.2.10 (rw)"},
         "hosts: '192.0.2.10 (rw)' has whitespace before '('"),
        ({"name": "/xen\n/srv/nfs/home", "hosts": "192.0.2.10"},
         "name: '/xen\\n/srv/nfs/home' contains a newline"),
        ({"name": "xen", "hosts": "192.0.2.10"}, "name: 'xen' is not an absolute path"),
        ({"name": "/xen", "hosts": "*", "options": ["rw", "no_root_squash"]},
         "options: refusing to export /xen to '*' with no_root_squash: every host matching "
         "'*' would get root access to the exported files"),
        ({"name": "/xen", "clients": {"hosts": "192.0.2.10"}},
         "clients: expected a list of {hosts, options} mappings, got dict"),
        ({"name": "/xen", "clients": [{"hosts": "192.0.2.10", "options": "rw,no_root_sqash"}]},
         "clients[0].options: unknown export option 'no_root_sqash'"),
    ],
)
def test_bad_input_changes_no_byte(states, hand_made, exportfs_log, arguments, message):
    before = hand_made.stat()
    ret = states.nfs_export.present(**arguments)
    assert ret.result is False
    assert message in ret.comment
    assert ret.changes == {}
    assert hand_made.read_bytes() == HAND_MADE
    assert hand_made.stat().st_mtime_ns == before.st_mtime_ns
    assert spawns(exportfs_log) == []


def test_world_root_needs_explicit_permission(states, hand_made):
    ret = states.nfs_export.present(
        name="/srv/nfs/pub", hosts="*", options=["rw", "no_root_squash"], allow_world_root=True
    )
    assert ret.result is True, ret.comment
    assert active()["/srv/nfs/pub"] == [
        {"hosts": "*", "options": "sync,wdelay,hide,no_subtree_check,sec=sys,rw,"
         "no_root_squash,no_all_squash".split(",")}
    ]


def check_seed_state(states, exports, exportfs_log, data, listed=None):
    """nfs_export.present for the seed on an /etc/exports holding data, then again.

    Errors a file already had do not block the change; the state says what is
    active. listed: whether exportfs -v is to list the seed's export afterwards
    (None: whatever it lists).
    """
    ret = states.nfs_export.present(name="/xen", clients=SEED)
    kept = data if data.endswith(b"\n") or not data else data + b"\n"
    assert exports.read_bytes() in (kept + SEED_LINE, kept + b"\n" + SEED_LINE)
    if listed is None:
        listed = "/xen" in active()
    else:
        assert ("/xen" in active()) is listed
    assert ret.result is listed, ret.comment
    spawns(exportfs_log)
    again = states.nfs_export.present(name="/xen", clients=SEED)
    if listed:
        assert (again.result, again.changes) == (True, {})
        assert spawns(exportfs_log) == ["-v"]
    else:  # exportfs stops reading a file at a line it cannot parse
        assert ret.comment.endswith("But exportfs -v does not list /xen for 192.0.2.10.")
        assert again.result is False
        assert again.changes["active"]["old"] == "exportfs -v does not list /xen for 192.0.2.10"
        assert spawns(exportfs_log)[:2] == ["-v", "-ra"]


@pytest.mark.usefixtures("local_host_lookups")
@pytest.mark.parametrize("source", EXPORTS_FILES, ids=[path.name for path in EXPORTS_FILES])
def test_seed_export_on_a_data_file(states, system_exports, exportfs_log, source):
    pathlib.Path("/xen").mkdir(exist_ok=True)
    case = EXPORTS_CASES[source.name]
    data = source.read_bytes()
    system_exports.write_bytes(data)
    with exported_directories(source.name):
        if case.added is None:  # the file ends inside a quote: refused, nothing written
            ret = states.nfs_export.present(name="/xen", clients=SEED)
            assert (ret.result, ret.changes) == (False, {})
            assert "quote" in ret.comment
            assert system_exports.read_bytes() == data
            assert spawns(exportfs_log) == []
            return
        check_seed_state(states, system_exports, exportfs_log, data, case.seed_listed)
        assert system_exports.read_bytes() == data + case.added


@pytest.mark.usefixtures("local_host_lookups")
def test_seed_export_on_corpus_file(states, system_exports, exportfs_log, corpus_exports):
    pathlib.Path("/xen").mkdir(exist_ok=True)
    data = corpus_exports.read_bytes()
    system_exports.write_bytes(data)
    check_seed_state(states, system_exports, exportfs_log, data)


def test_salt_3007_style_states_cost_one_exportfs_ra_per_run(modules, hand_made, exportfs_log):
    """No reload: False, no nfs_export.reloaded: the states share one reload."""
    for guest in ("a", "b", "c"):
        pathlib.Path(f"/srv/guests/{guest}").mkdir(parents=True, exist_ok=True)
    sls = """
{% for guest in ["a", "b", "c"] %}
/srv/guests/{{ guest }}:
  nfs_export.present:
    - hosts: 192.0.2.1{{ loop.index }}
    - options: [rw, no_root_squash, async, no_subtree_check]
{% endfor %}
"""
    first = modules.state.template_str(sls)
    assert all(ret.result is True for ret in first), [ret.comment for ret in first]
    assert spawns(exportfs_log) == ["-ra", "-v"]
    comments = {ret.name: ret.comment for ret in first}
    assert comments["/srv/guests/a"].endswith(
        "exportfs -ra is left to the exports state /srv/guests/c of this run.")
    assert comments["/srv/guests/c"].endswith(
        "Applied with exportfs -ra; exportfs -v lists /srv/guests/a for 192.0.2.11, "
        "/srv/guests/b for 192.0.2.12, /srv/guests/c for 192.0.2.13.")
    again = modules.state.template_str(sls)
    assert [ret.changes for ret in again] == [{}, {}, {}]
    assert spawns(exportfs_log) == ["-v"]


def test_a_run_converges_on_the_live_export_table(states, hand_made, exportfs_log):
    """After exportfs -ua the file still holds the export: it is applied again."""
    assert states.nfs_export.present(name="/xen", clients=SEED).result is True
    subprocess.run([REAL_EXPORTFS, "-ua"], check=True)
    assert "/xen" not in active()
    spawns(exportfs_log)
    predicted = states.nfs_export.present(name="/xen", clients=SEED, test=True)
    assert predicted.result is None
    assert predicted.changes == {"active": {
        "old": "exportfs -v does not list /xen for 192.0.2.10", "new": SEED_TEXT}}
    assert predicted.comment == (
        "Export /xen for 192.0.2.10 is in /etc/exports but not active (exportfs -v does not "
        "list /xen for 192.0.2.10): would apply it again. Would then run exportfs -ra.")
    assert spawns(exportfs_log) == ["-v"]
    ret = states.nfs_export.present(name="/xen", clients=SEED)
    assert ret.result is True
    assert ret.changes == predicted.changes
    assert ret.comment.endswith(
        "applying it again. Applied with exportfs -ra; exportfs -v lists /xen for 192.0.2.10.")
    assert spawns(exportfs_log) == ["-v", "-ra", "-v"]
    assert "/xen" in active()
    assert hand_made.read_bytes() == HAND_MADE + SEED_LINE
    again = states.nfs_export.present(name="/xen", clients=SEED)
    assert (again.result, again.changes) == (True, {})
    assert spawns(exportfs_log) == ["-v"]


@pytest.mark.parametrize(("name", "sibling"), [("sp ace", "sp"), ('q"u#o\\te', "q"),
                                               ("t\tab", "t")])
def test_a_hostile_path_is_exported_as_exactly_itself(states, system_exports, name, sibling):
    base = pathlib.Path("/srv/hostile-state")
    (base / name).mkdir(parents=True, exist_ok=True)
    (base / sibling).mkdir(parents=True, exist_ok=True)
    path = str(base / name)
    ret = states.nfs_export.present(name=path, hosts="192.0.2.10",
                                    options=["ro", "no_subtree_check"])
    assert ret.result is True, ret.comment
    assert list(active()) == [path]
    again = states.nfs_export.present(name=path, hosts="192.0.2.10",
                                      options=["ro", "no_subtree_check"])
    assert (again.result, again.changes) == (True, {})


def test_a_path_exportfs_reads_back_as_another_is_refused(states, system_exports):
    """``/srv/a\\040b`` (a backslash, then 040) would be exported as ``/srv/a b``."""
    pathlib.Path("/srv/hostile-state/a\\040b").mkdir(parents=True, exist_ok=True)
    pathlib.Path("/srv/hostile-state/a b").mkdir(parents=True, exist_ok=True)
    ret = states.nfs_export.present(name="/srv/hostile-state/a\\040b", hosts="192.0.2.10",
                                    options=["ro", "no_subtree_check"])
    assert ret.result is False
    assert "three octal digits" in ret.comment
    assert system_exports.read_bytes() == b""
    assert active() == {}


def test_a_failed_shared_reload_is_reported_by_every_state_it_concerns(modules, hand_made,
                                                                     exportfs_log):
    """The first state's export never takes effect: it says so, and the
    state whose exportfs -ra fails names it."""
    pathlib.Path("/srv/guests/a-ok").mkdir(parents=True, exist_ok=True)
    sls = """
guest 1 ok:
  nfs_export.present:
    - name: /srv/guests/a-ok
    - hosts: 192.0.2.11
    - options: [rw, no_subtree_check]
guest 2 missing:
  nfs_export.present:
    - name: /srv/guests/z-missing
    - hosts: 192.0.2.12
    - options: [rw, no_subtree_check]
"""
    returns = {ret.name: ret for ret in modules.state.template_str(sls)}
    first, second = returns["/srv/guests/a-ok"], returns["/srv/guests/z-missing"]
    assert first.result is True
    assert first.comment.endswith(
        "Not in effect yet: exportfs -ra is left to the exports state guest 2 missing of this "
        "run.")
    assert second.result is False
    assert second.comment.endswith(
        "Not in effect, of the exports this run changed: /srv/guests/a-ok (state guest 1 "
        "ok), /srv/guests/z-missing (state guest 2 missing).")
    assert "restored /etc/exports" in second.comment
    assert hand_made.read_bytes() == HAND_MADE
    assert "/srv/guests/a-ok" not in active()
