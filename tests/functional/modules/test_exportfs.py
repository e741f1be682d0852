"""exportfs execution module with the real Salt loader and the real ``exportfs``.

Runs in tests/isolate's private mount namespace: /etc, /var/lib/nfs, /srv and
/xen are scratch overlays, so the tests write /etc/exports and create the
exported directories freely.
"""

import pathlib
import re
import subprocess
import sys
import tempfile
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# Directory names exportfs must read back as exactly themselves, each with
# the sibling a reader that splits or decodes the written text otherwise
# would export instead (None: no such sibling).
HOSTILE_NAMES = [
    ("a\\\\b", "a\\b"),
    ("tail\\", None),
    ("a\\04", None),
    ("sp ace", "sp"),
    ("tab\tx", "tab"),
    ("vt\x0bff\x0cfs\x1cx", None),
    ('q"uote', "quote"),
    ("#hash", None),
    ("mid#hash", "mid"),
    ("\u00fcn\u00efc\u00f6d\u00e9 \u2603", None),
    ("-dash", None),
    ("x(rw)", "x"),
]


@pytest.fixture
def hostile_base(guest_roots):
    """A fresh directory in the /srv overlay for a test's hostile names."""
    (pathlib.Path("/srv") / "hostile").mkdir(exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(dir="/srv/hostile"))


def export_hostile(modules, base, name, sibling):
    directory = base / name
    directory.mkdir(parents=True)
    if sibling is not None:
        (base / sibling).mkdir(parents=True, exist_ok=True)
    modules.exportfs.add(str(directory), hosts="192.0.2.10", options=["ro", "no_subtree_check"])
    modules.exportfs.reload()
    listed = modules.exportfs.list_active()
    assert str(directory) in listed, listed
    if sibling is not None:
        assert str(base / sibling) not in listed
    check = modules.exportfs.check_active(
        str(directory), [{"hosts": "192.0.2.10", "options": ["ro", "no_subtree_check"]}])
    assert check["problems"] == []
    assert modules.exportfs.list_configured()[str(directory)][0]["hosts"] == "192.0.2.10"


@pytest.mark.parametrize(("name", "sibling"), HOSTILE_NAMES)
def test_a_hostile_path_is_exported_as_exactly_that_directory(modules, hostile_base, name,
                                                              sibling):
    """exportfs reads the written path as exactly the directory asked for:
    ``exportfs -v`` lists it, and not the directory another reading of the
    written text would name."""
    export_hostile(modules, hostile_base, name, sibling)


@pytest.mark.parametrize("name", ["a\\040b", "a\\\\040b", "x\\134", "\\011"])
def test_a_path_nfs_utils_reads_back_as_another_is_refused(modules, guest_roots, hostile_base,
                                                           name):
    """nfs-utils writes a backslash to its etab as ``\\134`` and reads
    ``\\134040`` back as a space: a backslash followed by three octal digits
    would export another directory (``a b`` for ``a\\040b``)."""
    base = hostile_base
    (base / name).mkdir()
    (base / "a b").mkdir()
    before = guest_roots.read_bytes()
    with pytest.raises(Exception, match="three octal digits"):
        modules.exportfs.add(str(base / name), hosts="192.0.2.10", options=["ro"])
    assert guest_roots.read_bytes() == before
    assert str(base / "a b") not in modules.exportfs.list_active()


# Characters exports(5), exportfs's etab or ``exportfs -v`` might read
# otherwise: blanks, controls, quotes, comments, escapes, option syntax.
HOSTILE_CHARACTERS = ' \t\x0b\x0c\x1c\r\n\\"#()*,=-01347a\u00fc\u2603'


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=HOSTILE_CHARACTERS, min_size=1, max_size=12).filter(
    lambda name: name not in (".", "..")))
def test_any_hostile_path_is_refused_or_exported_as_exactly_itself(modules, guest_roots,
                                                                  hostile_base, name):
    """Whatever the name: a clear refusal that changes no byte of the exports
    file, or ``exportfs -v`` lists exactly that directory (one exportfs -ra
    per example)."""
    guest_roots.write_text("")
    base = pathlib.Path(tempfile.mkdtemp(dir=hostile_base))
    (base / name).mkdir()
    refused = "\n" in name or "\r" in name or re.search(r"\\[0-7]{3}", name)
    if refused:
        with pytest.raises(Exception, match=r"newline or NUL|three octal digits"):
            modules.exportfs.add(str(base / name), hosts="192.0.2.10", options=["ro"])
        assert guest_roots.read_bytes() == b""
        return
    modules.exportfs.add(str(base / name), hosts="192.0.2.10",
                         options=["ro", "no_subtree_check"])
    modules.exportfs.reload()
    listed = modules.exportfs.list_active()
    assert list(listed) == [str(base / name)]
