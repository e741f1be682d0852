"""Where the lab's files are: this folder, the repository around it, the cache."""

import os
import pathlib

LAB = pathlib.Path(__file__).resolve().parent
REPO = LAB.parent
# The images, the KVM verdicts and the run folders (lab/build, lab/run).
CACHE_DIR = pathlib.Path(os.environ.get("XEN_NFSROOT_CACHE", "/var/cache/xen-nfsroot"))
