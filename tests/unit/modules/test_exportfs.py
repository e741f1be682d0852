"""The exportfs execution module's operations with a mocked loader and
temporary files.

``cmd.run_all`` is the shared fake (``tests/support/commands.py``): these
tests count and check every exportfs call.
"""

import multiprocessing
import os
import stat
from unittest.mock import patch

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import SPECIMENS as SPECIMENS_DIR
from tests.support.commands import result
from tests.support.exportfs import CommandsInTurn
from xen_nfsroot.modules import exportfs
from xen_nfsroot_lib import export_table
from xen_nfsroot_lib import exports as exports_format

SEED = [{"hosts": "192.0.2.10", "options": ["rw", "no_root_squash", "async", "no_subtree_check"]}]
SEED_LINE = b"/xen 192.0.2.10(rw,no_root_squash,async,no_subtree_check)\n"
LISTED = ("/xen          \t192.0.2.10(async,wdelay,hide,no_subtree_check,sec=sys,rw,"
          "no_root_squash,no_all_squash)\n")


def ok(stdout="", stderr=""):
    return result(0, stdout, stderr)


def failed(stderr, retcode=1):
    return result(retcode, "", stderr)


@pytest.fixture
def run_all():
    return CommandsInTurn()


@pytest.fixture
def configure_loader_modules(run_all):
    functions = {"cmd.run_all": run_all}
    return {
        exportfs: {"__salt__": functions, "__opts__": {"test": False}, "__context__": {}},
    }


@pytest.fixture
def etc(tmp_path, monkeypatch):
    """A private /etc: the library's DEFAULT_EXPORTS and EXPORTS_D point into it."""
    monkeypatch.setattr(exports_format, "DEFAULT_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setattr(exports_format, "EXPORTS_D", str(tmp_path / "exports.d"))
    return tmp_path


def commands(run_all):
    return [argv[1:] for argv in run_all.argv()]


def test_virtual_names_the_missing_binary():
    with patch("salt.utils.path.which", return_value=None):
        loaded, reason = exportfs.__virtual__()
    assert loaded is False
    assert "exportfs binary" in reason


# --- exportfs commands -------------------------------------------------------------


def test_reload_runs_exportfs_ra_without_a_shell(run_all):
    run_all.answer(["exportfs"], stderr="exportfs: No options for /srv/a 1.2.3.4: suggest ...")
    assert exportfs.reload()["retcode"] == 0
    # the fake refuses a shell string and python_shell other than False
    (argv,) = run_all.argv()
    assert argv[0].endswith("exportfs")
    assert argv[1:] == ["-ra"]


def test_reload_trusts_the_exit_status_and_carries_stderr(run_all):
    run_all.answer(["exportfs"], retcode=1, stderr="exportfs: /etc/exports:3: bad option list")
    with pytest.raises(CommandExecutionError, match="/etc/exports:3: bad option list"):
        exportfs.reload()
    assert exportfs.reload_exports()["result"] is False


def test_list_active_spawns_once_per_run_and_again_after_reload(run_all):
    run_all.answer(["exportfs"], stdout=(SPECIMENS_DIR / "exportfs-v-no-nfsd.txt").read_text())
    first = exportfs.list_active()
    assert exportfs.list_active() is first
    assert list(first) == ["/srv/xentest"]
    exportfs.reload()
    exportfs.list_active()
    assert commands(run_all) == [["-v"], ["-ra"], ["-v"]]


def test_list_active_fails_on_exit_status(run_all):
    run_all.answer(["exportfs"], retcode=1, stderr="exportfs: could not open /var/lib/nfs/etab")
    with pytest.raises(CommandExecutionError, match="etab"):
        exportfs.list_active()


def test_unexport(run_all):
    exportfs.unexport("/xen", "192.0.2.10")
    assert commands(run_all) == [["-u", "192.0.2.10:/xen"]]
    run_all.answer(["exportfs"], retcode=1,
                   stderr="exportfs: Could not find '192.0.2.10:/xen' to unexport.")
    with pytest.raises(CommandExecutionError, match="Could not find"):
        exportfs.unexport("/xen", "192.0.2.10")
    with pytest.raises(SaltInvocationError, match="host"):
        exportfs.unexport("/xen", "192.0.2.10 (rw)")


# --- reading -------------------------------------------------------------------------


def test_list_configured_reads_exports_and_drop_ins_in_version_order(etc):
    (etc / "exports").write_text("# main\n/srv/a 192.0.2.1(rw)\n")
    drop_ins = etc / "exports.d"
    drop_ins.mkdir()
    (drop_ins / "10-b.exports").write_text("/srv/b 192.0.2.2(ro)\n")
    (drop_ins / "9-a.exports").write_text("\n/srv/c -async 192.0.2.3(rw)\n")
    (drop_ins / ".hidden.exports").write_text("/srv/hidden *(ro)\n")
    (drop_ins / "notes.txt").write_text("/srv/txt *(ro)\n")
    listing = exportfs.list_configured()
    assert listing == {
        "/srv/a": [{"hosts": "192.0.2.1", "options": ["rw"], "file": str(etc / "exports"),
                    "line": 2}],
        "/srv/c": [{"hosts": "192.0.2.3", "options": ["async", "rw"],
                    "file": str(drop_ins / "9-a.exports"), "line": 2}],
        "/srv/b": [{"hosts": "192.0.2.2", "options": ["ro"],
                    "file": str(drop_ins / "10-b.exports"), "line": 1}],
    }
    assert list(listing) == ["/srv/a", "/srv/c", "/srv/b"]


def test_list_configured_reports_the_whitespace_trap(etc):
    (etc / "exports").write_text("/xen 192.0.2.10 (rw,no_root_squash)\n")
    (_, world) = exportfs.list_configured()["/xen"]
    assert world["hosts"] == "*"
    assert "applies these options to the world" in world["warning"]


def test_parsed_files_are_cached_per_run(etc):
    (etc / "exports").write_text("/srv/a 192.0.2.1(rw)\n" * 50)
    with patch.object(exportfs, "_read", wraps=exportfs._read) as read:
        for _ in range(20):
            exportfs.list_configured()
            exportfs.add(f"/srv/n{_}", SEED, exports=str(etc / "exports"), test=True)
    assert read.call_count == 1


def test_many_adds_parse_the_file_once(etc, run_all):
    exports = str(etc / "exports")
    (etc / "exports").write_text("".join(f"/srv/old{i} 10.0.0.{i}(ro)\n" for i in range(200)))
    model = exports_format.ExportsFile
    with patch.object(model, "parse", wraps=model.parse) as parse:
        for index in range(100):
            exportfs.add(f"/srv/new{index}", SEED, exports=exports)
    big = [call for call in parse.call_args_list if len(call.args[0]) > 500]
    assert len(big) == 1
    assert run_all.calls == []
    assert len(exportfs.list_configured()) == 300


# --- writing -------------------------------------------------------------------------


def test_add_creates_a_missing_file_0644(etc):
    result = exportfs.add("/xen", SEED, exports=str(etc / "exports"))
    assert result == {
        "path": "/xen",
        "file": str(etc / "exports"),
        "changed": True,
        "created": True,
        "old": None,
        "new": SEED,
        "old_text": None,
        "new_text": "192.0.2.10(rw,no_root_squash,async,no_subtree_check)",
    }
    assert (etc / "exports").read_bytes() == SEED_LINE
    assert stat.S_IMODE((etc / "exports").stat().st_mode) == 0o644


def test_add_creates_a_missing_drop_in_directory(etc):
    target = etc / "exports.d" / "xen_nfsroot.exports"
    exportfs.add("/xen", SEED, exports=str(target))
    assert target.read_bytes() == SEED_LINE
    with pytest.raises(SaltInvocationError, match="would be ignored by exportfs"):
        exportfs.add("/xen", SEED, exports=str(etc / "exports.d" / "xen_nfsroot"))


def test_add_keeps_mode_owner_and_other_bytes(etc):
    exports = etc / "exports"
    exports.write_bytes(b"# hand made\t\n/srv/a 192.0.2.1(rw)  # keep\n/xen 10.0.0.1(ro)\n/srv/b *")
    os.chmod(exports, 0o600)
    os.chown(exports, 1234, 4321)
    result = exportfs.add("/xen", SEED, exports=str(exports))
    assert result["old"] == [{"hosts": "10.0.0.1", "options": ["ro"]}]
    assert result["old_text"] == "10.0.0.1(ro)"
    assert exports.read_bytes() == (
        b"# hand made\t\n/srv/a 192.0.2.1(rw)  # keep\n"
        b"/xen 192.0.2.10(rw,no_root_squash,async,no_subtree_check)\n/srv/b *"
    )
    info = exports.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, 1234, 4321)
    assert [name for name in os.listdir(etc) if name != "exports"] == []


def test_add_twice_writes_once(etc):
    exports = etc / "exports"
    exportfs.add("/xen", SEED, exports=str(exports))
    before = exports.stat()
    again = exportfs.add(
        "/xen", hosts="192.0.2.10", options="no_subtree_check,async,rw,no_root_squash,wdelay",
        exports=str(exports),
    )
    assert again["changed"] is False
    assert exports.stat().st_mtime_ns == before.st_mtime_ns
    assert exports.stat().st_ino == before.st_ino


def test_add_in_test_mode_writes_nothing(etc):
    result = exportfs.add("/xen", SEED, exports=str(etc / "exports"), test=True)
    assert (result["changed"], result["created"]) == (True, True)
    assert not (etc / "exports").exists()
    assert exportfs.reload()["files"] == []


def test_bad_input_changes_no_byte(etc):
    exports = etc / "exports"
    exports.write_bytes(b"/srv/a 192.0.2.1(rw)\n")
    before = exports.stat()
    for arguments in (
        {"clients": [{"hosts": "192.0.2.10", "options": ["rwx"]}]},
        {"hosts": "192.0.2.10 (rw)"},
        {"hosts": "*", "options": ["rw", "no_root_squash"]},
        {"clients": "192.0.2.10"},
    ):
        with pytest.raises(SaltInvocationError):
            exportfs.add("/xen", exports=str(exports), **arguments)
    for path in ("/xen\n/srv/a", "xen"):
        with pytest.raises(SaltInvocationError):
            exportfs.add(path, SEED, exports=str(exports))
    assert exports.read_bytes() == b"/srv/a 192.0.2.1(rw)\n"
    assert exports.stat().st_mtime_ns == before.st_mtime_ns


def test_remove_deletes_only_that_export(etc):
    exports = etc / "exports"
    exports.write_bytes(
        b"# c\n/xen 192.0.2.10(rw) \\\n  192.0.2.11(ro)\n/srv/a *(ro)\n/xen h(ro)\n"
    )
    assert exportfs.remove("/xen", exports=str(exports), test=True)["changed"] is True
    assert exports.read_bytes().startswith(b"# c\n/xen")
    result = exportfs.remove("/xen", exports=str(exports))
    assert result["changed"] is True
    assert result["old_text"] == "192.0.2.10(rw) 192.0.2.11(ro) h(ro)"
    assert exports.read_bytes() == b"# c\n/srv/a *(ro)\n"
    assert exportfs.remove("/xen", exports=str(exports))["changed"] is False
    assert exportfs.remove("/xen", exports=str(etc / "missing"))["changed"] is False
    assert not (etc / "missing").exists()


def _add_many(exports, worker, count):
    exportfs.__context__ = {}
    for index in range(count):
        exportfs.add(
            f"/srv/w{worker}/{index}", [{"hosts": f"10.0.{worker}.{index}", "options": ["ro"]}],
            exports=exports,
        )


def test_concurrent_writers_lose_nothing(etc):
    exports = etc / "exports"
    exports.write_text("# shared\n")
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_add_many, args=(str(exports), worker, 15)) for worker in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    listing = exportfs.list_configured(str(exports))
    assert len(listing) == 60
    assert exports.read_text().startswith("# shared\n")


# --- applying ------------------------------------------------------------------------


def test_reload_names_the_files_this_run_changed(etc, run_all):
    exports = str(etc / "exports")
    exportfs.add("/xen", SEED, exports=exports)
    exportfs.add("/srv/a", hosts="192.0.2.1", options=["ro"], exports=exports)
    run_all.answer(["exportfs"], stderr="exportfs: warning")
    applied = exportfs.reload()
    assert commands(run_all) == [["-ra"]]
    assert applied["files"] == [exports]
    assert applied["stderr"] == "exportfs: warning"
    assert exportfs.reload()["files"] == []
    assert commands(run_all) == [["-ra"], ["-ra"]]


def test_check_active_compares_with_exportfs_v_once_per_run(etc, run_all):
    run_all.answer(["exportfs"], stdout=LISTED)
    assert exportfs.check_active("/xen", SEED) == {
        "active": True, "confirmed": ["/xen for 192.0.2.10"], "problems": []}
    other = [{"hosts": "192.0.2.10", "options": ["ro"]}]
    (problem,) = exportfs.check_active("/xen", other)["problems"]
    assert problem.startswith("exportfs -v lists /xen for 192.0.2.10(async,")
    assert exportfs.check_active("/srv/a", [{"hosts": "192.0.2.1"}])["problems"] == [
        "exportfs -v does not list /srv/a for 192.0.2.1"]
    assert exportfs.check_active("/srv/a")["active"] is True
    assert exportfs.check_active("/xen")["problems"] == [
        "exportfs -v still lists /xen for 192.0.2.10(async,wdelay,hide,no_subtree_check,"
        "sec=sys,rw,no_root_squash,no_all_squash)"]
    assert commands(run_all) == [["-v"]]


def test_the_live_table_is_read_and_indexed_once_per_run(etc, run_all):
    listing = "".join(f"{f'/srv/g{index}':<14}\t10.0.0.{index}(sync,wdelay,hide,"
                      "no_subtree_check,sec=sys,ro,secure,root_squash,no_all_squash)\n"
                      for index in range(200))
    run_all.answer(["exportfs"], stdout=listing)
    table = export_table.ExportTable
    with patch.object(table, "parse", wraps=table.parse) as parse:
        for index in range(200):
            check = exportfs.check_active(f"/srv/g{index}", [{"hosts": f"10.0.0.{index}"}])
            assert check["active"] is True, check
    assert parse.call_count == 1
    assert commands(run_all) == [["-v"]]


def test_check_active_knows_files_exportfs_does_not_read(etc, run_all):
    check = exportfs.check_active("/xen", SEED, exports=str(etc / "elsewhere"))
    assert check == {"active": False, "confirmed": [], "problems": [
        f"/xen not checked: exportfs does not read {etc / 'elsewhere'}"]}
    assert run_all.calls == []


def test_rejected_change_is_rolled_back(etc, run_all):
    exports = etc / "exports"
    exports.write_bytes(b"# before\n/srv/a 192.0.2.1(rw)")
    exportfs.add("/xen", SEED, exports=str(exports))
    exportfs.add("/srv/b", hosts="192.0.2.2", exports=str(exports))
    drop_in = etc / "exports.d" / "x.exports"
    exportfs.add("/srv/c", hosts="192.0.2.3", exports=str(drop_in))
    run_all.answer_in_turn(
        ["exportfs", "-ra"], failed("exportfs: Failed to stat /xen: No such file or directory"),
        ok(),
    )
    with pytest.raises(CommandExecutionError) as caught:
        exportfs.reload()
    message = str(caught.value)
    assert "exportfs -ra failed with exit code 1: exportfs: Failed to stat /xen" in message
    assert f"restored {exports}, {drop_in} to the contents before this run" in message
    assert exports.read_bytes() == b"# before\n/srv/a 192.0.2.1(rw)"
    assert not drop_in.exists()
    assert commands(run_all) == [["-ra"], ["-ra"]]
    assert exportfs.list_configured(str(exports)).keys() == {"/srv/a"}


def test_errors_that_predate_the_change_keep_it(etc, run_all):
    exports = etc / "exports"
    exports.write_bytes(b"/srv/gone 192.0.2.1(rw)\n")
    exportfs.add("/xen", SEED, exports=str(exports))
    stale = "exportfs: Failed to stat /srv/gone: No such file or directory"
    run_all.answer_in_turn(["exportfs", "-ra"], failed(stale), failed(stale), failed(stale))
    applied = exportfs.reload()
    assert applied["preexisting_errors"] == [stale]
    assert applied["files"] == [str(exports)]
    assert exports.read_bytes() == b"/srv/gone 192.0.2.1(rw)\n" + SEED_LINE
    assert commands(run_all) == [["-ra"], ["-ra"], ["-ra"]]


def test_new_error_beside_old_errors_rolls_back(etc, run_all):
    exports = etc / "exports"
    exports.write_bytes(b"/srv/gone 192.0.2.1(rw)\n")
    exportfs.add("/xen", SEED, exports=str(exports))
    stale = "exportfs: Failed to stat /srv/gone: No such file or directory"
    new = "exportfs: /etc/exports:2: unknown keyword \"x\""
    run_all.answer_in_turn(["exportfs", "-ra"], failed(f"{stale}\n{new}"), failed(stale))
    with pytest.raises(CommandExecutionError, match="unknown keyword") as caught:
        exportfs.reload()
    assert "Failed to stat /srv/gone" not in str(caught.value)
    assert exports.read_bytes() == b"/srv/gone 192.0.2.1(rw)\n"


def test_rollback_leaves_a_file_changed_by_someone_else(etc, run_all):
    exports = etc / "exports"
    exports.write_bytes(b"/srv/a 192.0.2.1(rw)\n")
    exportfs.add("/xen", SEED, exports=str(exports))
    exports.write_bytes(b"/srv/other *(ro)\n")
    run_all.answer_in_turn(["exportfs", "-ra"], failed("exportfs: bad"), ok())
    with pytest.raises(CommandExecutionError, match="not restored .changed by someone else"):
        exportfs.reload()
    assert exports.read_bytes() == b"/srv/other *(ro)\n"


# --- Salt nfs3 names ------------------------------------------------------------------


def test_nfs3_compatible_names(etc, run_all):
    exports = str(etc / "exports")
    assert exportfs.add_export(exports, "/srv/test", "127.0.0.1", ["rw"]) == {
        "hosts": "127.0.0.1", "options": ["rw"]}
    exportfs.add_export(exports, "/srv/test", "10.0.0.0/8")
    assert exportfs.list_exports(exports) == {
        "/srv/test": [{"hosts": "127.0.0.1", "options": ["rw"]},
                      {"hosts": "10.0.0.0/8", "options": []}]
    }
    assert (etc / "exports").read_text() == "/srv/test 127.0.0.1(rw) 10.0.0.0/8()\n"
    assert exportfs.del_export(exports, "/srv/test") == {}
    assert exportfs.reload_exports() == {"result": True, "stdout": "", "stderr": ""}


def test_nfs3_add_export_refuses_world_root_as_the_state_does(etc):
    exports = etc / "exports"
    with pytest.raises(SaltInvocationError, match="allow_world_root"):
        exportfs.add_export(str(exports), "/srv/test", "*", ["rw", "no_root_squash"])
    assert not exports.exists()
    exports.write_text("/srv/test *(rw,no_root_squash)\n")
    with pytest.raises(SaltInvocationError, match="allow_world_root"):
        exportfs.add_export(str(exports), "/srv/test", "192.0.2.1", ["ro"])
    assert exportfs.add_export(str(exports), "/srv/test", "192.0.2.1", ["ro"],
                               allow_world_root=True) == {"hosts": "192.0.2.1",
                                                          "options": ["ro"]}
