"""The one ``cmd.run_all`` fake of the unit tests.

It checks what the formula promises about every command (an argument list,
``python_shell=False``), records each call, and answers from a table of
argument-list prefixes (the longest that matches wins), from a default, or,
with ``real=True``, by running the command for real.

    commands = Commands()
    commands.answer(["exportfs", "-v"], stdout=LISTING)
    commands.answer(["exportfs", "-ra"], retcode=1, stderr="exportfs: bad option list")
    module.__salt__["cmd.run_all"] = commands
    ...
    assert commands.argv() == [["exportfs", "-ra"], ["exportfs", "-v"]]
"""

import subprocess


def result(retcode=0, stdout="", stderr=""):
    """A ``cmd.run_all`` return value."""
    return {"retcode": retcode, "stdout": stdout, "stderr": stderr, "pid": 1}


class Commands:
    """A ``cmd.run_all`` that records its calls and answers from a table."""

    def __init__(self, real=False, default=None):
        self.calls = []
        self.answers = {}
        self.real = real
        self.default = default or result()

    def answer(self, prefix, retcode=0, stdout="", stderr=""):
        """Answer every command starting with prefix (a list of arguments;
        the program may be given by its base name)."""
        self.answers[tuple(prefix)] = result(retcode, stdout, stderr)
        return self

    def _lookup(self, cmd):
        program = cmd[0].rsplit("/", 1)[-1]
        for argv in (tuple(cmd), (program, *cmd[1:])):
            for length in range(len(argv), 0, -1):
                if argv[:length] in self.answers:
                    return dict(self.answers[argv[:length]])
        return None

    def __call__(self, cmd, python_shell=None, timeout=None, **kwargs):
        assert isinstance(cmd, list), f"a command must be an argument list, got {cmd!r}"
        assert python_shell is False, f"python_shell must be False for {cmd!r}"
        self.calls.append({"argv": list(cmd), "timeout": timeout, **kwargs})
        answer = self._lookup(cmd)
        if answer is not None:
            return answer
        if self.real:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  stdin=subprocess.DEVNULL, timeout=timeout or 120)
            return result(proc.returncode, proc.stdout, proc.stderr)
        return dict(self.default)

    def argv(self):
        """The argument lists of every call, in order."""
        return [call["argv"] for call in self.calls]

    def programs(self):
        """The base name of the program of every call, in order."""
        return [call["argv"][0].rsplit("/", 1)[-1] for call in self.calls]
