"""Loader dictionaries for unit tests: the real functions of the formula's
execution modules, as ``__salt__`` holds them in a Salt run."""

import inspect

from xen_nfsroot.modules import (
    domu_fstab,
    domu_root,
    exportfs,
    guest_console,
    guest_kernel,
    xen_config,
    xen_migrate,
    xen_nfsroot,
    xm,
)

MODULES = (domu_fstab, domu_root, exportfs, guest_console, guest_kernel, xen_config,
           xen_migrate, xen_nfsroot, xm)


def functions(*modules):
    """``{"virtualname.function": function}`` of the public functions of modules
    (default: all of the formula's execution modules)."""
    found = {}
    for module in modules or MODULES:
        for name, value in vars(module).items():
            if (name.startswith("_") or not inspect.isfunction(value)
                    or value.__module__ != module.__name__):
                continue
            found[f"{module.__virtualname__}.{name}"] = value
    return found
