"""
Guest kernels on the dom0: can a Xen guest's kernel, with or without its
initramfs, mount its root filesystem over NFS?

:func:`check` answers before the guest is booted, from the files on the dom0
(read with ``open(path, "rb")``; nothing runs in a guest tree);
:func:`kernel_version`, :func:`kernel_config` and :func:`ramdisk_files` show
what it read. The reader and the verdict are the library's:
:mod:`xen_nfsroot_lib.kernel_image` (bzImage, ELF and compressed kernels,
the release, the embedded IKCONFIG), :mod:`xen_nfsroot_lib.initramfs` (cpio
archives, ``lsinitramfs``/``lsinitrd``), :mod:`xen_nfsroot_lib.compression`
(bounded decompression) and :mod:`xen_nfsroot_lib.kernel` (the configuration
and the verdict). The ``zstd``, ``lz4``, ``prlimit``, ``lsinitramfs`` and
``lsinitrd`` commands run through ``cmd.run_all``.

A check that cannot be made is not a failure: with no configuration found,
or an initramfs that cannot be read, the result says ``checked: False`` and
why; it is ``ok: False`` only when something found is missing.
"""

import copy

import salt.utils.path

from xen_nfsroot_lib import compression, initramfs

# ``kernel`` is every function's argument (the kernel file): the library goes by another name.
from xen_nfsroot_lib import kernel as kernels

__virtualname__ = "guest_kernel"

__all__ = ["check", "kernel_version", "kernel_config", "ramdisk_files"]


def __virtual__():
    return __virtualname__


def _runner():
    """How the library runs zstd, lz4, prlimit, lsinitramfs and lsinitrd."""
    return compression.Runner(__salt__["cmd.run_all"], salt.utils.path.which)


def kernel_version(kernel):
    """
    Tell a kernel's release and where it was read.

    Returns ``{"version": RELEASE or None, "version_source": "setup header"
    | "banner" | "file name" | None, "format": "bzImage" | "ELF" |
    "gzip-compressed" | ... | None}``: the bzImage's version string, else
    the ``Linux version RELEASE`` banner of the decompressed kernel, else
    the file name (``vmlinuz-RELEASE``, the symlink's target first).

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.kernel_version /boot/vmlinuz-2.6.18-53.1.14.el5.myxen
    """
    return kernels.kernel_version(kernels.regular_file("kernel", kernel), _runner())


def kernel_config(kernel):
    """
    Find and read a kernel's configuration.

    ``config-RELEASE`` beside the kernel (and beside a symlink's target),
    else the configuration embedded in the image (``CONFIG_IKCONFIG``).

    Returns ``{"version", "version_source", "config": path |
    "embedded IKCONFIG" | None, "options": {...} | None, "reason": why
    nothing was found | None}``.

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.kernel_config /boot/vmlinuz-2.6.18-53.1.14.el5.myxen
    """
    return kernels.kernel_config(kernels.regular_file("kernel", kernel), _runner())


def ramdisk_files(ramdisk):
    """
    List the names in an initramfs image (its cpio archives, early and main).

    gzip, bzip2, xz and lzma are read in Python, zstd and lz4 with their
    commands; failing that ``lsinitramfs`` or ``lsinitrd`` lists the image.
    Raises an error saying why when the image cannot be read.

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.ramdisk_files /boot/initrd.img-6.1.0-50-amd64
    """
    return initramfs.ramdisk_files(kernels.regular_file("ramdisk", ramdisk), _runner())


def check(kernel, ramdisk=None, dhcp=False, guest_type="pv"):
    """
    Check, before booting, that a guest's kernel (and initramfs) can mount its root over NFS.

    kernel
        The kernel file on the dom0 (bzImage, ELF vmlinux, compressed or not).
    ramdisk
        The guest's initramfs, if it has one.
    dhcp
        ``True`` when the guest gets its address by DHCP.
    guest_type
        ``pv`` (default) or ``pvh``.

    Returns ``{"checked", "ok", "kernel", "version", "version_source",
    "config", "ramdisk", "problems", "evidence", "reason"}``. ``ok`` is
    ``False`` with a problem per missing option or file, naming the file
    that says so; ``checked`` is ``False`` and ``ok`` ``None`` when nothing
    is missing but the kernel's configuration was not found or the
    initramfs cannot be read, ``reason`` saying why. A kernel or initramfs
    that does not exist or is not a regular file is an error. One answer per
    run for the same question (kept in ``__context__``: the guests of a run
    that share a kernel read it once).

    CLI Example:

    .. code-block:: bash

        salt '*' guest_kernel.check /boot/vmlinuz-2.6.18-53.1.14.el5.myxen dhcp=True
    """
    key = ("guest_kernel.check", kernel, ramdisk, bool(dhcp), guest_type)
    if key not in __context__:
        __context__[key] = kernels.check(kernel, _runner(), ramdisk=ramdisk, dhcp=dhcp,
                                         guest_type=guest_type)
    return copy.deepcopy(__context__[key])
