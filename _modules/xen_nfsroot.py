"""
The ``xen_nfsroot`` pillar: schema, validation and defaults.

Every guest is described once, under ``xen_nfsroot:guests``; keys under
``xen_nfsroot:defaults`` are merged under every guest and
``xen_nfsroot:server`` configures the NFS server side. This module is the one
place that reads that pillar: the SLS files, the orchestration and the
reactor loop over what :func:`guests` returns and never look at the raw
pillar themselves.

Validation happens here, once, before any state runs: an unknown key, a
missing required key, a wrong type, two guests with one name, one root or one
MAC address, an empty client list, or a world client with ``no_root_squash``
without ``allow_world_root`` raises an error naming the guest, the field and
the value, so the SLS fails to render and nothing is changed.

.. code-block:: yaml

    xen_nfsroot:
      defaults:
        memory: 256
      guests:
        XenGuest:
          nfs_server: nfs1
          nfs_server_address: 192.0.2.1
          nfs_root: /xen
          export_clients: [192.0.2.10]
          dom0: dom0-a
          kernel: /boot/vmlinuz-2.6.18-53.1.14.el5.myxen
"""

import ipaddress
import logging
import posixpath
import re

from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "xen_nfsroot"

PILLAR_KEY = "xen_nfsroot"

# Xen's rule for domain names (xm's create.py; xl accepts the same).
GUEST_NAME = re.compile(r"^[A-Za-z0-9_.:+-]+$")
# Salt minion ids as they may appear in a target: no glob or compound syntax.
MINION_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

REQUIRED = ("nfs_server", "nfs_server_address", "nfs_root", "export_clients", "dom0", "kernel")

GUEST_DEFAULTS = {
    "memory": 256,
    "vcpus": 1,
    "toolstack": "auto",
    "export_options": ["rw", "no_root_squash", "async", "no_subtree_check"],
    "allow_world_root": False,
    "kernel_source": None,
    "kernel_source_hash": None,
    "ramdisk": None,
    "ramdisk_source": None,
    "ramdisk_source_hash": None,
    "root_archive": None,
    "network": "dhcp",
    "vif": [""],
    "extra": None,
    "nfs_options": "vers=3",
    "root": "/dev/nfs",
    "config_dir": "/etc/xen",
    "fstab": {"fstype": "nfs", "opts": "defaults", "disable": None},
    "autostart": True,
    "restart_on_change": False,
    "absent": False,
}
GUEST_KEYS = frozenset(REQUIRED) | frozenset(GUEST_DEFAULTS)

SERVER_DEFAULTS = {
    "manage_packages": True,
    "manage_service": True,
    "exports_file": "/etc/exports.d/xen-nfsroot.exports",
    "packages": None,
    "service": None,
}
TOP_KEYS = frozenset(("defaults", "guests", "server"))
NETWORK_KEYS = frozenset(("address", "netmask", "gateway", "hostname", "interface"))
FSTAB_KEYS = frozenset(("fstype", "opts", "disable", "dump", "pass_num"))
ARCHIVE_KEYS = frozenset(("source", "source_hash", "skip_verify"))
WORLD_CLIENTS = re.compile(r"^\*$|[*?\[]")
ROLES = ("server", "dom0")
# __context__ key: (fingerprint of the pillar, validated guests) of this run.
_CTX_VALIDATED = "xen_nfsroot.validated"


def __virtual__():
    return __virtualname__


class PillarError(SaltInvocationError):
    """An invalid ``xen_nfsroot`` pillar."""


def _fail(where, field, message, value):
    raise PillarError(f"xen_nfsroot pillar: {where}: {field}: {message}, got {value!r}")


def _plain(value):
    """A copy of pillar data made of plain dicts and lists.

    Salt 3008 hands execution modules its pillar as dict and list subclasses
    whose repr hides every value (and ``pillar.get`` outside a template
    returns the hidden strings themselves); the copy holds the real values,
    for validation, for error messages and for the per-run cache key, and is
    this module's own, so nothing it returns shares a list with the pillar.
    """
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _string(where, field, value, pattern=None, what="a non-empty string"):
    if not isinstance(value, str) or not value or "\n" in value or "\0" in value:
        _fail(where, field, f"expected {what}", value)
    if pattern is not None and not pattern.match(value):
        _fail(where, field, f"expected {what}", value)
    return value


def _absolute_path(where, field, value):
    _string(where, field, value, what="an absolute path")
    if not value.startswith("/") or posixpath.normpath(value) != (value.rstrip("/") or "/"):
        _fail(where, field, "expected a normalised absolute path", value)
    return value


def _optional_path(where, field, value):
    return None if value is None else _absolute_path(where, field, value)


def _bool(where, field, value):
    if not isinstance(value, bool):
        _fail(where, field, "expected true or false", value)
    return value


def _address(where, field, value):
    try:
        return str(ipaddress.ip_address(_string(where, field, value, what="an IP address")))
    except ValueError:
        _fail(where, field, "expected an IP address", value)


def _string_list(where, field, value, allow_empty=False):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(where, field, "expected a list of strings", value)
    if not value and not allow_empty:
        _fail(where, field, "expected a non-empty list", value)
    for index, item in enumerate(value):
        if not isinstance(item, str) or "\n" in item:
            _fail(where, f"{field}[{index}]", "expected a string", item)
    return list(value)


def _network(where, value):
    if value == "dhcp":
        return value
    if not isinstance(value, dict):
        _fail(where, "network", "expected 'dhcp' or a mapping of address, netmask, ...", value)
    unknown = sorted(set(value) - NETWORK_KEYS)
    if unknown:
        _fail(where, f"network.{unknown[0]}", "unknown key", value[unknown[0]])
    if "address" not in value:
        _fail(where, "network.address", "required for a static address", value)
    network = {
        "address": _address(where, "network.address", value["address"]),
        "netmask": value.get("netmask", "255.255.255.0"),
        "gateway": value.get("gateway", ""),
        "hostname": value.get("hostname", ""),
        "interface": value.get("interface", "eth0"),
    }
    try:
        ipaddress.ip_network(f"0.0.0.0/{network['netmask']}")
    except (ValueError, TypeError):
        _fail(where, "network.netmask", "expected a dotted netmask", network["netmask"])
    if network["gateway"]:
        network["gateway"] = _address(where, "network.gateway", network["gateway"])
    if network["hostname"]:
        _string(where, "network.hostname", network["hostname"], re.compile(r"^[A-Za-z0-9.-]+$"),
                "a host name")
    _string(where, "network.interface", network["interface"], re.compile(r"^[A-Za-z0-9_.-]+$"),
            "an interface name")
    return network


def _fstab(where, value):
    if value is False:
        return False
    if not isinstance(value, dict):
        _fail(where, "fstab", "expected a mapping (fstype, opts, disable) or false", value)
    unknown = sorted(set(value) - FSTAB_KEYS)
    if unknown:
        _fail(where, f"fstab.{unknown[0]}", "unknown key", value[unknown[0]])
    fstab = dict(GUEST_DEFAULTS["fstab"], **value)
    for field in ("fstype", "opts"):
        _string(where, f"fstab.{field}", fstab[field], re.compile(r"^\S+$"),
                "a word without whitespace")
    if fstab["disable"] is not None:
        fstab["disable"] = _string_list(where, "fstab.disable", fstab["disable"], allow_empty=True)
    for field in ("dump", "pass_num"):
        if field in fstab and not (_is_int(fstab[field]) and fstab[field] >= 0):
            _fail(where, f"fstab.{field}", "expected an integer >= 0", fstab[field])
    return fstab


def _archive(where, value):
    if value is None:
        return None
    if isinstance(value, str):
        value = {"source": value}
    if not isinstance(value, dict) or "source" not in value:
        _fail(where, "root_archive", "expected a mapping with a source", value)
    unknown = sorted(set(value) - ARCHIVE_KEYS)
    if unknown:
        _fail(where, f"root_archive.{unknown[0]}", "unknown key", value[unknown[0]])
    _string(where, "root_archive.source", value["source"])
    return dict(value)


def _vif_macs(where, vif):
    macs = []
    for index, spec in enumerate(vif):
        for item in spec.split(","):
            key, _, val = item.strip().partition("=")
            if key.strip() == "mac":
                mac = val.strip().lower()
                if not MAC.match(mac):
                    _fail(where, f"vif[{index}]", "expected mac=xx:xx:xx:xx:xx:xx", spec)
                macs.append(mac)
    return macs


def _validate_guest(name, raw, defaults):
    where = f"guest {name!r}"
    if not isinstance(name, str) or not GUEST_NAME.match(name) or name in (".", ".."):
        _fail("guests", "name", "expected a Xen domain name ([A-Za-z0-9_.:+-]+)", name)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail(where, "guest", "expected a mapping of keys", raw)
    unknown = sorted(set(raw) - GUEST_KEYS - {"name"})
    if unknown:
        _fail(where, unknown[0], "unknown key", raw[unknown[0]])
    guest = _plain({**GUEST_DEFAULTS, **defaults, **raw})
    for key in REQUIRED:
        if guest.get(key) is None:
            _fail(where, key, "required key missing", None)
    guest["name"] = name
    for key in ("nfs_server", "dom0"):
        _string(where, key, guest[key], MINION_ID, "a minion id")
    guest["nfs_server_address"] = _address(where, "nfs_server_address",
                                           guest["nfs_server_address"])
    _absolute_path(where, "nfs_root", guest["nfs_root"])
    if guest["nfs_root"] == "/":
        _fail(where, "nfs_root", "refusing to export the server's own root", guest["nfs_root"])
    guest["export_clients"] = _string_list(where, "export_clients", guest["export_clients"])
    guest["export_options"] = _string_list(where, "export_options", guest["export_options"])
    guest["allow_world_root"] = _bool(where, "allow_world_root", guest["allow_world_root"])
    if "no_root_squash" in guest["export_options"] and not guest["allow_world_root"]:
        for index, client in enumerate(guest["export_clients"]):
            if WORLD_CLIENTS.search(client):
                _fail(where, f"export_clients[{index}]",
                      "a world or wildcard client with no_root_squash gives root on the guest's "
                      "root filesystem to every matching host; set allow_world_root: true to "
                      "allow it", client)
    for key in ("kernel",):
        _absolute_path(where, key, guest[key])
    guest["ramdisk"] = _optional_path(where, "ramdisk", guest["ramdisk"])
    for key in ("kernel_source", "ramdisk_source", "kernel_source_hash", "ramdisk_source_hash"):
        if guest[key] is not None:
            _string(where, key, guest[key])
    if guest["ramdisk_source"] and not guest["ramdisk"]:
        _fail(where, "ramdisk_source", "needs ramdisk (where to put it)", guest["ramdisk_source"])
    for key in ("memory", "vcpus"):
        if not _is_int(guest[key]) or guest[key] <= 0:
            _fail(where, key, "expected a positive integer", guest[key])
    if guest["toolstack"] not in ("auto", "xl", "xm"):
        _fail(where, "toolstack", "expected auto, xl or xm", guest["toolstack"])
    guest["network"] = _network(where, guest["network"])
    guest["vif"] = _string_list(where, "vif", guest["vif"])
    if guest["extra"] is not None:
        _string(where, "extra", guest["extra"])
    _string(where, "nfs_options", guest["nfs_options"], re.compile(r"^[A-Za-z0-9=,._-]*$"),
            "comma-separated NFS mount options")
    _string(where, "root", guest["root"], re.compile(r"^\S+$"), "a root device")
    _absolute_path(where, "config_dir", guest["config_dir"])
    guest["fstab"] = _fstab(where, guest["fstab"])
    guest["root_archive"] = _archive(where, guest["root_archive"])
    for key in ("autostart", "restart_on_change", "absent"):
        _bool(where, key, guest[key])
    guest["macs"] = _vif_macs(where, guest["vif"])
    guest["states"] = _state_args(guest)
    return guest


def _state_args(guest):
    """The arguments of each state the SLS files apply for this guest, so the
    SLS files stay loops and the pillar-to-state mapping lives here."""
    domain = {
        "name": guest["name"],
        "kernel": guest["kernel"],
        "memory": guest["memory"],
        "vcpus": guest["vcpus"],
        "ramdisk": guest["ramdisk"],
        "network": guest["network"],
        "vif": guest["vif"],
        # The guest kernel mounts from an address, not from a minion id.
        "nfs_server": guest["nfs_server_address"],
        "nfs_root": guest["nfs_root"],
        "nfs_options": guest["nfs_options"],
        "root": guest["root"],
        "extra": guest["extra"],
        "config_dir": guest["config_dir"],
        "toolstack": None if guest["toolstack"] == "auto" else guest["toolstack"],
    }
    fstab = None
    if guest["fstab"]:
        fstab = {"name": guest["nfs_root"], **guest["fstab"]}
    export = {
        "name": guest["nfs_root"],
        "clients": [
            {"hosts": client, "options": list(guest["export_options"])}
            for client in guest["export_clients"]
        ],
        "allow_world_root": guest["allow_world_root"],
    }
    return {"xen_guest": domain, "domu_fstab": fstab, "nfs_export": export}


def _guest_entries(pillar):
    raw = pillar.get("guests")
    if raw is None:
        return []
    if isinstance(raw, dict):
        return list(raw.items())
    if isinstance(raw, list):
        entries = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict) or "name" not in item:
                _fail("guests", f"[{index}]", "expected a mapping with a name", item)
            entries.append((item["name"], item))
        return entries
    _fail("guests", "guests", "expected a mapping of guest names", raw)


def _read_pillar(section=None):
    """The ``xen_nfsroot`` pillar, or one section of it, as plain data."""
    # __pillar__, not pillar.get: on Salt 3008, pillar.get called outside a
    # template (the CLI, the orchestration's salt.function, a #!py SLS)
    # returns every value masked as "**********".
    pillar = __pillar__.get(PILLAR_KEY, {})
    if pillar in (None, ""):
        return {}
    if not isinstance(pillar, dict):
        _fail("xen_nfsroot", PILLAR_KEY, "expected a mapping", _plain(pillar))
    unknown = sorted(set(pillar) - TOP_KEYS)
    if unknown:
        _fail("xen_nfsroot", unknown[0], "unknown key", _plain(pillar[unknown[0]]))
    if section is not None:
        # Only what is asked for is copied: the guests can be thousands.
        return {section: _plain(pillar.get(section))}
    return _plain(pillar)


def _context():
    """This run's __context__ (None where the loader gives none)."""
    try:
        return __context__
    except NameError:
        return None


def _fingerprint(pillar):
    """A key that changes whenever the pillar's content does (repr is exact
    for the str/int/bool/None/list/dict a pillar holds, and cheap)."""
    try:
        return repr(pillar)
    except Exception:  # noqa: BLE001 (an odd object: no caching)
        return None


def validate(pillar=None):
    """
    Validate the whole ``xen_nfsroot`` pillar and return every guest.

    Returns a dict of guest name to guest (defaults merged). Raises an error
    naming the guest, the field and the value on the first problem found.

    pillar
        The ``xen_nfsroot`` mapping to check; the minion's pillar when omitted.

    A pillar is validated once per run: the result is kept in
    ``__context__`` with the pillar's content, and the guests are shared by
    every call of the run (read them, do not modify them).

    CLI Example:

    .. code-block:: bash

        salt '*' xen_nfsroot.validate
    """
    pillar = _read_pillar() if pillar is None else _plain(pillar)
    # The SLS files, top.sls and the orchestration call this several times in
    # one run: validate a given pillar once per run.
    context = _context()
    key = _fingerprint(pillar)
    if context is not None and key is not None:
        cached = context.get(_CTX_VALIDATED)
        if cached is not None and cached[0] == key:
            return dict(cached[1])
    guests = _validate(pillar)
    if context is not None and key is not None:
        context[_CTX_VALIDATED] = (key, guests)
    return dict(guests)


def _validate(pillar):
    defaults = pillar.get("defaults") or {}
    if not isinstance(defaults, dict):
        _fail("defaults", "defaults", "expected a mapping", defaults)
    unknown = sorted(set(defaults) - GUEST_KEYS)
    if unknown:
        _fail("defaults", unknown[0], "unknown key", defaults[unknown[0]])
    settings(pillar)
    guests = {}
    roots = {}
    macs = {}
    for name, raw in _guest_entries(pillar):
        if name in guests:
            _fail(f"guest {name!r}", "name", "two guests with one name", name)
        guest = _validate_guest(name, raw, defaults)
        root = (guest["nfs_server"], guest["nfs_root"])
        if root in roots:
            _fail(f"guest {name!r}", "nfs_root",
                  f"already the root of guest {roots[root]!r} on {root[0]}", guest["nfs_root"])
        _check_nesting(name, root, roots)
        roots[root] = name
        for mac in guest["macs"]:
            if mac in macs:
                _fail(f"guest {name!r}", "vif", f"MAC address already used by guest {macs[mac]!r}",
                      mac)
            macs[mac] = name
        guests[name] = guest
    return dict(sorted(guests.items()))


def _check_nesting(name, root, roots):
    """One guest's root may not lie inside another's on the same server: the
    outer guest owns every directory on the way, so it could move the inner
    root's tree under the server's feet."""
    server, path = root
    for (other_server, other_path), other in roots.items():
        if other_server != server:
            continue
        if path.startswith(other_path.rstrip("/") + "/"):
            _fail(f"guest {name!r}", "nfs_root",
                  f"inside the root {other_path} of guest {other!r} on {server}", path)
        if other_path.startswith(path.rstrip("/") + "/"):
            _fail(f"guest {name!r}", "nfs_root",
                  f"holds the root {other_path} of guest {other!r} on {server}", path)


def settings(pillar=None):
    """
    Return the NFS server settings (``xen_nfsroot:server``), defaults merged.

    CLI Example:

    .. code-block:: bash

        salt nfs1 xen_nfsroot.settings
    """
    pillar = _read_pillar("server") if pillar is None else pillar
    server = pillar.get("server") or {}
    if not isinstance(server, dict):
        _fail("server", "server", "expected a mapping", server)
    unknown = sorted(set(server) - set(SERVER_DEFAULTS))
    if unknown:
        _fail("server", unknown[0], "unknown key", server[unknown[0]])
    merged = dict(SERVER_DEFAULTS, **server)
    for key in ("manage_packages", "manage_service"):
        _bool("server", key, merged[key])
    _absolute_path("server", "exports_file", merged["exports_file"])
    if merged["packages"] is not None:
        merged["packages"] = _string_list("server", "packages", merged["packages"])
    if merged["service"] is not None:
        _string("server", "service", merged["service"])
    return merged


def _select(every, selection):
    """The guests a filter selects: all without one; with one, only a guest
    pillar defines, by its exact name. A filter that is not such a name
    (``""``, ``0``, ``false``, ``null``, a list, a mapping, an unknown name)
    selects nothing: bad input never widens a selection."""
    unknown = sorted(set(selection) - {"only"})
    if unknown:
        raise SaltInvocationError(f"{unknown[0]}: not an argument of xen_nfsroot.guests")
    if "only" not in selection:
        return every
    only = selection["only"]
    if isinstance(only, str) and only in every:
        return {only: every[only]}
    log.warning("xen_nfsroot: guest filter %r names no guest in pillar; nothing selected", only)
    return {}


def guests(role=None, minion_id=None, **selection):
    """
    Return the validated guests, defaults merged, as a dict name -> guest.

    role
        ``server``: the guests whose root this minion exports (``nfs_server``);
        ``dom0``: the guests this minion runs (``dom0``); omitted: every guest.

    minion_id
        Select for this minion id instead of the local one (orchestration).

    only
        Keep only the guest of this name. Given at all, it is a filter: any
        value that is not the name of a guest pillar defines (an unknown
        name, ``""``, ``0``, ``false``, ``null``, a list, a mapping) selects
        nothing, and is logged; only leaving it out selects every guest.

    CLI Example:

    .. code-block:: bash

        salt nfs1 xen_nfsroot.guests server
        salt-run salt.cmd xen_nfsroot.guests only=XenGuest
    """
    if role not in (None, *ROLES):
        raise SaltInvocationError(f"role: expected server, dom0 or nothing, got {role!r}")
    selection = {key: value for key, value in selection.items() if not key.startswith("__")}
    every = _select(validate(), selection)
    if role is None:
        return every
    minion_id = minion_id or __opts__["id"]
    field = "nfs_server" if role == "server" else "dom0"
    return {name: guest for name, guest in every.items() if guest[field] == minion_id}


def guest(name):
    """
    Return one validated guest by name.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_nfsroot.guest XenGuest
    """
    every = validate()
    if name not in every:
        raise SaltInvocationError(f"guest: no guest named {name!r} in pillar xen_nfsroot:guests")
    return every[name]


def roles(minion_id=None):
    """
    Return the roles (``server``, ``dom0``) this minion has in the pillar.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_nfsroot.roles
    """
    minion_id = minion_id or __opts__["id"]
    every = validate().values()
    found = []
    if any(g["nfs_server"] == minion_id for g in every):
        found.append("server")
    if any(g["dom0"] == minion_id for g in every):
        found.append("dom0")
    return found
