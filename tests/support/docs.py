"""The README's table of guest keys, rendered from the pillar schema."""

import json

from tests.support.loader import MODULES, functions
from xen_nfsroot.modules import xen_nfsroot

BEGIN = "<!-- guest keys: generated from xen_nfsroot.schema(), checked by tests -->"
END = "<!-- end of guest keys -->"


def schema():
    """xen_nfsroot.schema() with the real validators loaded."""
    salt = functions()
    for module in MODULES:
        module.__salt__ = salt
        module.__context__ = {}
    return xen_nfsroot.schema()


def _default(field):
    if field["required"]:
        return "required"
    return f"`{json.dumps(field['default'])}`"


def guest_key_table():
    rows = ["| key | default | becomes | what |", "| --- | --- | --- | --- |"]
    for name, field in schema().items():
        becomes = ", ".join(f"`{state}`" for state in field["states"]) or "-"
        rows.append(f"| `{name}` | {_default(field)} | {becomes} | {field['doc']} |")
    return "\n".join([BEGIN, *rows, END])
