"""Hook the formula's loader modules (``_modules``, ``_states``) into Salt.

``pip install`` of this project registers :func:`loader_dirs` under the
``salt.loader`` entry point group, so every Salt process on the machine loads
every execution module of ``_modules`` (``exportfs``, ``xm``, ``xen_nfsroot``,
``xen_migrate``, ...) and every state of ``_states`` (``nfs_export``,
``domu_fstab``, ``xen_guest``, ``xen_migrate``, ...) without
``saltutil.sync_all``.
"""

import xen_nfsroot.modules
import xen_nfsroot.states


def loader_dirs():
    """Return the directories Salt's loader should search, by loader kind."""
    return {
        "modules": list(xen_nfsroot.modules.__path__),
        "states": list(xen_nfsroot.states.__path__),
    }
