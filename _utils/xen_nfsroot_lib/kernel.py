"""
Whether a Xen guest's kernel, with or without its initramfs, can mount its
root filesystem over NFS: the kernel's configuration, the verdict, and the
check that reads both from the files on the dom0 (read with
``open(path, "rb")``; nothing runs in a guest tree). The image is read by
:mod:`xen_nfsroot_lib.kernel_image`, the initramfs by
:mod:`xen_nfsroot_lib.initramfs`.

The kernel's configuration is ``config-RELEASE`` beside the image (beside
the symlink and beside its target), or the one embedded with
``CONFIG_IKCONFIG``. Its lines are ``CONFIG_X=y``, ``=m``, ``="string"``,
``=number`` and ``# CONFIG_X is not set``.

The verdict (Kconfig and ``Documentation/admin-guide/nfs/nfsroot.rst``):

* Without an initramfs the kernel mounts the root itself: it needs
  ``CONFIG_ROOT_NFS=y``, which depends on ``CONFIG_NFS_FS=y`` and
  ``CONFIG_IP_PNP=y``, plus ``CONFIG_IP_PNP_DHCP=y`` for ``ip=dhcp`` and the
  Xen network frontend built in (``CONFIG_XEN_NETDEV_FRONTEND=y``). The
  Debian 12 kernel has ``CONFIG_NFS_FS=m`` and no ``CONFIG_IP_PNP``: it
  boots from NFS only with an initramfs.
* With an initramfs, the initramfs mounts the root: it needs an NFS boot
  script (initramfs-tools ``scripts/nfs``, dracut's ``sbin/nfsroot`` or its
  ``parse-nfsroot.sh`` cmdline hook) and the ``nfs`` and ``xen-netfront``
  modules (``lib/modules/RELEASE/.../nfs.ko[.gz|.xz|.zst]``) unless the
  kernel has them built in.
* Either way the kernel must boot as the guest type: ``CONFIG_XEN_PV=y``
  for ``pv`` (or, in kernels older than that option, such as the 2.6.18
  xenlinux ones, ``CONFIG_XEN=y``), ``CONFIG_XEN_PVH=y`` for ``pvh``.

A check that cannot be made is not a failure: with no configuration found,
or an initramfs that cannot be read, the result says ``checked: False`` and
why; it is ``ok: False`` only when something found is missing.
"""

import os
import re
import stat

from salt.exceptions import CommandExecutionError

from xen_nfsroot_lib import compression, initramfs, kernel_image, values
from xen_nfsroot_lib.compression import ImageError
from xen_nfsroot_lib.toolstack import GUEST_TYPES

EMBEDDED_CONFIG = "embedded IKCONFIG"

_SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
_HEX_RE = re.compile(r"^-?0[xX][0-9A-Fa-f]+$")
_DECIMAL_RE = re.compile(r"^-?[0-9]+$")

_INITRAMFS_TOOLS_SCRIPT = "scripts/nfs"
_DRACUT_NFS_RE = re.compile(
    r"^(?:(?:usr/)?s?bin/nfsroot"
    r"|(?:usr/lib|var/lib|lib)/dracut/hooks/cmdline/[0-9]*-?parse-nfsroot\.sh)$"
)
_MODULE_RE = re.compile(
    r"^(?:usr/)?lib/modules/([^/]+)/(?:.*/)?(nfs|xen[-_]netfront)\.ko(?:\.(?:gz|xz|zst))?$"
)
# Kernel module -> the option that builds it in.
_MODULES = (
    ("nfs", "CONFIG_NFS_FS", "the guest cannot mount NFS"),
    ("xen-netfront", "CONFIG_XEN_NETDEV_FRONTEND", "the guest has no network interface"),
)
# What a kernel needs to mount its root without an initramfs.
_ROOT_NFS_OPTIONS = (
    ("CONFIG_ROOT_NFS", "this kernel cannot mount its root over NFS without an initramfs"),
    ("CONFIG_NFS_FS", "the root over NFS without an initramfs needs the NFS client built in"),
    ("CONFIG_IP_PNP", "the kernel cannot configure its network (ip=) without an initramfs"),
)
_DHCP_OPTION = (
    "CONFIG_IP_PNP_DHCP",
    "the kernel cannot get its address by DHCP (ip=dhcp) without an initramfs",
)
_NETFRONT_OPTION = (
    "CONFIG_XEN_NETDEV_FRONTEND",
    "the guest's network interface (xen-netfront) must be built in without an initramfs",
)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def regular_file(field, path):
    """Return path, or raise naming the field and the path."""
    if not isinstance(path, str) or not path:
        raise values.invalid(field, path, "is not a file path")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CommandExecutionError(f"{field} {path} does not exist") from None
    except OSError as err:
        raise CommandExecutionError(f"{field} {path} cannot be read: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        raise CommandExecutionError(f"{field} {path} is not a regular file")
    return path


def check_guest_type(guest_type, field="guest_type"):
    """``pv`` or ``pvh``."""
    if guest_type not in GUEST_TYPES:
        raise values.invalid(field, guest_type, f"is not one of {', '.join(GUEST_TYPES)}")
    return guest_type


# ---------------------------------------------------------------------------
# The configuration file format, and where a kernel's is
# ---------------------------------------------------------------------------


def _config_value(raw):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    if _HEX_RE.match(raw):
        return int(raw, 16)
    if _DECIMAL_RE.match(raw):
        return int(raw, 10)
    return raw


def parse_config(text):
    """
    Parse a kernel configuration (``.config``, ``/boot/config-RELEASE``).

    Returns ``{"CONFIG_X": value}``: ``"y"``, ``"m"``, ``"n"`` for
    ``# CONFIG_X is not set``, a string without its quotes for
    ``CONFIG_X="..."``, an integer for a decimal or ``0x`` number. Other
    lines (comments, blanks) are ignored.
    """
    options = {}
    for raw in text.splitlines():
        line = raw.strip()
        match = _SET_RE.match(line)
        if match:
            options[match.group(1)] = _config_value(match.group(2))
            continue
        match = _UNSET_RE.match(line)
        if match:
            options[match.group(1)] = "n"
    return options


def _config_files(path, release):
    """config-RELEASE beside the kernel and beside its target (a symlink's)."""
    folders = [os.path.dirname(os.path.abspath(path))]
    target = os.path.dirname(os.path.realpath(path))
    if target not in folders:
        folders.append(target)
    return [os.path.join(folder, f"config-{release}") for folder in folders]


def _beside(path, release):
    """(config file, options) of the first config-RELEASE found, or (None, None)."""
    for candidate in _config_files(path, release):
        if os.path.isfile(candidate):
            text = compression.read_bounded(candidate, kernel_image.MAX_CONFIG, candidate)
            return candidate, parse_config(text.decode("utf-8", "replace"))
    return None, None


def _embedded(image):
    """(options, why not) from the image's IKCONFIG."""
    body = image.body()
    if body is None:
        return None, f"its embedded IKCONFIG could not be read ({image.body_error})"
    try:
        text = kernel_image.embedded_config(body, image.path)
    except ImageError as err:
        return None, f"its embedded IKCONFIG could not be read ({err})"
    if text is None:
        return None, "no embedded IKCONFIG"
    return parse_config(text), None


def find_config(image, release):
    """(config, options, reason) of a :class:`~xen_nfsroot_lib.kernel_image.KernelImage`:
    config is a path, :data:`EMBEDDED_CONFIG` or None (reason says why)."""
    if release:
        config, options = _beside(image.path, release)
        if config:
            return config, options, None
        folders = sorted({os.path.dirname(c) for c in _config_files(image.path, release)})
        missing = f"no config-{release} beside it (in {' or '.join(folders)})"
    else:
        missing = "its release is unknown (no version in the image or its file name)"
    options, why_not = _embedded(image)
    if options is not None:
        return EMBEDDED_CONFIG, options, None
    return None, None, f"{missing} and {why_not}"


def kernel_version(path, runner):
    """``{"version": RELEASE or None, "version_source": "setup header" |
    "banner" | "file name" | None, "format": "bzImage" | "ELF" |
    "gzip-compressed" | ... | None}`` of the kernel file path."""
    with kernel_image.KernelImage(path, runner) as image:
        release, source = image.release()
        return {"version": release, "version_source": source, "format": image.format}


def kernel_config(path, runner):
    """``{"version", "version_source", "config": path | "embedded IKCONFIG"
    | None, "options": {...} | None, "reason": why nothing was found |
    None}`` of the kernel file path."""
    with kernel_image.KernelImage(path, runner) as image:
        release, source = image.release()
        config, options, reason = find_config(image, release)
    return {
        "version": release,
        "version_source": source,
        "config": config,
        "options": options,
        "reason": reason,
    }


# ---------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------


def _state(options, name):
    value = options.get(name, "n")
    if value == "n":
        return "is not set"
    if value in ("y", "m"):
        return f"is {value}"
    return f"is {value!r}"


def _require(options, config, option, why):
    """(problems, evidence) for one option that must be y."""
    if options.get(option) == "y":
        return [], [f"{option}=y in {config}"]
    return [f"{option} {_state(options, option)} in {config}: {why}"], []


def _guest_support(options, config, guest_type):
    if guest_type == "pvh":
        why = "this kernel cannot boot as a Xen PVH guest"
        return _require(options, config, "CONFIG_XEN_PVH", why)
    if "CONFIG_XEN_PV" not in options and options.get("CONFIG_XEN") == "y":
        # A kernel older than the CONFIG_XEN_PV option (2.6.18 xenlinux, early
        # pvops): its CONFIG_XEN is PV support. Newer ones say "XEN_PV is not set".
        return [], [f"CONFIG_XEN=y in {config} (a kernel older than CONFIG_XEN_PV)"]
    return _require(options, config, "CONFIG_XEN_PV", "this kernel cannot boot as a Xen PV guest")


def _builtin_root(options, config, dhcp):
    problems, evidence = [], []
    wanted = list(_ROOT_NFS_OPTIONS) + ([_DHCP_OPTION] if dhcp else []) + [_NETFRONT_OPTION]
    for option, why in wanted:
        missing, found = _require(options, config, option, why)
        problems += missing
        evidence += found
    return problems, evidence


def _boot_script(files):
    """What in the names (in archive order) mounts an NFS root, or None."""
    if _INITRAMFS_TOOLS_SCRIPT in files:
        return f"initramfs-tools {_INITRAMFS_TOOLS_SCRIPT}"
    for name in files:
        if _DRACUT_NFS_RE.match(name):
            return f"dracut's nfs module ({name})"
    return None


def _modules_in(files):
    """{module: {release: file}} of the nfs and xen-netfront modules in the names."""
    found = {}
    for name in files:
        match = _MODULE_RE.match(name)
        if match:
            module = match.group(2).replace("_", "-")
            found.setdefault(module, {}).setdefault(match.group(1), name)
    return found


def _module_check(module, option, why, facts):
    """(problems, evidence, unknowns) for one kernel module the initramfs must carry."""
    options, config, ramdisk = facts["options"], facts["config"], facts["ramdisk"]
    if options is not None and options.get(option) == "y":
        return [], [f"{option}=y in {config}: no {module} module needed"], []
    releases = facts["modules"].get(module, {})
    release = facts["release"]
    if release in releases or (release is None and releases):
        return [], [f"{releases.get(release) or min(releases.values())} in {ramdisk}"], []
    if releases:
        missing = (
            f"{ramdisk} has the {module} module only for {', '.join(sorted(releases))}, "
            f"not for {release}"
        )
    else:
        missing = f"{ramdisk} has no {module} module"
    if options is None:
        return [], [], [f"{missing}, and whether the kernel has it built in is unknown"]
    return [f"{missing} and {option} {_state(options, option)} in {config}: {why}"], [], []


def _ramdisk_root(kernel, ramdisk):
    """(problems, evidence, unknowns) of an initramfs mounting the root."""
    if ramdisk.get("files") is None:
        return [], [], [f"{ramdisk['path']} was not checked: {ramdisk.get('reason')}"]
    problems, evidence, unknowns = [], [], []
    files = ramdisk["files"]
    script = _boot_script(files)
    if script:
        evidence.append(f"{script} in {ramdisk['path']}")
    else:
        problems.append(
            f"{ramdisk['path']} has no NFS boot script (initramfs-tools scripts/nfs or "
            "dracut's nfs module): it cannot mount an NFS root"
        )
    facts = {
        "options": kernel.get("options"),
        "config": kernel.get("config"),
        "ramdisk": ramdisk["path"],
        "release": kernel.get("version"),
        "modules": _modules_in(files),
    }
    for module, option, why in _MODULES:
        missing, found, unknown = _module_check(module, option, why, facts)
        problems += missing
        evidence += found
        unknowns += unknown
    return problems, evidence, unknowns


def _kernel_root(kernel, ramdisk, dhcp, guest_type):
    """(problems, evidence, unknowns) the kernel's own options decide."""
    options, config = kernel.get("options"), kernel.get("config")
    if options is None:
        name = kernel.get("path") or "the kernel"
        return [], [], [f"{name} was not checked: {kernel.get('reason') or 'no config found'}"]
    problems, evidence = ([], []) if ramdisk is not None else _builtin_root(options, config, dhcp)
    support, support_evidence = _guest_support(options, config, guest_type)
    return problems + support, evidence + support_evidence, []


def verdict(kernel, ramdisk=None, dhcp=False, guest_type="pv"):
    """
    Decide from facts already read whether a guest can mount its root over NFS.

    kernel
        ``{"path": PATH, "version": RELEASE, "config": where the options
        come from, "options": {...} or None, "reason": why there are no
        options}``; ``options`` as :func:`parse_config` returns them.
    ramdisk
        ``{"path": PATH, "files": [names in the initramfs] or None,
        "reason": why there are no files}``, or ``None`` when the guest
        boots without an initramfs.
    dhcp
        ``True`` when the guest gets its address by DHCP (``ip=dhcp``).
    guest_type
        ``pv`` (default) or ``pvh``.

    Returns ``{"ok": True | False | None, "problems": [...], "evidence":
    [...], "unknowns": [...]}``: ``ok`` is ``False`` when something is
    missing, ``None`` when nothing is missing but something could not be
    told (``unknowns`` says what).
    """
    guest_type = check_guest_type(guest_type)
    problems, evidence, unknowns = _kernel_root(kernel, ramdisk, dhcp, guest_type)
    if ramdisk is not None:
        more_problems, more_evidence, more_unknowns = _ramdisk_root(kernel, ramdisk)
        problems, evidence = more_problems + problems, more_evidence + evidence
        unknowns += more_unknowns
    if problems:
        ok = False
    else:
        ok = None if unknowns else True
    return {"ok": ok, "problems": problems, "evidence": evidence, "unknowns": unknowns}


# ---------------------------------------------------------------------------
# The check: the facts read from the files, then the verdict
# ---------------------------------------------------------------------------


def _reason(result, unknowns):
    if result["ok"] is False:
        return "; ".join(result["problems"])
    if result["ok"] is None:
        return "; ".join(unknowns)
    how = f"with the initramfs {result['ramdisk']}" if result["ramdisk"] else "by itself"
    return f"{result['kernel']} ({result['version']}) can mount its root over NFS {how}"


def _kernel_facts(kernel, runner):
    try:
        facts = kernel_config(kernel, runner)
    except OSError as err:
        raise CommandExecutionError(f"kernel {kernel} cannot be read: {err.strerror}") from None
    return {"path": kernel, **facts}


def _ramdisk_facts(ramdisk, runner):
    try:
        return {"path": ramdisk, "files": initramfs.ramdisk_files(ramdisk, runner), "reason": None}
    except ImageError as err:
        return {"path": ramdisk, "files": None, "reason": str(err)}
    except OSError as err:
        raise CommandExecutionError(f"ramdisk {ramdisk} cannot be read: {err.strerror}") from None


def check(kernel, runner, ramdisk=None, dhcp=False, guest_type="pv"):
    """
    Whether the kernel file (and the initramfs file ramdisk, or None) can
    mount the guest's root over NFS: ``{"checked", "ok", "kernel",
    "version", "version_source", "config", "ramdisk", "problems",
    "evidence", "reason"}`` (see ``guest_kernel.check``). A kernel or
    initramfs that does not exist or is not a regular file is an error.
    """
    guest_type = check_guest_type(guest_type)
    values.check_switch(dhcp, "dhcp")
    regular_file("kernel", kernel)
    if ramdisk is not None:
        regular_file("ramdisk", ramdisk)
    kernel_facts = _kernel_facts(kernel, runner)
    ramdisk_facts = _ramdisk_facts(ramdisk, runner) if ramdisk is not None else None
    found = verdict(kernel_facts, ramdisk_facts, dhcp, guest_type)
    result = {
        "checked": found["ok"] is not None,
        "ok": found["ok"],
        "kernel": kernel,
        "version": kernel_facts["version"],
        "version_source": kernel_facts["version_source"],
        "config": kernel_facts["config"],
        "ramdisk": ramdisk,
        "problems": found["problems"],
        "evidence": found["evidence"],
    }
    result["reason"] = _reason(result, found["unknowns"])
    return result
