"""guest_console and the xen_console.logging state with the real Salt loader,
reading a real process table: a process that calls itself xenconsoled (its
argv as Debian's init script starts the daemon) stands in for the daemon."""

import subprocess
import sys
import time

import pytest

SLEEPER = "import time; time.sleep(120)"


@pytest.fixture
def xenconsoled():
    """Start a process whose /proc/PID/cmdline is ``xenconsoled ARGS...``."""
    started = []

    def start(*args):
        # The program name is argv[0] only: exec -a, as a shell would.
        process = subprocess.Popen(
            ["/bin/bash", "-c", 'exec -a xenconsoled "$@"', "bash",
             sys.executable, "-c", SLEEPER, *args])
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def wait_for_exec(modules, wanted):
    for _ in range(200):
        if modules.guest_console.daemon_logging() == wanted:
            return True
        time.sleep(0.05)
    return False


def test_no_xenconsoled_running(modules):
    assert modules.guest_console.daemon_logging() is None


def test_a_daemon_logging_guests_and_one_that_does_not(modules, xenconsoled, tmp_path):
    daemon = xenconsoled("--log=guest", f"--log-dir={tmp_path}", "--pid-file",
                         "/run/xenconsoled.pid")
    assert wait_for_exec(modules, str(tmp_path))
    daemon.kill()
    daemon.wait()
    xenconsoled("--timestamp=all", "--log=hv")
    assert wait_for_exec(modules, "")


def test_logging_state_restarts_only_a_daemon_logging_elsewhere(states, xenconsoled, tmp_path):
    settings = tmp_path / "default-xen"
    settings.write_text('XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"\n')
    xenconsoled("--log=guest", "--log-dir=/var/log/xen/console")
    here = states.xen_console.logging(name="/var/log/xen/console", settings_file=str(settings))
    assert here.result is True
    assert here.changes == {}
    assert here.comment == "xenconsoled logs guest consoles to /var/log/xen/console"

    elsewhere = str(tmp_path / "console")
    ret = states.xen_console.logging(name=elsewhere, settings_file=str(settings), test=True)
    assert ret.result is None
    assert ret.changes == {
        "settings": {"file": str(settings),
                     "old": 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"',
                     "new": f'XENCONSOLED_ARGS="--log=guest --log-dir={elsewhere}"'},
        "xenconsoled": {"old": "/var/log/xen/console", "new": elsewhere},
    }
    assert ret.comment == (f'Would set XENCONSOLED_ARGS="--log=guest --log-dir={elsewhere}" '
                           f"in {settings} and restart xenconsoled")
    assert settings.read_text() == (
        'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"\n')


@pytest.mark.parametrize("name", ["/var/log/$(touch MARK)", "/var/log/xen console",
                                  '/var/log/x"; touch MARK; "'])
def test_logging_state_refuses_a_directory_sh_would_misread(states, tmp_path, name):
    settings = tmp_path / "default-xen"
    settings.write_text("XENSTORED_ARGS=\n")
    ret = states.xen_console.logging(name=name, settings_file=str(settings))
    assert ret.result is False
    assert ret.changes == {}
    assert ret.comment.startswith(f"console_dir: {name!r} cannot travel as one word of "
                                  "XENCONSOLED_ARGS")
    assert settings.read_text() == "XENSTORED_ARGS=\n"


def test_logging_state_writes_what_sh_reads_back(states, tmp_path):
    settings = tmp_path / "default-xen"
    settings.write_text('XENCONSOLED_ARGS="--timestamp=all"\n')
    name = str(tmp_path / "con:sole,logs@x%y+z=1")
    ret = states.xen_console.logging(name=name, settings_file=str(settings), test=False)
    assert ret.changes["settings"]["new"] == (
        f'XENCONSOLED_ARGS="--timestamp=all --log=guest --log-dir={name}"')
    done = subprocess.run(["/bin/sh", "-c", '. "$1"; printf "%s\\n" $XENCONSOLED_ARGS', "sh",
                           str(settings)], capture_output=True, text=True, check=True,
                          cwd=tmp_path)
    assert done.stdout.splitlines() == ["--timestamp=all", "--log=guest", f"--log-dir={name}"]
