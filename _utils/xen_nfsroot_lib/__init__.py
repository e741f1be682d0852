"""
xen-nfsroot's library: the pure code of the formula, imported by name.

Everything here works without a Salt loader: the file formats (exports(5),
fstab, xl.cfg, xm configs, ``xl list`` and ``exportfs -v`` output), one
validator per kind of value (:mod:`xen_nfsroot_lib.values`), the guest
schema, placement, the console verdict, the kernel reader, the migration
trust's file plans and the one safe file routine. The execution and state
modules (``_modules/``, ``_states/``) import it by name and keep only what
touches the live system; nothing here uses a Salt dunder.

It reaches a minion either way the formula does: ``pip install`` puts it in
site-packages beside the ``xen_nfsroot`` entry point; ``saltutil.sync_all``
(or ``sync_utils``) copies ``_utils/`` into the minion's extension modules,
a directory Salt puts on ``sys.path`` while it loads execution and state
modules. When a minion has both, the installed package wins: Salt appends the
synced directory at the end of ``sys.path``, after site-packages (an editable
install's import hook comes after every ``sys.path`` entry, so there the
synced copy wins).
"""


def __virtual__():
    # Salt's utils loader also sees this package once _utils/ is synced: it is
    # a library imported by name, never an ``__utils__`` module.
    return (False, "xen_nfsroot_lib is a library imported by name, not a utils module")
