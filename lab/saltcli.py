"""The salt CLI, run as a user runs it against the lab's master.

Every command's real output is kept in ``RUN/out/`` (``NN-label.cmd``,
``.out``, ``.err``, ``.rc``, numbered in the order they ran: the e2e tests
read them by label) and its duration in ``results.json`` (``salt_calls``).
A command may run as long as something moves: its own output, the dom0s'
consoles, their minions' events on the master's bus.

``salt`` and ``salt-run`` answer in JSON (``--out json``); one job may run
several functions (``compound``), and several facts of a dom0 are read in
one ``cmd.run_all`` (``facts``).
"""

import json
import pathlib
import statistics
import subprocess
import sys
import time

import facts
import saltout
from progress import CEILING, IDLE, WaitError, file_sign, wait_until

# The salt CLI of the Python running the lab (its virtual environment).
BIN = pathlib.Path(sys.executable).parent
# ``salt -t``: how long the CLI waits for a return before it asks the minion
# (saltutil.find_job) whether the job still runs; it keeps waiting as long as
# the answer is yes.  gather_job_timeout: how long it waits for that answer.
JOB_TIMEOUT = 120
GATHER_JOB_TIMEOUT = 300


def tail(text, lines=25):
    """The last ``lines`` lines of ``text``, for a message."""
    return "\n".join((text or "").splitlines()[-lines:])


class SaltCLI:
    """The CLI on a ``runner.Lab``: its run folder, its processes, its
    dom0s and the master's event bus (``lab.events``)."""

    def __init__(self, lab, error):
        self.lab = lab
        self.error = error
        self.count = 0

    def command(self, label, argv, signs=(), ceiling=CEILING, check=True):
        """Run ``argv``, keep its output in RUN/out, return (rc, stdout, stderr).

        It may run as long as something moves: its own output or one of
        ``signs``; it is stopped after IDLE s of stillness or at ``ceiling``.
        """
        self.count += 1
        stem = self.lab.out / f"{self.count:02d}-{label}"
        stem.with_suffix(".cmd").write_text(" ".join(str(a) for a in argv) + "\n")
        out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
        began = time.monotonic()
        with open(out, "w") as stdout, open(err, "w") as stderr:
            proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
        self.lab.procs[stem.name] = proc
        try:
            wait_until(f"{label} ({pathlib.Path(str(argv[0])).name})",
                       proc.poll, [file_sign(out), file_sign(err), *signs],
                       (IDLE, ceiling), interval=0.1)
        except WaitError as exc:
            self.lab.kill(proc)
            raise self.error(str(exc)) from exc
        finally:
            self.lab.procs.pop(stem.name, None)
        took = time.monotonic() - began
        stem.with_suffix(".rc").write_text(f"{proc.returncode}\n")
        self.lab.results.salt_call(label, pathlib.Path(str(argv[0])).name, took)
        stdout, stderr = out.read_text(), err.read_text()
        if check and proc.returncode != 0:
            raise self.error(
                f"{label}: exit status {proc.returncode}\n{tail(stdout)}\n{tail(stderr)}"
            )
        return proc.returncode, stdout, stderr

    def progress_signs(self, since, vms=None):
        signs = []
        for vm in vms or self.lab.vms:
            signs += [self.lab.events.sign(vm.minion, since), vm.console.sign()]
        return signs

    def salt(self, label, *args, check=True, ceiling=CEILING, vm=None):
        """``salt MINION ARGS`` with JSON output: the minion's return (the
        first dom0's unless ``vm``)."""
        vm = vm or self.lab.dom0
        answers = self.salt_all(label, *args, check=check, ceiling=ceiling, vms=[vm])
        return None if answers is None else answers.get(vm.minion)

    def salt_all(self, label, *args, check=True, ceiling=CEILING, vms=None):
        """``salt -L MINION,... ARGS`` (every dom0 unless ``vms``), one job for
        all: {minion: return}."""
        vms = vms or self.lab.vms
        target = [vms[0].minion] if len(vms) == 1 else ["-L", ",".join(v.minion for v in vms)]
        # Not --static: with it the CLI runs in batch mode, which first pings
        # every target (one more job for the minion per command).
        argv = [BIN / "salt", "-c", self.lab.master.conf_dir, "--out", "json",
                "-t", str(JOB_TIMEOUT), *target, *args]
        rc, stdout, _ = self.command(label, argv, self.progress_signs(time.monotonic(), vms),
                                     ceiling=ceiling, check=check)
        try:
            answer = saltout.objects(stdout)
        except ValueError as exc:
            raise self.error(f"{label}: output is not JSON:\n{tail(stdout)}") from exc
        missing = [v.minion for v in vms if v.minion not in answer]
        if missing:
            if check:
                raise self.error(
                    f"{label}: {', '.join(missing)} did not answer (exit status {rc})")
            if len(vms) == 1:
                return None
        return answer

    def salt_run(self, label, *args, check=True):
        """``salt-run ARGS`` with JSON output: (exit status, its answer)."""
        argv = [BIN / "salt-run", "-c", self.lab.master.conf_dir, "--out", "json", *args]
        rc, stdout, _ = self.command(label, argv, self.progress_signs(time.monotonic()),
                                     check=check)
        try:
            return rc, json.loads(stdout) if stdout.strip() else None
        except ValueError:
            return rc, stdout

    def compound(self, label, calls, vm=None, vms=None, check=True):
        """One job running several functions ((function, *args) each):
        {function: return} (of the first dom0 unless ``vm``), or with
        ``vms`` one job on each: {minion: {function: return}}.  ``check``:
        the salt CLI's exit status must be 0 (a failed state makes it 1)."""
        argv = [",".join(call[0] for call in calls)]
        for index, call in enumerate(calls):
            argv += (["@@"] if index else []) + list(call[1:])
        if vms:
            every = self.salt_all(label, "--args-separator", "@@", *argv, vms=vms, check=check)
            wrong = {m: a for m, a in every.items() if not isinstance(a, dict)}
            if wrong:
                raise self.error(f"{label}: {wrong!r}")
            return every
        answers = self.salt(label, "--args-separator", "@@", *argv, vm=vm, check=check)
        if not isinstance(answers, dict):
            raise self.error(f"{label}: {answers!r}")
        return answers

    def facts(self, label, wanted, vm=None):
        """Several facts of a dom0 in one cmd.run_all: {name: {stdout, stderr, retcode}}."""
        ret = self.salt(label, "cmd.run_all", facts.script(wanted), "python_shell=True", vm=vm)
        if not isinstance(ret, dict) or ret.get("retcode") != 0:
            raise self.error(f"{label}: unexpected answer {ret!r}")
        try:
            return facts.parse(ret["stdout"])
        except ValueError as exc:
            raise self.error(f"{label}: {exc}") from exc

    def round_trips(self, count):
        """``count`` test.ping and ``cmd.run_all "xl list"`` round trips, one
        at a time: the cost of one Salt call to the dom0, end to end."""
        if count <= 0:
            return
        results = self.lab.results
        for label, args in (("rt-test-ping", ("test.ping",)),
                            ("rt-cmd-run-all", ("cmd.run_all", "xl list"))):
            took = []
            for _ in range(count):
                began = time.monotonic()
                self.salt(label, *args)
                took.append(time.monotonic() - began)
            key = label[3:].replace("-", "_")
            results.timing(f"round_trip_{key}_median", statistics.median(took))
            results.setdefault("round_trips", {})[key] = [round(t, 2) for t in took]
        self.lab.say(f"round trips (s): {results['round_trips']}")
