"""A state run killed with SIGKILL in the middle of writing exports.

``salt-call`` applies 200 ``nfs_export.present`` states to one drop-in file
and is killed (``kill -9``) at several points of the run. After each kill,
every line of the file is one of the lines the run writes (no torn line,
nothing half written), and the real ``exportfs -ra`` accepts it; the next
complete run leaves no temporary file behind.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

DROP_IN = pathlib.Path("/etc/exports.d/xen-nfsroot.exports")
EXPORTS = 200


def line(index):
    return f"/srv/killed/{index} 10.77.{index // 250}.{index % 250 + 1}(rw,no_subtree_check)"


@pytest.fixture
def salt_call(tmp_path, system_exports):
    for index in range(EXPORTS):
        pathlib.Path(f"/srv/killed/{index}").mkdir(parents=True, exist_ok=True)
    tree = tmp_path / "tree"
    tree.mkdir()
    states = {
        f"/srv/killed/{index}": {"nfs_export.present": [
            {"hosts": f"10.77.{index // 250}.{index % 250 + 1}"},
            {"options": ["rw", "no_subtree_check"]},
            {"exports": str(DROP_IN)},
        ]}
        for index in range(EXPORTS)
    }
    (tree / "exports200.sls").write_text(json.dumps(states))
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "minion").write_text(
        f"root_dir: {tmp_path / 'root'}\nfile_client: local\n"
        f"file_roots:\n  base:\n    - {tree}\n"
    )
    command = [str(pathlib.Path(sys.executable).with_name("salt-call")), "--local",
               "--config-dir", str(conf), "--out", "quiet", "state.apply", "exports200"]
    return command


def lines_written():
    try:
        return DROP_IN.read_text().splitlines()
    except FileNotFoundError:
        return []


def kill_when(command, lines):
    """Start the run, SIGKILL it once the drop-in holds at least `lines` lines."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while len(lines_written()) < lines and proc.poll() is None:
        assert time.monotonic() < deadline, "the run wrote nothing for 300 s"
        time.sleep(0.002)
    finished = proc.poll() is not None
    if not finished:
        # The run's own process group (start_new_session): salt-call and
        # whatever it started, nothing else.
        assert os.getpgid(proc.pid) == proc.pid
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    return not finished


def test_kill_9_in_the_middle_of_a_run_tears_nothing(salt_call):
    wanted = {line(index) for index in range(EXPORTS)}
    killed = []
    for target in (1, 23, 77, 131, 189, 199):
        killed.append(kill_when(salt_call, target))
        written = lines_written()
        assert set(written) <= wanted, set(written) - wanted
        assert len(written) == len(set(written))
        ra = subprocess.run(["exportfs", "-ra"], capture_output=True, text=True, check=False)
        assert ra.returncode == 0, ra.stderr
    assert any(killed), "no run was killed before it ended"
    finished = subprocess.run(salt_call, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert set(lines_written()) == wanted
    assert sorted(p.name for p in DROP_IN.parent.iterdir()) == [DROP_IN.name]
    listed = subprocess.run(["exportfs", "-v"], capture_output=True, text=True, check=True)
    assert sum(entry.startswith("/srv/killed/") for entry in listed.stdout.split()) == EXPORTS
