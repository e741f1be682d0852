"""exportfs execution module with the real Salt loader and the real ``exportfs``.

Runs in tests/isolate's private mount namespace: /etc, /var/lib/nfs, /srv and
/xen are scratch overlays, so the tests write /etc/exports and create the
exported directories freely.
"""

import pathlib
import subprocess
import sys
import threading

import pytest

from tests.support.exportfs import exportfs_ra, exportfs_v
from tests.support.exports_cases import EXPORTS_CASES, EXPORTS_FILES, exported_directories
from tests.support.seed import SEED_EXPORT as SEED
from tests.support.seed import SEED_EXPORT_LINE as SEED_LINE


@pytest.fixture
def guest_roots(system_exports):
    """The exported directories of these tests (in the /srv and /xen overlays)."""
    for path in ("/xen", "/srv/nfs/home", "/srv/nfs/iso", "/srv/nfs/pub"):
        pathlib.Path(path).mkdir(parents=True, exist_ok=True)
    return system_exports


def test_reload_and_list_active_with_the_real_exportfs(modules, guest_roots, exportfs_log):
    guest_roots.write_text("/srv/nfs/home 192.0.2.0/24(rw,sync,no_subtree_check)\n")
    assert modules.exportfs.reload()["retcode"] == 0
    active = modules.exportfs.list_active()
    assert modules.exportfs.list_active() == active
    assert active == {
        "/srv/nfs/home": [
            {
                "hosts": "192.0.2.0/24",
                "options": "sync,wdelay,hide,no_subtree_check,sec=sys,rw,root_squash,"
                "no_all_squash".split(","),
            }
        ]
    }
    assert exportfs_log.read_text() == "-ra\n-v\n"


def test_reload_failure_carries_exportfs_message(modules, guest_roots):
    guest_roots.write_text("/srv/nfs/home 192.0.2.1(rw,bogus)\n")
    with pytest.raises(Exception, match='unknown keyword "bogus"') as caught:
        modules.exportfs.reload()
    assert "exit code 1" in str(caught.value)


def test_unexport_with_the_real_exportfs(modules, guest_roots):
    guest_roots.write_text("/srv/nfs/home 192.0.2.1(rw,sync)\n/srv/nfs/iso *(ro)\n")
    modules.exportfs.reload()
    modules.exportfs.unexport("/srv/nfs/home", "192.0.2.1")
    assert "/srv/nfs/home" not in exportfs_v()
    with pytest.raises(Exception, match="Could not find '192.0.2.1:/srv/nfs/home'"):
        modules.exportfs.unexport("/srv/nfs/home", "192.0.2.1")


def test_add_remove_and_apply_with_the_real_exportfs(modules, guest_roots, exportfs_log):
    guest_roots.write_bytes(b"# hand made\n/srv/nfs/iso *(ro,no_subtree_check)\n")
    modules.exportfs.add("/xen", SEED)
    modules.exportfs.add("/srv/nfs/home", hosts="@lab,192.0.2.0/24", options=["rw"])
    modules.exportfs.remove("/srv/nfs/iso")
    applied = modules.exportfs.reload()
    assert applied["files"] == ["/etc/exports"]
    checks = [
        modules.exportfs.check_active("/xen", SEED),
        modules.exportfs.check_active(
            "/srv/nfs/home", [{"hosts": "@lab,192.0.2.0/24", "options": ["rw"]}]),
        modules.exportfs.check_active("/srv/nfs/iso"),
    ]
    assert [check["problems"] for check in checks] == [[], [], []]
    assert [check["confirmed"] for check in checks] == [
        ["/xen for 192.0.2.10"],
        ["/srv/nfs/home for @lab", "/srv/nfs/home for 192.0.2.0/24"],
        ["/srv/nfs/iso not exported"],
    ]
    assert guest_roots.read_bytes() == (
        b"# hand made\n" + SEED_LINE + b"/srv/nfs/home @lab(rw) 192.0.2.0/24(rw)\n"
    )
    assert exportfs_log.read_text() == "-ra\n-v\n"
    listed = exportfs_v()
    assert "192.0.2.10(async," in listed
    assert "/srv/nfs/iso" not in listed


def test_drop_in_file_and_directory_are_created(modules, guest_roots):
    drop_in = pathlib.Path("/etc/exports.d/xen_nfsroot.exports")
    modules.exportfs.add("/xen", SEED, exports=str(drop_in))
    assert drop_in.read_bytes() == SEED_LINE
    assert oct(drop_in.stat().st_mode & 0o777) == "0o644"
    assert modules.exportfs.reload()["files"] == [str(drop_in)]
    assert modules.exportfs.check_active("/xen", SEED, exports=str(drop_in))["confirmed"] == [
        "/xen for 192.0.2.10"]
    configured = modules.exportfs.list_configured()
    assert configured["/xen"][0]["file"] == str(drop_in)


def test_concurrent_writers_lose_nothing(loaders, guest_roots):
    guest_roots.write_text("# shared by several writers\n")
    add = loaders.modules.exportfs.add
    errors = []

    def writer(worker):
        try:
            for index in range(10):
                add(f"/srv/w{worker}/{index}", hosts=f"10.{worker}.0.{index}", options=["ro"])
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    text = guest_roots.read_text()
    assert text.startswith("# shared by several writers\n")
    assert sorted(text.splitlines()[1:]) == sorted(
        f"/srv/w{worker}/{index} 10.{worker}.0.{index}(ro)"
        for worker in range(4)
        for index in range(10)
    )


def test_concurrent_processes_lose_nothing(guest_roots, tmp_path):
    """Separate salt-call processes adding exports to one file at the same time."""
    guest_roots.write_text("# shared\n")
    salt_call = pathlib.Path(sys.executable).with_name("salt-call")
    for worker in range(4):
        # Each process its own Salt directories: with the defaults, four
        # salt-calls starting at once race to create /etc/salt/pki/minion.
        conf = tmp_path / f"conf{worker}"
        conf.mkdir()
        root = tmp_path / f"root{worker}"
        (conf / "minion").write_text(f"root_dir: {root}\nfile_client: local\n")
    procs = [
        subprocess.Popen(
            [str(salt_call), "--local", "--config-dir", str(tmp_path / f"conf{worker}"),
             "--out", "quiet", "exportfs.add", f"/srv/p{worker}", f"hosts=10.9.9.{worker}",
             "options=[ro]"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for worker in range(4)
    ]
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr.read()
    lines = guest_roots.read_text().splitlines()
    assert lines[0] == "# shared"
    assert sorted(lines[1:]) == [f"/srv/p{worker} 10.9.9.{worker}(ro)" for worker in range(4)]


@pytest.mark.usefixtures("local_host_lookups")
@pytest.mark.parametrize("source", EXPORTS_FILES, ids=[path.name for path in EXPORTS_FILES])
def test_seed_export_added_to_a_data_file(modules, guest_roots, source):
    """The exact bytes added, and the real exportfs's verdict on the file unchanged."""
    case = EXPORTS_CASES[source.name]
    data = source.read_bytes()
    guest_roots.write_bytes(data)
    with exported_directories(source.name):
        before = exportfs_ra()
        assert before[0] == case.exportfs_status, before[1]
        if case.added is None:  # the file ends inside a quote: nothing is written
            with pytest.raises(Exception, match="quote"):
                modules.exportfs.add("/xen", SEED)
            assert guest_roots.read_bytes() == data
            assert exportfs_ra() == before
            return
        assert modules.exportfs.add("/xen", SEED)["changed"] is True
        assert guest_roots.read_bytes() == data + case.added
        assert exportfs_ra() == before  # same exit status, same messages
        assert modules.exportfs.add("/xen", SEED)["changed"] is False
        assert guest_roots.read_bytes() == data + case.added


@pytest.mark.usefixtures("local_host_lookups")
def test_seed_export_added_to_corpus_file(modules, guest_roots, corpus_exports):
    data = corpus_exports.read_bytes()
    guest_roots.write_bytes(data)
    before = exportfs_ra()
    result = modules.exportfs.add("/xen", SEED)
    assert result["changed"] is True
    new = guest_roots.read_bytes()
    kept = data if data.endswith(b"\n") or not data else data + b"\n"
    assert new in (kept + SEED_LINE, kept + b"\n" + SEED_LINE)
    assert exportfs_ra() == before  # same exit status, no new message
    again = modules.exportfs.add("/xen", SEED)
    assert again["changed"] is False
    assert guest_roots.read_bytes() == new
