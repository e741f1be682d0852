"""
The ``xen_nfsroot`` pillar: the guest schema, its validation, and the state
data the SLS files loop over.

Every guest is described once, under ``xen_nfsroot:guests``; keys under
``xen_nfsroot:defaults`` are merged under every guest and
``xen_nfsroot:server`` configures the NFS server side. This module is the one
place that reads that pillar: the SLS files, the orchestration and the
reactor use what :func:`guests` and :func:`state_data` return.

:data:`FIELDS` defines each guest field once: its default, the validator of
its kind of value and the state arguments it becomes. The validators belong
to the modules whose formats they check (``xen_config`` for the guest's
config, ``exportfs`` for clients and options, ``domu_fstab`` for the fstab,
``nfsroot_files`` for a root archive) and are called here through
``__salt__``, then each state's own check runs on the arguments the state
will get: the pillar accepts exactly what the states accept, and a bad
pillar fails before any state runs. This module adds only what spans guests
(two guests with one name, one root, one MAC address, or nested roots).

Errors are ``CommandExecutionError`` naming the guest, the field and the value.

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

import logging
import re
from typing import NamedTuple

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "xen_nfsroot"

PILLAR_KEY = "xen_nfsroot"
# Salt minion ids as they may appear in a target: no glob or compound syntax.
MINION_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
ROLES = ("server", "dom0")
# __context__ key: (fingerprint of the pillar, validated guests) of this run.
_CTX_VALIDATED = "xen_nfsroot.validated"
#: The default of a field whose state has its own: the argument is left out.
STATE_DEFAULT = None


def __virtual__():
    return __virtualname__


class PillarError(CommandExecutionError):
    """An invalid ``xen_nfsroot`` pillar."""


class Field(NamedTuple):
    """One guest field of the pillar."""

    default: object
    check: str  # an execution module function (value, field) or a local one
    states: tuple = ()  # (state, argument) pairs it becomes; argument "*": each key
    doc: str = ""


REQUIRED = object()


def _fail(where, field, message, value):
    raise PillarError(f"xen_nfsroot pillar: {where}: {field}: {message}, got {value!r}")


# ---------------------------------------------------------------------------
# Validators of the values only the pillar has (minion ids, switches)
# ---------------------------------------------------------------------------


def _minion_id(value, field):
    if not isinstance(value, str) or not MINION_ID.match(value):
        raise SaltInvocationError(f"{field}: {value!r} is not a minion id ([A-Za-z0-9_.-]+)")
    return value


def _switch(value, field):
    if not isinstance(value, bool):
        raise SaltInvocationError(f"{field}: {value!r} is not true or false")
    return value


def _source(value, field):
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SaltInvocationError(f"{field}: {value!r} is not a file source (salt://, "
                                  "https://, a path)")
    return value


def _toolstack(value, field):
    return __salt__["xen_config.check_choice"](value, field, ["auto", "xl", "xm"])


def _clients(value, field):
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise SaltInvocationError(f"{field}: {value!r} is not a non-empty list of clients")
    return list(value)


def _options(value, field):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SaltInvocationError(f"{field}: {value!r} is not a list of export options")
    return list(value)


def _archive(value, field):
    if isinstance(value, str):
        value = {"source": value}
    return __salt__["nfsroot_files.check_archive"](value, field)


def _fstab(value, field):
    if value is False:
        return False
    return __salt__["domu_fstab.check_nfs_root"](value or {}, field)


def _dom0s(value, field):
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise SaltInvocationError(f"{field}: {value!r} is not a non-empty list of minion ids")
    seen = []
    for item in value:
        _minion_id(item, field)
        if item in seen:
            raise SaltInvocationError(f"{field}: {item!r} is listed twice in {value!r}")
        seen.append(item)
    return seen


def _names(value, field):
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
            isinstance(item, str) and item.strip() for item in value):
        raise SaltInvocationError(f"{field}: {value!r} is not a list of names")
    return list(value)


def _name(value, field):
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SaltInvocationError(f"{field}: {value!r} is not a name")
    return value


_LOCAL_CHECKS = {
    "minion_id": _minion_id,
    "switch": _switch,
    "source": _source,
    "toolstack": _toolstack,
    "clients": _clients,
    "options": _options,
    "fstab": _fstab,
    "archive": _archive,
    "dom0s": _dom0s,
}


# ---------------------------------------------------------------------------
# The guest schema
# ---------------------------------------------------------------------------

_GUEST = "xen_guest"
_EXPORT = "nfs_export"
_FSTAB = "domu_fstab"
_ROOT = "domu_root"

#: Every guest field: default, validator and the state arguments it becomes.
FIELDS = {
    "nfs_server": Field(REQUIRED, "minion_id", (), "minion id exporting the root"),
    "nfs_server_address": Field(REQUIRED, "xen_config.check_address",
                                ((_GUEST, "nfs_server"),),
                                "the address the guest mounts its root from (IPv4)"),
    "nfs_root": Field(REQUIRED, "xen_config.check_nfs_root",
                      ((_GUEST, "nfs_root"), (_EXPORT, "name"), (_FSTAB, "name"),
                       (_ROOT, "name")),
                      "the guest's root directory on the NFS server"),
    "export_clients": Field(REQUIRED, "clients", ((_EXPORT, "clients"),),
                            "who may mount it: host, IP, CIDR, @netgroup, wildcard"),
    "dom0": Field(REQUIRED, "minion_id", (), "minion id running the guest: its home, where it "
                  "is booted when it runs on none of its dom0s"),
    "dom0s": Field(None, "dom0s", (), "every dom0 that may run the guest, its home among them "
                   "(null: [dom0]); each gets its kernel and config, it runs on one at a time"),
    "kernel": Field(REQUIRED, "xen_config.check_path", ((_GUEST, "kernel"),),
                    "the guest's kernel on the dom0"),
    "export_options": Field(["rw", "no_root_squash", "async", "no_subtree_check"], "options",
                            ((_EXPORT, "clients"),), "the export's options"),
    "allow_world_root": Field(False, "switch", ((_EXPORT, "allow_world_root"),),
                              "allow a world or wildcard client with no_root_squash"),
    "toolstack": Field("auto", "toolstack", ((_GUEST, "toolstack"),), "auto, xl or xm"),
    "kernel_source": Field(None, "source", (), "copied to kernel by file.managed (salt://, "
                                                    "https://, a path)"),
    "kernel_source_hash": Field(None, "source", (), "hash of a non-salt:// kernel_source"),
    "ramdisk_source": Field(None, "source", (), "copied to ramdisk"),
    "ramdisk_source_hash": Field(None, "source", (), "hash of a non-salt:// ramdisk_source"),
    "root_archive": Field(None, "archive", ((_ROOT, "*"),),
                          "{source, source_hash, skip_verify}: populates nfs_root once"),
    "config_dir": Field(STATE_DEFAULT, "xen_config.check_config_dir",
                        ((_GUEST, "config_dir"),),
                        "where <name>.cfg is written on the dom0 (null: /etc/xen)"),
    "fstab": Field({}, "fstab", ((_FSTAB, "*"),),
                   "{fstype, opts, disable, dump, pass_num} of the guest's /etc/fstab "
                   "(domu_fstab.nfs_root's defaults), or false to leave it alone"),
    "autostart": Field(True, "switch", (), "boot it by highstate and at its dom0's start"),
    "restart_on_change": Field(False, "switch", ((_GUEST, "restart_on_change"),),
                               "restart the running guest when its config changes"),
    "check_kernel": Field(True, "switch", ((_GUEST, "check_kernel"),),
                          "check before booting that the kernel (or its initramfs) can mount "
                          "an NFS root"),
    "boot_timeout": Field(STATE_DEFAULT, "guest_console.check_boot_timeout",
                          ((_GUEST, "boot_timeout"),),
                          "seconds a boot is watched for its proof (null: 120; 0: not watched)"),
    "boot_marker": Field(None, "guest_console.check_boot_marker", ((_GUEST, "boot_marker"),),
                         "a regular expression the guest's console prints once it runs from "
                         "its root: the proof of its boot"),
    "absent": Field(False, "switch", (), "stop it, remove its config and its export"),
}

# The guest's config settings become fields too, with xen_config's defaults:
# memory, vcpus, ramdisk, network, vif, nfs_options, root, extra, guest_type,
# on_crash (dhcp is the seed's xm spelling of network, nfs_server and
# nfs_root come from the fields above).
_SETTINGS_FROM_FIELDS = {"dhcp", "nfs_server", "nfs_root"}


def _setting_fields():
    defaults = __salt__["xen_config.guest_setting_defaults"]()
    docs = __salt__["xen_config.guest_setting_docs"]()
    # The pillar has no dhcp key (the seed's xm spelling), so the default of
    # network, which means DHCP, is spelled dhcp.
    defaults["network"] = "dhcp"
    return {
        name: Field(default, f"setting:{name}", ((_GUEST, name),), docs[name])
        for name, default in defaults.items()
        if name not in _SETTINGS_FROM_FIELDS
    }


def schema():
    """
    Every guest field: ``{name: {"default", "required", "states", "doc"}}``,
    ``states`` being the ``state.argument`` each becomes.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_nfsroot.schema
    """
    fields = {**FIELDS, **_setting_fields()}
    return {
        name: {
            "required": field.default is REQUIRED,
            "default": None if field.default is REQUIRED else field.default,
            "states": [f"{state}.{argument}" for state, argument in field.states],
            "doc": field.doc,
        }
        for name, field in fields.items()
    }


def _check_field(name, field, value):
    if field.check.startswith("setting:"):
        setting = field.check.split(":", 1)[1]
        return __salt__["xen_config.check_setting"](setting, value, name)
    if field.check in _LOCAL_CHECKS:
        return _LOCAL_CHECKS[field.check](value, name)
    return __salt__[field.check](value, name)


# ---------------------------------------------------------------------------
# The pillar, read once per run
# ---------------------------------------------------------------------------


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
    unknown = sorted(set(pillar) - {"defaults", "guests", "server", "dom0"})
    if unknown:
        _fail("xen_nfsroot", unknown[0], "unknown key", _plain(pillar[unknown[0]]))
    if section is not None:
        # Only what is asked for is copied: the guests can be thousands.
        return {section: _plain(pillar.get(section))}
    return _plain(pillar)


def _fingerprint(pillar):
    """A key that changes whenever the pillar's content does (repr is exact
    for the str/int/bool/None/list/dict a pillar holds, and cheap)."""
    try:
        return repr(pillar)
    except Exception:
        return None


def validate(pillar=None):
    """
    Validate the whole ``xen_nfsroot`` pillar and return every guest.

    Returns a dict of guest name to guest (defaults merged, values in their
    canonical form). Raises an error naming the guest, the field and the
    value on the first problem found.

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
    key = _fingerprint(pillar)
    cached = __context__.get(_CTX_VALIDATED)
    if key is not None and cached is not None and cached[0] == key:
        return dict(cached[1])
    guests = _validate(pillar)
    if key is not None:
        __context__[_CTX_VALIDATED] = (key, guests)
    return dict(guests)


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


def _validate(pillar):
    fields = {**FIELDS, **_setting_fields()}
    defaults = pillar.get("defaults") or {}
    if not isinstance(defaults, dict):
        _fail("defaults", "defaults", "expected a mapping", defaults)
    unknown = sorted(set(defaults) - set(fields))
    if unknown:
        _fail("defaults", unknown[0], "unknown key", defaults[unknown[0]])
    settings(pillar)
    dom0_settings(pillar)
    guests = {}
    seen = {"root": {}, "mac": {}}
    for name, raw in _guest_entries(pillar):
        if name in guests:
            _fail(f"guest {name!r}", "name", "two guests with one name", name)
        guest = _validate_guest(name, raw, defaults, fields)
        _check_across(name, guest, seen)
        guests[name] = guest
    return dict(sorted(guests.items()))


def _validate_guest(name, raw, defaults, fields):
    where = f"guest {name!r}"
    try:
        __salt__["xen_config.check_name"](name)
    except SaltInvocationError as err:
        raise PillarError(f"xen_nfsroot pillar: guests: {err}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail(where, "guest", "expected a mapping of keys", raw)
    unknown = sorted(set(raw) - set(fields) - {"name"})
    if unknown:
        _fail(where, unknown[0], "unknown key", raw[unknown[0]])
    given = {**defaults, **raw}
    guest = {"name": name}
    for key, field in fields.items():
        if key not in given and field.default is REQUIRED:
            _fail(where, key, "required key missing", None)
        value = given.get(key, _plain(field.default))
        if value is None and field.default is None:
            guest[key] = None
            continue
        try:
            guest[key] = _check_field(key, field, value)
        except (SaltInvocationError, CommandExecutionError) as err:
            raise PillarError(f"xen_nfsroot pillar: {where}: {err}") from None
    _check_home(where, guest)
    guest["states"] = _state_args(guest, fields)
    _check_states(where, guest)
    return guest


def _check_home(where, guest):
    """The home dom0 is one of the guest's dom0s (alone when none are listed)."""
    if guest["dom0s"] is None:
        guest["dom0s"] = [guest["dom0"]]
    elif guest["dom0"] not in guest["dom0s"]:
        _fail(where, "dom0s", f"does not hold the guest's home dom0 {guest['dom0']!r}",
              guest["dom0s"])


def _check_states(where, guest):
    """Each state's own check on the arguments it will get."""
    args = guest["states"]
    try:
        settings = __salt__["xen_config.guest_setting_defaults"]()
        guest_args = {k: v for k, v in args[_GUEST].items() if k in settings}
        __salt__["xen_config.guest_settings"](guest["name"], guest["kernel"], **guest_args)
        export = args[_EXPORT]
        __salt__["exportfs.validate"](export["name"], clients=export["clients"],
                                      allow_world_root=export["allow_world_root"])
    except (SaltInvocationError, CommandExecutionError) as err:
        raise PillarError(f"xen_nfsroot pillar: {where}: {err}") from None


def _check_across(name, guest, seen):
    """What spans guests: one root, one MAC address, no root inside another."""
    where = f"guest {name!r}"
    server, path = guest["nfs_server"], guest["nfs_root"]
    for (other_server, other_path), other in seen["root"].items():
        if other_server != server:
            continue
        if other_path == path:
            _fail(where, "nfs_root", f"already the root of guest {other!r} on {server}", path)
        # The outer guest owns every directory on the way to the inner root.
        if path.startswith(other_path + "/"):
            _fail(where, "nfs_root", f"inside the root {other_path} of guest {other!r} on "
                                     f"{server}", path)
        if other_path.startswith(path + "/"):
            _fail(where, "nfs_root", f"holds the root {other_path} of guest {other!r} on "
                                     f"{server}", path)
    seen["root"][(server, path)] = name
    for mac in __salt__["xen_config.vif_macs"](guest["vif"]):
        if mac in seen["mac"]:
            _fail(where, "vif", f"MAC address already used by guest {seen['mac'][mac]!r}", mac)
        seen["mac"][mac] = name


def _state_args(guest, fields):
    """The arguments of each state for this guest, from the fields' mapping."""
    args = {_GUEST: {"name": guest["name"]}, _EXPORT: {}, _FSTAB: {}, _ROOT: {}}
    for key, field in fields.items():
        value = guest[key]
        for state, argument in field.states:
            if argument == "*":
                args[state].update(value or {})
            elif value is not None:
                args[state][argument] = value
    export = args[_EXPORT]
    export["clients"] = [{"hosts": client, "options": list(guest["export_options"])}
                         for client in guest["export_clients"]]
    export.setdefault("allow_world_root", False)
    if args[_GUEST].get("toolstack") == "auto":
        del args[_GUEST]["toolstack"]
    if guest["fstab"] is False:
        args[_FSTAB] = None
    else:
        args[_FSTAB].setdefault("name", guest["nfs_root"])
    if not guest["root_archive"]:
        args[_ROOT] = None
    return args


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
    defaults = {"manage_packages": True, "manage_service": True,
                "exports_file": "/etc/exports.d/xen-nfsroot.exports",
                "packages": None, "service": None}
    unknown = sorted(set(server) - set(defaults))
    if unknown:
        _fail("server", unknown[0], "unknown key", server[unknown[0]])
    merged = dict(defaults, **server)
    checks = {"manage_packages": _switch, "manage_service": _switch,
              "exports_file": __salt__["exportfs.check_exports_file"],
              "packages": _names, "service": _name}
    for key, check in checks.items():
        try:
            merged[key] = check(merged[key], key)
        except (SaltInvocationError, CommandExecutionError) as err:
            raise PillarError(f"xen_nfsroot pillar: server: {err}") from None
    return merged


def dom0_settings(pillar=None):
    """
    Return the dom0 side's settings (``xen_nfsroot:dom0``), defaults merged:
    ``console_logging`` (xenconsoled logs guest consoles, for the boot
    checks), ``console_dir`` and ``xen_settings_file`` (the file the Xen init
    script sources), ``addresses`` (``{minion id: address}``: where a dom0 is
    reached for a live migration, and where its migrations come from; a
    dom0 not listed is reached by its minion id), and the migration trust's
    files: ``migrate_key``, ``authorized_keys``, ``known_hosts``,
    ``migrate_wrapper`` (the forced command of the peers' keys).

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_nfsroot.dom0_settings
    """
    pillar = _read_pillar("dom0") if pillar is None else pillar
    dom0 = pillar.get("dom0") or {}
    if not isinstance(dom0, dict):
        _fail("dom0", "dom0", "expected a mapping", dom0)
    defaults = {"console_logging": True, "console_dir": "/var/log/xen/console",
                "xen_settings_file": "/etc/default/xen", "addresses": {},
                "migrate_key": "/etc/xen-nfsroot/migrate_key",
                "authorized_keys": "/root/.ssh/authorized_keys",
                "known_hosts": "/etc/xen-nfsroot/known_hosts",
                "migrate_wrapper": "/usr/local/sbin/xen-nfsroot-migrate-receive"}
    unknown = sorted(set(dom0) - set(defaults))
    if unknown:
        _fail("dom0", unknown[0], "unknown key", dom0[unknown[0]])
    merged = dict(defaults, **dom0)
    checks = {"console_logging": _switch,
              "console_dir": __salt__["guest_console.check_console_dir"],
              "xen_settings_file": __salt__["guest_console.check_console_dir"],
              "addresses": _addresses,
              **dict.fromkeys(("migrate_key", "authorized_keys", "known_hosts",
                               "migrate_wrapper"), __salt__["xen_migrate.check_path"])}
    for key, check in checks.items():
        try:
            merged[key] = check(merged[key], key)
        except (SaltInvocationError, CommandExecutionError) as err:
            raise PillarError(f"xen_nfsroot pillar: dom0: {err}") from None
    return merged


def _addresses(value, field):
    if not isinstance(value, dict):
        raise SaltInvocationError(f"{field}: {value!r} is not a mapping of minion id to address")
    checked = {}
    for minion_id, address in value.items():
        _minion_id(minion_id, field)
        checked[minion_id] = __salt__["xen_migrate.check_address"](address, f"{field}:{minion_id}")
    return checked


def dom0_address(minion_id, pillar=None):
    """
    Where the dom0 ``minion_id`` is reached for a live migration (and where
    its migrations come from): ``dom0:addresses`` of the pillar, else the
    minion id.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_nfsroot.dom0_address dom0-b
    """
    return dom0_settings(pillar)["addresses"].get(minion_id, minion_id)


# ---------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------


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
        ``dom0``: the guests this minion may run (one of their ``dom0s``);
        omitted: every guest.

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
    if role == "server":
        return {name: guest for name, guest in every.items() if guest["nfs_server"] == minion_id}
    return {name: guest for name, guest in every.items() if minion_id in guest["dom0s"]}


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
    if any(minion_id in g["dom0s"] for g in every):
        found.append("dom0")
    return found


# ---------------------------------------------------------------------------
# Live migrations: where each guest runs, asked of its dom0s
# ---------------------------------------------------------------------------

_TRANSIENT = ("--incoming", "--migratedaway")
_LIVE = ("running", "blocked", "paused", "dying")


def ask_dom0s(dom0s, timeout=60):
    """
    Ask dom0s directly (from the master: ``saltutil.cmd``) for their domains
    and toolstack: ``{minion id: {"domains": {...}, "toolstack": "xl"}}``.
    A dom0 that does not answer, or answers with an error, is an error naming
    it: nothing may move or boot on a partial view.

    CLI Example:

    .. code-block:: bash

        salt-run salt.cmd xen_nfsroot.ask_dom0s '[dom0-a, dom0-b]'
    """
    dom0s = list(dom0s)
    answers = {}
    for fun, kwarg, key in (("xm.list_domains", {"fresh": True}, "domains"),
                            ("xm.toolstack", {}, "toolstack")):
        returned = __salt__["saltutil.cmd"](tgt=dom0s, fun=fun, tgt_type="list", kwarg=kwarg,
                                            timeout=timeout)
        for dom0 in dom0s:
            answer = (returned or {}).get(dom0)
            value = answer.get("ret") if isinstance(answer, dict) else None
            wanted = dict if key == "domains" else str
            if not isinstance(value, wanted) or answer.get("retcode", 0) != 0:
                raise CommandExecutionError(
                    f"dom0 {dom0} did not answer {fun}"
                    + (f": {value}" if isinstance(value, str) else "")
                    + ": nothing moves")
            answers.setdefault(dom0, {})[key] = value
    return answers


def _running_on(name, answers):
    """(dom0s where the guest runs, {dom0: its xl migrate names there})."""
    live, transient = [], {}
    for dom0, answer in answers.items():
        domains = answer["domains"]
        if isinstance(domains.get(name), dict) and domains[name].get("state") in _LIVE:
            live.append(dom0)
        names = [name + suffix for suffix in _TRANSIENT if name + suffix in domains]
        if names:
            transient[dom0] = names
    return live, transient


def _move(name, guest, to, answers):
    """One move of a guest to ``to``, checked against what its dom0s said."""
    live, transient = _running_on(name, answers)
    if transient:
        shown = "; ".join(f"{', '.join(names)} on {dom0}" for dom0, names in transient.items())
        raise SaltInvocationError(f"guest: {name} is being migrated or a migration of it "
                                  f"failed ({shown}): nothing moves")
    if len(live) != 1:
        raise SaltInvocationError(
            f"guest: {name} runs on {' and '.join(live)}: nothing moves" if live else
            f"guest: {name} runs on none of its dom0s ({', '.join(guest['dom0s'])}): "
            "nothing to migrate")
    (source,) = live
    if source == to:
        raise SaltInvocationError(f"to: {name} already runs on {to}")
    if answers[source]["toolstack"] != answers[to]["toolstack"]:
        raise SaltInvocationError(
            f"to: {to} runs {answers[to]['toolstack']}, {source} runs "
            f"{answers[source]['toolstack']}: a live migration needs one toolstack")
    return {"guest": name, "from": source, "to": to}


def migration_plan(guest=None, to=None, evacuate=None):
    """
    The moves a migration orchestration makes, ``[{guest, from, to}]``, checked
    against what the dom0s themselves say (:func:`ask_dom0s`): ``guest`` to
    ``to``, or every guest running on the dom0 ``evacuate`` to another of its
    dom0s (its home when that is not the evacuated dom0, else the next in
    ``dom0s``). Bad input is an error naming the field and the value.

    CLI Example:

    .. code-block:: bash

        salt-run salt.cmd xen_nfsroot.migration_plan guest=XenGuest to=dom0-b
        salt-run salt.cmd xen_nfsroot.migration_plan evacuate=dom0-a
    """
    every = validate()
    if evacuate is not None:
        if guest is not None or to is not None:
            raise SaltInvocationError("evacuate: give either evacuate or guest and to, not both")
        _minion_id(evacuate, "evacuate")
        mine = {name: g for name, g in every.items()
                if evacuate in g["dom0s"] and len(g["dom0s"]) > 1 and not g["absent"]}
        answers = ask_dom0s(sorted({d for g in mine.values() for d in g["dom0s"]})) if mine else {}
        moves = []
        for name, g in mine.items():
            live, transient = _running_on(name, answers)
            if evacuate not in live and evacuate not in transient:
                continue
            target = g["dom0"] if g["dom0"] != evacuate else next(
                d for d in g["dom0s"] if d != evacuate)
            moves.append(_move(name, g, target, answers))
        if not moves:
            raise SaltInvocationError(f"evacuate: no guest with another dom0 runs on "
                                      f"{evacuate!r}: nothing to move")
        return moves
    if not isinstance(guest, str) or guest not in every:
        raise SaltInvocationError(f"guest: {guest!r} is not a guest of the pillar")
    g = every[guest]
    if not isinstance(to, str) or to not in g["dom0s"]:
        raise SaltInvocationError(
            f"to: {to!r} is not one of the dom0s of {guest} ({', '.join(g['dom0s'])})")
    return [_move(guest, g, to, ask_dom0s(g["dom0s"]))]


# ---------------------------------------------------------------------------
# State data for the SLS files
# ---------------------------------------------------------------------------


def _args(mapping):
    """State arguments from a mapping, leaving out those that are None."""
    return [{key: value} for key, value in mapping.items() if value is not None]


def _server_states(name, guest, exports_file):
    high = {}
    args = guest["states"]
    export_id = f"xen_nfsroot-export-{name}"
    target = [{"exports": exports_file}, {"reload": False}]
    if guest["absent"]:
        return {export_id: {"nfs_export.absent": [{"name": guest["nfs_root"]}, *target]}}
    require = []
    if args[_ROOT] is not None:
        high[f"xen_nfsroot-root-{name}"] = {"domu_root.populated": _args(args[_ROOT])}
        require = [{"domu_root": f"xen_nfsroot-root-{name}"}]
    if args[_FSTAB] is not None:
        high[f"xen_nfsroot-fstab-{name}"] = {
            "domu_fstab.nfs_root": [*_args(args[_FSTAB]), *_requisite(require)]}
        require = [{"domu_fstab": f"xen_nfsroot-fstab-{name}"}]
    high[export_id] = {"nfs_export.present": [*_args(args[_EXPORT]), *target,
                                              *_requisite(require)]}
    return high


def _requisite(require):
    return [{"require": require}] if require else []


def _server_data(selected):
    server = settings()
    high = {}
    if server["manage_packages"] or server["manage_service"]:
        high["include"] = ["xen_nfsroot.packages"]
    for name, guest in selected.items():
        high.update(_server_states(name, guest, server["exports_file"]))
    high["xen_nfsroot-exports-applied"] = {
        "nfs_export.reloaded": [{"require": [f"xen_nfsroot-export-{name}" for name in selected]}]
    }
    return high


def _file_states(guest, managed):
    """file.managed of the kernel and ramdisk from their sources (once per file)."""
    high, require = {}, []
    for file in ("kernel", "ramdisk"):
        source = guest[f"{file}_source"]
        if not source:
            continue
        file_id = f"xen_nfsroot-file-{guest[file]}"
        require.append({"file": file_id})
        if guest[file] in managed:
            continue
        managed.add(guest[file])
        args = [{"name": guest[file]}, {"source": source}]
        if guest[f"{file}_source_hash"]:
            args.append({"source_hash": guest[f"{file}_source_hash"]})
        high[file_id] = {"file.managed": [*args, {"mode": "0644"}, {"makedirs": True}]}
    return high, require


def _console_state(high, dom0):
    """xenconsoled logging guest consoles: the requisite of every boot."""
    if not dom0["console_logging"]:
        return []
    high["xen_nfsroot-console-logging"] = {"xen_console.logging": [
        {"name": dom0["console_dir"]}, {"settings_file": dom0["xen_settings_file"]}]}
    return [{"xen_console": "xen_nfsroot-console-logging"}]


_BOOT_ONLY = ("restart_on_change", "boot_timeout", "boot_marker")
MIGRATE_KEY = "xen_nfsroot-migrate-key"
MIGRATE_TRUST = "xen_nfsroot-migrate-trust"


def migration_peers(minion_id=None):
    """
    The other dom0s this dom0 shares a guest with (over every guest of the
    pillar, not a selection: trust is never narrowed by one guest's run),
    ``{minion id: address}``.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_nfsroot.migration_peers
    """
    minion_id = minion_id or __opts__["id"]
    peers = set()
    for guest in validate().values():
        if minion_id in guest["dom0s"] and not guest["absent"]:
            peers.update(other for other in guest["dom0s"] if other != minion_id)
    return {peer: dom0_address(peer) for peer in sorted(peers)}


def _trust_states(high, minion_id):
    """The migration key and the trust of the peers (dom0s sharing a guest)."""
    peers = migration_peers(minion_id)
    if not peers:
        return []
    dom0 = dom0_settings()
    high.update(_key_data(dom0))
    high[MIGRATE_TRUST] = {"xen_migrate.trusted": [
        {"name": dom0["authorized_keys"]}, {"peers": peers},
        {"known_hosts": dom0["known_hosts"]}, {"wrapper": dom0["migrate_wrapper"]},
        {"require": [{"xen_migrate": MIGRATE_KEY}]}]}
    return [{"xen_migrate": MIGRATE_TRUST}]


def _key_data(dom0):
    return {MIGRATE_KEY: {"xen_migrate.key": [{"name": dom0["migrate_key"]}]}}


def _dom0_data(selected, options, minion_id):
    """options: boot (asked by name), retry (a failed boot). A guest is booted
    only on its home dom0, and only where it runs on none of its other dom0s
    (``other_dom0s``); on its other dom0s it is configured, ready to receive
    a migration."""
    high = {}
    if any(guest["nfs_server"] == minion_id for guest in selected.values()):
        # The NFS server is this minion too: its exports first.
        high["include"] = ["xen_nfsroot.server"]
    dom0 = dom0_settings()
    console = _console_state(high, dom0) if any(
        not guest["absent"] for guest in selected.values()) else []
    managed = set()
    for name, guest in selected.items():
        guest_id = f"xen_nfsroot-guest-{name}"
        args = dict(guest["states"][_GUEST])
        if guest["absent"]:
            absent = {"name": name, "config_dir": args.get("config_dir")}
            high[guest_id] = {"xen_guest.absent": _args(absent)}
            continue
        files, require = _file_states(guest, managed)
        high.update(files)
        if guest["nfs_server"] == minion_id:
            require.append({"nfs_export": "xen_nfsroot-exports-applied"})
        others = [other for other in guest["dom0s"] if other != minion_id]
        if others and MIGRATE_TRUST not in high:
            _trust_states(high, minion_id)
        running = guest["dom0"] == minion_id and (guest["autostart"] or options["boot"])
        if running:
            args.update(console_dir=dom0["console_dir"], retry=options["retry"] or None,
                        other_dom0s=others or None)
            require += console
        else:
            for key in _BOOT_ONLY:
                args.pop(key, None)
        state = "xen_guest.running" if running else "xen_guest.configured"
        high[guest_id] = {state: [*_args(args), *_requisite(require)]}
    return high


def _mount_clients(guest):
    """Who the NFS server should see mounting the guest's root: its own
    static address when pillar gives one, else its export's clients."""
    network = guest["network"]
    if isinstance(network, dict) and network.get("address"):
        return [network["address"]]
    return list(guest["export_clients"])


def _mounted_data(selected):
    return {
        f"xen_nfsroot-mounted-{name}": {"nfs_export.mounted": [
            {"name": guest["nfs_root"]}, {"clients": _mount_clients(guest)}]}
        for name, guest in selected.items() if not guest["absent"]
    }


def _migrate_data(selected, migration, minion_id):
    """xen_guest.migrated on the source, xen_guest.received on the target."""
    high = {}
    for name, guest in selected.items():
        source, target = migration.get("from"), migration.get("to")
        others = [other for other in guest["dom0s"] if other != minion_id]
        state_id = f"xen_nfsroot-migrate-{name}"
        if minion_id == source:
            dom0 = dom0_settings()
            ssh = __salt__["xen_migrate.ssh_command"](key=dom0["migrate_key"],
                                                      known_hosts=dom0["known_hosts"])
            args = {"name": name, "to": target, "address": dom0_address(target),
                    "ssh_command": ssh,
                    "dom0s": guest["dom0s"], "other_dom0s": others,
                    "toolstack": guest["states"][_GUEST].get("toolstack")}
            high[state_id] = {"xen_guest.migrated": _args(args)}
        elif minion_id == target:
            args = {"name": name, "source": source, "other_dom0s": others,
                    "toolstack": guest["states"][_GUEST].get("toolstack")}
            high[state_id] = {"xen_guest.received": _args(args)}
    return high


def state_data(role, boot=False, retry=False, migration=None, **selection):
    """
    The complete state data (high data: IDs, states, arguments, requisites)
    that ``xen_nfsroot/server.sls``, ``dom0.sls`` or ``mounted.sls`` applies
    on this minion.

    role
        ``server``: for each guest this minion exports, its root population,
        its fstab and its export, then one ``nfs_export.reloaded``.
        ``dom0``: xenconsoled logging guest consoles, then for each guest
        this minion runs, its kernel and ramdisk files and its ``xen_guest``
        state. ``mounted``: for each guest this minion exports, the server's
        confirmation that the guest mounted its root (``nfs_export.mounted``).
        ``migrate``: ``xen_guest.migrated`` of the selected guest on the
        dom0 ``migration["from"]``, ``xen_guest.received`` on
        ``migration["to"]`` (``xen_nfsroot/migrate.sls``). ``migrate_key``:
        this dom0's migration key (``xen_nfsroot/migrate_key.sls``).
    boot
        Boot the selected guests even without ``autostart`` (the
        orchestration asks for it for a guest named in its pillar).
    retry
        Boot again a guest whose last boot failed with the same config.
    only
        As for :func:`guests`.

    CLI Example:

    .. code-block:: bash

        salt nfs1 xen_nfsroot.state_data server
    """
    if role == "migrate_key":
        return _key_data(dom0_settings())
    if role not in (*ROLES, "mounted", "migrate"):
        raise SaltInvocationError(
            f"role: expected server, dom0, mounted, migrate or migrate_key, got {role!r}")
    selected = guests({"mounted": "server", "migrate": "dom0"}.get(role, role), **selection)
    if not selected:
        return {}
    if role == "server":
        return _server_data(selected)
    if role == "mounted":
        return _mounted_data(selected)
    if role == "migrate":
        if not isinstance(migration, dict):
            raise SaltInvocationError(f"migration: {migration!r} is not {{from, to}}")
        return _migrate_data(selected, migration, __opts__["id"])
    return _dom0_data(selected, {"boot": boot is True, "retry": retry is True}, __opts__["id"])
