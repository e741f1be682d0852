"""Hook the formula's loader modules (``_modules``, ``_states``) into Salt.

``pip install`` of this project registers :func:`loader_dirs` under the
``salt.loader`` entry point group, so every Salt process on the machine loads
the ``exportfs``, ``xm`` and ``xen_nfsroot`` execution modules and the
``nfs_export``, ``domu_fstab`` and ``xen_guest`` states without
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
