"""The shape of the code: one library of pure code under thin loader modules.

- the library (``_utils/xen_nfsroot_lib``) uses no Salt dunder;
- execution modules call each other through ``__salt__`` only for
  operations on the live system, never for pure code;
- no regular expression is compiled in two files;
- no file of the formula or the lab is much over 700 lines.
"""

import ast
import re

from tests.support import REPO

LIBRARY = REPO / "_utils" / "xen_nfsroot_lib"
MODULES = REPO / "_modules"
STATES = REPO / "_states"
DUNDERS = ("__salt__", "__opts__", "__context__", "__pillar__", "__grains__", "__utils__",
           "__states__", "__low__", "__running__", "__lowstate__")
#: The formula's own execution modules.
FORMULA_MODULES = {path.stem for path in MODULES.glob("*.py") if not path.stem.startswith("_")}
#: Calls between execution modules that are operations on the live system.
OPERATIONS_BETWEEN_MODULES = {
    ("guest_console", "xm.state"),             # the domain's state while a boot is watched
    ("guest_console", "xm.mined_domains"),     # a verdict: up on another of its dom0s
    ("xm", "xen_config.read_config"),          # the name in a config file on disk
    ("xen_nfsroot", "xm.list_domains"),        # which guests boot: those run in parallel
}
MAX_LINES = 720


def python_files(*folders):
    for folder in folders:
        yield from sorted(path for path in folder.glob("*.py") if path.stat().st_size)


def test_the_library_uses_no_salt_dunder():
    found = []
    for path in python_files(LIBRARY):
        tree = ast.parse(path.read_text())
        found += [f"{path.name}:{node.lineno} {node.id}" for node in ast.walk(tree)
                  if isinstance(node, ast.Name) and node.id in DUNDERS]
    assert found == []


def _salt_calls(path):
    """(module, 'module.function') for every __salt__["module.function"] in path."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id == "__salt__" and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)):
            yield path.stem, node.slice.value


def test_modules_call_each_other_only_for_operations():
    between = {(caller, called) for path in python_files(MODULES)
               for caller, called in _salt_calls(path)
               if called.split(".")[0] in FORMULA_MODULES}
    assert between == OPERATIONS_BETWEEN_MODULES


def test_no_pattern_is_compiled_in_two_files():
    seen = {}
    for path in python_files(LIBRARY, MODULES, STATES):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "compile"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                seen.setdefault(node.args[0].value, set()).add(path.name)
    assert {pattern: files for pattern, files in seen.items() if len(files) > 1} == {}


def test_no_file_is_much_over_700_lines():
    long_files = {str(path.relative_to(REPO)): lines
                  for path in python_files(LIBRARY, MODULES, STATES, REPO / "lab")
                  if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert long_files == {}


def test_library_modules_are_imported_at_module_level():
    """Salt puts a synced library on sys.path only while it loads a module:
    an import inside a function would fail later on that install path."""
    late = []
    for path in python_files(MODULES, STATES, LIBRARY):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                late += [f"{path.name}:{inner.lineno}" for inner in ast.walk(node)
                         if isinstance(inner, (ast.Import, ast.ImportFrom))
                         and "xen_nfsroot_lib" in ast.unparse(inner)]
    assert late == []


def test_the_library_is_named_in_the_readme_layout():
    readme = (REPO / "README.md").read_text()
    missing = [path.name for path in python_files(LIBRARY)
               if path.stem != "__init__" and not re.search(rf"`{path.name}`", readme)]
    assert missing == []
