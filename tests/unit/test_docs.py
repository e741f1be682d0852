"""The reference documents say what the code does: the README's key table,
pillar.example, and a CLI example for every public execution function."""

import inspect

import salt.utils.yaml

from tests.support import REPO
from tests.support.docs import BEGIN, END, guest_key_table, schema
from tests.support.loader import MODULES
from xen_nfsroot_lib import fstab, guest_config

EXAMPLE = salt.utils.yaml.safe_load((REPO / "pillar.example").read_text())["xen_nfsroot"]


def test_the_readme_lists_every_guest_key_as_the_schema_defines_it():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index(BEGIN):readme.index(END) + len(END)]
    assert table == guest_key_table()


def test_pillar_example_shows_every_guest_key_with_its_default():
    example = EXAMPLE["guests"]["XenGuest"]
    fields = schema()
    assert sorted(example) == sorted(fields)
    # Defaults a state or module keeps for itself, shown as they apply.
    owners = {"fstab": fstab.check_nfs_root({}), "config_dir": guest_config.CONFIG_DIR}
    for name, field in fields.items():
        if field["required"]:
            continue
        assert example[name] == owners.get(name, field["default"]), name


def test_every_public_execution_function_has_a_cli_example():
    for module in MODULES:
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function):
                continue
            if function.__module__ != module.__name__:
                continue
            assert "CLI Example:" in (function.__doc__ or ""), f"{module.__name__}.{name}"
