"""The CLI examples of the formula's execution modules, as a reader of
``sys.doc`` would type them.

Each public function's docstring has a ``CLI Example:`` block. An example is
either a minion-side call (``salt TARGET mod.fn ARGS``, ``salt-call mod.fn
ARGS``), run by tests/functional/test_cli_examples.py through the real loader
on a dom0 made of the test doubles, or a master-side one (``salt-run salt.cmd
mod.fn ARGS``, for functions that ask other minions), run by the integration
tests on their master.
"""

import inspect
import re
import shlex

import salt.utils.args

from tests.support import REPO

_EXAMPLE_START = re.compile(r"^\s*CLI Examples?:\s*$", re.MULTILINE)
MASTER_PREFIX = ("salt-run", "salt.cmd")


def examples_of(function):
    """The example command lines of a docstring's CLI Example block
    (continuation lines ending in a backslash joined)."""
    doc = inspect.getdoc(function) or ""
    match = _EXAMPLE_START.search(doc)
    if not match:
        return []
    lines, pending = [], ""
    for line in doc[match.end():].splitlines():
        text = line.strip()
        if pending:
            text, pending = pending + " " + text, ""
        if text.endswith("\\"):
            pending = text[:-1].strip()
            continue
        if text.startswith(("salt ", "salt-call ", "salt-run ")):
            lines.append(text)
    return lines


def is_master_side(example):
    return tuple(shlex.split(example)[:2]) == MASTER_PREFIX


def public_functions():
    """``[(virtualname.function, function)]`` of every execution module."""
    found = []
    for path in sorted((REPO / "_modules").glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = __import__(f"xen_nfsroot.modules.{path.stem}", fromlist=["_"])
        virtualname = getattr(module, "__virtualname__", path.stem)
        for name, value in vars(module).items():
            if (name.startswith("_") or not inspect.isfunction(value)
                    or value.__module__ != module.__name__):
                continue
            found.append((f"{virtualname}.{name}", value))
    return found


def parse(example):
    """``(function name, args, kwargs)`` of an example, its arguments parsed
    as Salt's CLI parses them (YAML values, ``key=value`` keywords)."""
    words = shlex.split(example)
    if tuple(words[:2]) == MASTER_PREFIX:
        words = words[2:]
    elif words[0] == "salt":
        words = words[2:]
    else:
        words = words[1:]
    while words and words[0].startswith("-"):
        words = words[1:]
    name, *arguments = words
    args, kwargs = salt.utils.args.parse_input(arguments, condition=False)
    return name, list(args), kwargs


FUNCTIONS = public_functions()
EXAMPLES = [(name, example) for name, function in FUNCTIONS for example in examples_of(function)]
MINION_EXAMPLES = [(name, ex) for name, ex in EXAMPLES if not is_master_side(ex)]
MASTER_EXAMPLES = [(name, ex) for name, ex in EXAMPLES if is_master_side(ex)]
