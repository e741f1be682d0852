"""
A Xen guest's config: the settings it is made of, the validators of their
values, and their mapping onto the keys of either config format.

:data:`GUEST_SETTINGS` is the one definition of a guest's config settings
and their defaults: the ``xen_guest`` states take them as keyword arguments,
the ``xen_nfsroot`` pillar maps its fields onto them, and
:func:`guest_settings` validates them (:func:`check_setting` checks one).

* ``xm`` (Xen <= 4.4): the xm keys the seed uses (``kernel``, ``memory``,
  ``name``, ``dhcp``, ``vif``, ``nfs_root``, ``nfs_server``, ``root``); xm
  turns ``nfs_server``, ``nfs_root`` and ``dhcp`` into the kernel's
  ``ip=``/``nfsroot=`` itself.
* ``xl``: xl silently ignores the xm-only keys, so the config has
  ``root = "/dev/nfs"`` and an ``extra`` holding the synthesized ``ip=...``
  and ``nfsroot=SERVER:PATH,vers=3`` (plus ``boot=nfs`` when an initramfs is
  given).

Every value that reaches the guest kernel's command line is checked against
the kernel's splitting rules and Xen's length limit
(:mod:`xen_nfsroot_lib.kernel_cmdline`), and every vif value against xl's
vif spec parser (no ``,``, ``=``, quotes or spaces).

The formats themselves are :mod:`xen_nfsroot_lib.xl_config` and
:mod:`xen_nfsroot_lib.xm_config`; :func:`render_config` and
:func:`parse_config` pick one by toolstack.
"""

import ipaddress
import posixpath
import re

from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import kernel_cmdline, values
from xen_nfsroot_lib.toolstack import GUEST_TYPES, TOOLSTACKS
from xen_nfsroot_lib.xl_config import XenConfigError, parse_xl, render_xl
from xen_nfsroot_lib.xm_config import parse_xm, render_xm

#: What Xen does when the guest crashes (xl.cfg(5) on_crash).
ON_CRASH = ("destroy", "restart", "preserve", "coredump-destroy", "coredump-restart",
            "rename-restart", "soft-reset")
#: Where a guest's config is written: ``<CONFIG_DIR>/<name>.cfg``.
CONFIG_DIR = "/etc/xen"

#: A guest's config settings, besides its name and kernel: their defaults,
#: and what each is.
GUEST_SETTINGS = {
    "memory": (256, "MiB"),
    "vcpus": (None, "virtual CPUs (none: Xen's default, 1)"),
    "ramdisk": (None, "an initramfs on the dom0 that mounts the NFS root (adds boot=nfs)"),
    "network": (None, "dhcp (the default, unless dhcp: off), off, or {address, netmask "
                      "(default 255.255.255.0), gateway, hostname, interface (default eth0)}"),
    "dhcp": (None, "the seed's xm key: dhcp or off"),
    "vif": ([""], "network interfaces: vif specs ('' is one with defaults)"),
    "nfs_server": (None, "the address the guest mounts its root from"),
    "nfs_root": (None, "the exported path the guest mounts as /"),
    "nfs_options": ("vers=3", "NFS mount options appended to nfsroot="),
    "root": ("/dev/nfs", "the root device on the kernel command line"),
    "extra": (None, "more kernel command line (e.g. console=hvc0)"),
    "guest_type": ("pv", "pv or pvh (xl only)"),
    "on_crash": ("destroy", "what Xen does when the guest crashes (preserve keeps it)"),
}


INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}\Z")
NFS_OPTION_RE = re.compile(r"^[A-Za-z0-9_]+(=[A-Za-z0-9_.:/-]+)?\Z")
VIF_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*\Z")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
#: What a value in a vif spec must not hold: its separators, quotes, spaces.
VIF_SYNTAX = ",=\"' \xa0"
NETWORK_KEYS = frozenset(("dhcp", "address", "netmask", "gateway", "hostname", "interface"))


# ---------------------------------------------------------------------------
# Either format, by toolstack
# ---------------------------------------------------------------------------


def parse_config(text, source="<string>", toolstack=None):
    """Parse a guest config of either format into a dict of settings (pure).

    ``toolstack="xl"`` reads xl.cfg(5) only, ``"xm"`` Python literal
    assignments only; by default xl.cfg is tried first, then the xm form. A
    file that is neither raises :class:`XenConfigError` naming source and line.
    """
    if toolstack == "xl":
        return parse_xl(text, source)
    if toolstack == "xm":
        return parse_xm(text, source)
    if toolstack not in (None, "auto"):
        raise SaltInvocationError(f"toolstack: {toolstack!r} is not one of xl, xm")
    try:
        return parse_xl(text, source)
    except XenConfigError as xl_error:
        try:
            return parse_xm(text, source)
        except XenConfigError as xm_error:
            raise XenConfigError(
                f"{source} is neither an xl.cfg file ({xl_error}) nor an xm config "
                f"of literal assignments ({xm_error})"
            ) from None


def render_text(config, toolstack):
    """Render a settings dict in the format of ``toolstack`` (``xl`` or ``xm``) (pure)."""
    if toolstack == "xl":
        return render_xl(config)
    if toolstack == "xm":
        return render_xm(config)
    raise SaltInvocationError(f"toolstack: {toolstack!r} is not one of xl, xm")


# ---------------------------------------------------------------------------
# The validators of a guest's values (those other concepts share too are in
# values): each returns the value in its canonical form or raises
# SaltInvocationError naming the field and the value.
# ---------------------------------------------------------------------------


def check_kernel_path(value, field="path"):
    """
    Check a file path on the dom0 (a kernel, an initramfs): absolute, without
    spaces or control characters (it goes into the config and, for xm, onto
    xend's command lines). Returns it.
    """
    if (isinstance(value, str) and value.startswith("/")
            and (" " in value or values.CONTROL_RE.search(value))):
        raise values.invalid(field, value, "must not contain spaces or control characters")
    return values.check_absolute_path(value, field)


def check_nfs_root(value, field="nfs_root"):
    """
    Check the exported path a guest mounts as its root (``nfsroot=SERVER:PATH``
    on its kernel command line): an absolute, normalised path without spaces,
    control characters or ``,`` (which starts the NFS options), not ``/``, that
    the kernel reads as part of one argument (no ``"``, no non-breaking space:
    :func:`xen_nfsroot_lib.kernel_cmdline.check_token`).
    """
    check_kernel_path(value, field)
    kernel_cmdline.check_token(value, field)
    if "," in value:
        raise values.invalid(field, value, "must not contain ',' (it starts NFS options)")
    if posixpath.normpath(value) != value.rstrip("/") or value == "/":
        raise values.invalid(field, value, "must be a normalised path below /")
    return value


def _check_netmask(value, field):
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.lstrip("/").isdigit():
        value = value.lstrip("/")
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{value}").netmask)
    except (ipaddress.NetmaskValueError, ValueError, TypeError):
        raise values.invalid(field, value, "is not an IPv4 netmask (255.255.255.0 or 24)") from None


def check_text(value, field="extra"):
    """
    Check a piece of kernel command line (``root``, ``extra``): a string (a
    list is joined with spaces) without control characters. Returns it
    stripped, or None when empty.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = " ".join(str(item) for item in value)
    if not isinstance(value, str):
        raise values.invalid(field, value, "must be a string")
    if values.CONTROL_RE.search(value):
        raise values.invalid(field, value, "must not contain control characters (newlines, tabs)")
    return value.strip() or None


def check_arguments(value, field="extra"):
    """
    Check a piece of the guest kernel's command line (``root``, ``extra``):
    :func:`check_text`, and each of its space-separated arguments reaches the
    kernel as itself (no ``"``, no byte the kernel reads as a space:
    :func:`xen_nfsroot_lib.kernel_cmdline.check_words`). Returns it stripped,
    or None when empty.
    """
    value = check_text(value, field)
    if value is not None:
        kernel_cmdline.check_words(value, field)
    return value


def _static_network(network, field):
    unknown = sorted(set(network) - NETWORK_KEYS)
    if unknown:
        raise values.invalid(f"{field}.{unknown[0]}", network[unknown[0]], "is not a network key")
    dhcp = network.get("dhcp") or False
    if not isinstance(dhcp, bool):
        raise values.invalid(f"{field}.dhcp", dhcp, "must be true or false")
    address = network.get("address")
    if address in (None, "") and not dhcp:
        raise values.invalid(f"{field}.address", address,
                             "is required for a static address (or use network: dhcp)")
    result = {
        "dhcp": dhcp,
        "address": (None if address in (None, "")
                    else values.check_ipv4(address, f"{field}.address")),
        # A static address without a netmask gets a /24, not the kernel's
        # class-based guess (which makes 10.x.y.z a /8).
        "netmask": (None if dhcp and network.get("netmask") in (None, "")
                    else _check_netmask(network.get("netmask") or "255.255.255.0",
                                        f"{field}.netmask")),
        "gateway": (None if network.get("gateway") in (None, "")
                    else values.check_ipv4(network["gateway"], f"{field}.gateway")),
        "hostname": network.get("hostname") or None,
        "interface": network.get("interface") or "eth0",
    }
    hostname = result["hostname"]
    if hostname is not None and (not isinstance(hostname, str)
                                 or not values.HOSTNAME_RE.match(hostname)):
        raise values.invalid(f"{field}.hostname", hostname, "is not a valid host name")
    if not isinstance(result["interface"], str) or not INTERFACE_RE.match(result["interface"]):
        raise values.invalid(f"{field}.interface", result["interface"], "is not an interface name")
    return result


def check_network(value, field="network"):
    """
    Check the guest kernel's network setting: ``dhcp``, ``off``, or a mapping
    with ``address`` (required unless ``dhcp: true``), ``netmask`` (dotted or
    a prefix length), ``gateway``, ``hostname`` and ``interface`` (default
    ``eth0``). Returns ``"dhcp"``, ``"off"`` or the mapping with every key.
    """
    if value in ("dhcp", "off"):
        return value
    if not isinstance(value, dict):
        raise values.invalid(field, value, "must be 'dhcp', 'off' or a mapping of address, "
                                           "netmask, gateway, hostname, interface")
    return _static_network(value, field)


def _network(network, dhcp):
    """The network a guest's kernel configures: None (off) or a full mapping."""
    if dhcp is not None and dhcp not in ("dhcp", "off"):
        raise values.invalid("dhcp", dhcp, "must be 'dhcp' or 'off'")
    if network is None:
        network = "off" if dhcp == "off" else "dhcp"
    network = check_network(network)
    wants_dhcp = network == "dhcp" or (isinstance(network, dict) and network["dhcp"])
    if dhcp is not None and network != "off" and wants_dhcp != (dhcp == "dhcp"):
        raise values.invalid("dhcp", dhcp, f"contradicts network {network!r}")
    if network == "off":
        return None
    return _static_network({"dhcp": True} if network == "dhcp" else network, "network")


def _vif_value(value, field):
    """A value of a vif spec: xl splits the spec at every ',' (strtok) and
    takes what follows the key's '=' verbatim; xm splits at ',' and '='."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise values.invalid(field, value, "must be a non-empty string")
    bad = sorted(set(value) & set(VIF_SYNTAX))
    if bad or values.CONTROL_RE.search(value):
        what = repr(bad[0]) if bad else "a control character"
        raise values.invalid(field, value, f"must not contain {what}: a vif spec is "
                                           "key=value pairs separated by ',' and xl or xm "
                                           "would read another key or value")
    return value


def _vif_spec(item, field):
    spec = "" if item is None else item
    if isinstance(spec, dict):
        for key, value in spec.items():
            if not isinstance(key, str) or not VIF_KEY_RE.match(key):
                raise values.invalid(field, key, "is not a vif key")
            _vif_value(value, f"{field}.{key}")
        spec = ",".join(f"{key}={value}" for key, value in spec.items())
    if not isinstance(spec, str) or values.CONTROL_RE.search(spec) or '"' in spec or "'" in spec:
        raise values.invalid(field, spec, "must be a string without quotes or control characters")
    if not spec.isascii():
        try:
            spec.encode("utf-8")
        except UnicodeEncodeError:
            raise values.invalid(field, spec, "is not UTF-8 text (it holds a lone "
                                              "surrogate)") from None
    # xl skips the spaces before a pair, nothing else.
    for part in filter(None, (piece.lstrip(" ") for piece in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not VIF_KEY_RE.match(key):
            raise values.invalid(field, spec, f"has {part!r}, not key=value")
        _vif_value(value, f"{field}.{key}")
        if key == "mac" and not MAC_RE.match(value.lower()):
            raise values.invalid(field, spec, "has a mac that is not xx:xx:xx:xx:xx:xx")
    return spec


def check_vif(value, field="vif"):
    """
    Check the guest's network interfaces: a list of vif specs (``key=value``
    pairs separated by commas, e.g. ``bridge=xenbr0,mac=00:16:3e:00:00:01``;
    ``''`` is one interface with defaults), or one spec. Returns the list.
    """
    if value is None:
        return [""]
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise values.invalid(field, value, "must be a list of interface specs")
    return [_vif_spec(item, f"{field}[{index}]") for index, item in enumerate(value)]


def vif_macs(vif):
    """
    The MAC addresses a list of vif specs sets, lowercase.
    """
    macs = []
    for spec in check_vif(vif):
        for part in spec.split(","):
            key, _, value = part.lstrip(" ").partition("=")
            if key == "mac":
                macs.append(value.lower())
    return macs


def check_nfs_options(value, field="nfs_options"):
    """
    Check the NFS mount options appended to ``nfsroot=`` (e.g. ``vers=3``; a
    list is joined with commas). Returns them, or None when empty.
    """
    if value in (None, "", []):
        return None
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    if not isinstance(value, str):
        raise values.invalid(field, value, "must be a string such as 'vers=3'")
    for option in value.split(","):
        if not NFS_OPTION_RE.match(option):
            raise values.invalid(field, value, f"has {option!r}, not an NFS mount option")
    return value


def check_config_dir(value, field="config_dir"):
    """
    Check the directory guest configs live in: an absolute, normalised path.
    """
    check_kernel_path(value, field)
    if posixpath.normpath(value) != value:
        raise values.invalid(field, value, "must be a normalised absolute path")
    return value


def setting_defaults():
    """
    The settings a guest's config is made of, with their defaults
    (:data:`GUEST_SETTINGS`).
    """
    return {name: default for name, (default, _) in GUEST_SETTINGS.items()}


def setting_docs():
    """What each guest setting of :data:`GUEST_SETTINGS` is, in a line."""
    return {name: doc for name, (_, doc) in GUEST_SETTINGS.items()}


# The validator of each setting of GUEST_SETTINGS (None values skip it).
_CHECKS = {
    "memory": values.check_count,
    "vcpus": values.check_count,
    "ramdisk": check_kernel_path,
    "vif": check_vif,
    "nfs_server": values.check_ipv4,
    "nfs_root": check_nfs_root,
    "nfs_options": check_nfs_options,
    "root": check_arguments,
    "extra": check_arguments,
    "guest_type": lambda value, field: values.check_choice(value, field, GUEST_TYPES),
    "on_crash": lambda value, field: values.check_choice(value, field, ON_CRASH),
}


def check_setting(setting, value, field=None):
    """
    Check one guest setting of :data:`GUEST_SETTINGS` by its validator; a
    None value is the setting's absence. Returns the canonical value.
    """
    if setting not in GUEST_SETTINGS:
        raise values.invalid("setting", setting, f"is not a guest setting "
                                                 f"(known: {', '.join(GUEST_SETTINGS)})")
    field = field or setting
    if value is None:
        return None
    if setting == "network":
        return check_network(value, field)
    if setting == "dhcp":
        return values.check_choice(value, field, ("dhcp", "off"))
    return _CHECKS[setting](value, field)


@values.memoized
def guest_settings(name, kernel, **settings):
    """
    Validate a guest's settings (see :data:`GUEST_SETTINGS`) and return them
    complete, defaults merged and each value in its canonical form (pure).

    Unknown settings, bad values and contradictions (``nfs_root`` without
    ``nfs_server``, ``root: /dev/nfs`` without ``nfs_root``) raise
    ``SaltInvocationError`` naming the field and the value.
    """
    unknown = sorted(set(settings) - set(GUEST_SETTINGS))
    if unknown:
        raise values.invalid(unknown[0], settings[unknown[0]],
                             f"is not a guest setting (known: {', '.join(GUEST_SETTINGS)})")
    merged = {**setting_defaults(), **settings, "name": values.check_domain_name(name),
              "kernel": check_kernel_path(kernel, "kernel")}
    for key, check in _CHECKS.items():
        if merged[key] is not None:
            merged[key] = check(merged[key], key)
    merged["network"] = check_network(merged["network"]) if merged["network"] else None
    _network(merged["network"], merged["dhcp"])
    if merged["nfs_root"] and not merged["nfs_server"]:
        raise values.invalid("nfs_server", merged["nfs_server"],
                             "is required with nfs_root (Must set nfs root and nfs server)")
    if merged["nfs_server"] and not merged["nfs_root"]:
        raise values.invalid("nfs_root", merged["nfs_root"], "is required with nfs_server")
    if merged["root"] == "/dev/nfs" and not merged["nfs_root"]:
        raise values.invalid("nfs_root", merged["nfs_root"], "is required when root is /dev/nfs")
    return merged


# ---------------------------------------------------------------------------
# Guest settings -> config keys (pure)
# ---------------------------------------------------------------------------


def _xm_network(net):
    """The xm keys of the guest kernel's network (xm builds ip= from them)."""
    if not net:
        return {}
    keys = {"dhcp": "dhcp"} if net["dhcp"] else {}
    if net["address"]:
        keys["ip"] = net["address"]
    keys.update({key: net[key] for key in ("netmask", "gateway", "hostname") if net[key]})
    if net["interface"] != "eth0":
        keys["interface"] = net["interface"]
    return keys


def _xm_keys(guest, net):
    """The xm config keys: xm itself turns nfs_server/nfs_root/dhcp into
    the kernel's ip= and nfsroot= (its nfsroot= is plain concatenation, so
    the NFS options go after the path)."""
    config = {"kernel": guest["kernel"]}
    if guest["ramdisk"]:
        config["ramdisk"] = guest["ramdisk"]
    config["memory"] = guest["memory"]
    config["name"] = guest["name"]
    if guest["vcpus"]:
        config["vcpus"] = guest["vcpus"]
    config.update(_xm_network(net))
    config["vif"] = guest["vif"]
    if guest["nfs_root"]:
        options = guest["nfs_options"]
        config["nfs_root"] = guest["nfs_root"] + ("," + options if options else "")
        config["nfs_server"] = guest["nfs_server"]
    if guest["root"]:
        config["root"] = guest["root"]
    extra = " ".join(filter(None, [_boot_nfs(guest), guest["extra"]]))
    if extra:
        config["extra"] = extra
    if guest["on_crash"] != "destroy":
        config["on_crash"] = guest["on_crash"]
    cmdline = kernel_cmdline.xm_cmdline(config)
    kernel_cmdline.check_cmdline(cmdline, [word for word in cmdline.split(" ") if word],
                                 *_cmdline_field(guest))
    return config


def _cmdline_field(guest):
    """The field an error about the whole command line names, with its value:
    extra, else the NFS root, else root."""
    field = next((name for name in ("extra", "nfs_root", "root") if guest[name]), "extra")
    return field, guest[field]


def _boot_nfs(guest):
    # initramfs-tools mounts an NFS root with boot=nfs.
    return "boot=nfs" if guest["ramdisk"] and guest["nfs_root"] else None


def _kernel_ip(guest, net):
    return "ip={}:{}:{}:{}:{}:{}:{}".format(
        net["address"] or "", guest["nfs_server"] or "", net["gateway"] or "",
        net["netmask"] or "", net["hostname"] or "", net["interface"],
        "dhcp" if net["dhcp"] else "off",
    )


def _xl_keys(guest, net):
    """The xl.cfg keys: what xm would have synthesized goes into extra."""
    parts = [_kernel_ip(guest, net)] if net else []
    if guest["nfs_root"]:
        options = guest["nfs_options"]
        parts.append(f"nfsroot={guest['nfs_server']}:{guest['nfs_root']}"
                     + ("," + options if options else ""))
    parts.extend(filter(None, [_boot_nfs(guest), guest["extra"]]))
    config = {"name": guest["name"], "type": guest["guest_type"], "kernel": guest["kernel"]}
    if guest["ramdisk"]:
        config["ramdisk"] = guest["ramdisk"]
    config["memory"] = guest["memory"]
    if guest["vcpus"]:
        config["vcpus"] = guest["vcpus"]
    config["vif"] = guest["vif"]
    if guest["root"]:
        config["root"] = guest["root"]
    if parts:
        config["extra"] = " ".join(parts)
    if guest["on_crash"] != "destroy":  # xl's default: no line for it
        config["on_crash"] = guest["on_crash"]
    root = [word for word in (guest["root"] or "").split(" ") if word]
    intended = ([f"root={root[0]}", *root[1:]] if guest["root"] else []) + [
        word for part in parts for word in part.split(" ") if word]
    kernel_cmdline.check_cmdline(
        kernel_cmdline.xl_cmdline(config.get("root"), config.get("extra")), intended,
        *_cmdline_field(guest))
    return config


def guest_config(name, kernel, toolstack="xl", **settings):
    """
    Validate a guest's settings and return the keys of its config file in
    the format of ``toolstack`` (pure):

    * ``xm``: ``kernel``, ``ramdisk``, ``memory``, ``name``, ``vcpus``,
      ``dhcp`` (or ``ip``/``netmask``/``gateway``/``hostname``/``interface``),
      ``vif``, ``nfs_root`` (with the NFS options appended, as xm builds
      ``nfsroot=`` by concatenation), ``nfs_server``, ``root``, ``extra``,
      ``on_crash`` -- only those that apply.
    * ``xl``: ``name``, ``type``, ``kernel``, ``ramdisk``, ``memory``,
      ``vcpus``, ``vif``, ``root``, ``extra`` = ``ip=... nfsroot=SERVER:PATH,
      OPTS [boot=nfs] [extra]`` and ``on_crash``.
    """
    values.check_choice(toolstack, "toolstack", TOOLSTACKS)
    guest = guest_settings(name, kernel, **settings)
    net = _network(guest["network"], guest["dhcp"])
    if toolstack == "xm":
        if guest["guest_type"] != "pv":
            raise values.invalid("guest_type", guest["guest_type"],
                                 "is not supported by xm (pv only)")
        return _xm_keys(guest, net)
    return _xl_keys(guest, net)


def render_config(name, kernel, toolstack="xl", **settings):
    """
    The text of a guest's config file in the format of ``toolstack`` (``xl``
    or ``xm``), starting with a comment saying Salt manages it (pure).
    """
    config = guest_config(name, kernel, toolstack, **settings)
    try:
        return render_text(config, toolstack)
    except ValueError as err:
        raise SaltInvocationError(str(err)) from None


# ---------------------------------------------------------------------------
# Where a guest's config is written
# ---------------------------------------------------------------------------


def config_path(name, config_dir=CONFIG_DIR):
    """
    Return ``<config_dir>/<name>.cfg``, the name checked so the path stays in
    config_dir.
    """
    values.check_domain_name(name)
    directory = check_config_dir(config_dir)
    path = posixpath.join(directory, f"{name}.cfg")
    if posixpath.dirname(path) != directory:
        raise values.invalid("name", name, f"would leave the config directory {directory}")
    return path
