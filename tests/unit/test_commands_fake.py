"""The shared cmd.run_all fake holds the formula to its promises."""

import pytest

from tests.support.commands import Commands


def test_answers_by_the_longest_prefix_and_records_calls():
    commands = Commands().answer(["exportfs"], stdout="any").answer(["exportfs", "-v"],
                                                                    stdout="listing")
    assert commands(["/usr/sbin/exportfs", "-v"], python_shell=False)["stdout"] == "listing"
    assert commands(["exportfs", "-ra"], python_shell=False)["stdout"] == "any"
    assert commands(["xl", "list"], python_shell=False)["retcode"] == 0
    assert commands.argv() == [["/usr/sbin/exportfs", "-v"], ["exportfs", "-ra"], ["xl", "list"]]
    assert commands.programs() == ["exportfs", "exportfs", "xl"]


def test_refuses_a_shell_string_and_a_shell():
    commands = Commands()
    with pytest.raises(AssertionError):
        commands("exportfs -ra", python_shell=False)
    with pytest.raises(AssertionError):
        commands(["exportfs", "-ra"])


def test_runs_the_real_command_when_asked():
    assert Commands(real=True)(["sh", "-c", "echo hi; exit 3"], python_shell=False) == {
        "retcode": 3, "stdout": "hi\n", "stderr": "", "pid": 1}
