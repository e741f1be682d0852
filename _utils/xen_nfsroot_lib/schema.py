"""
The ``xen_nfsroot`` pillar's schema and its validation (pure: a mapping in,
validated guests and settings out).

Every key of the pillar is a :class:`Field`: its default, the validator of
its kind of value (a function of the library module that owns that kind:
:mod:`~xen_nfsroot_lib.guest_config` for the guest's config,
:mod:`~xen_nfsroot_lib.exports` and :mod:`~xen_nfsroot_lib.export_options`
for the export, :mod:`~xen_nfsroot_lib.fstab` for the guest's fstab,
:mod:`~xen_nfsroot_lib.values` for what many share), the state arguments it
becomes and a line of documentation. :data:`FIELDS` (with the guest's config
settings, :func:`guest_fields`) are a guest's keys; :data:`SERVER` and
:data:`DOM0` are the ``server`` and ``dom0`` sections': one mechanism fills
in the defaults and checks the values of all three (:func:`section`,
:func:`validate`). The defaults here are the formula's only ones; the state
tree keeps only the NFS server's package and service names per OS family
(``salt/xen_nfsroot/defaults.yaml``).

Each state's own check then runs on the arguments the state will get, so
the pillar accepts exactly what the states accept; what spans guests (one
name, one root, one MAC address, no root inside another) is checked here.
Errors are :class:`PillarError` naming the section or guest, the field and
the value.
"""

import functools
from typing import NamedTuple

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import (
    console,
    export_options,
    exports,
    fstab,
    guest_config,
    root_archive,
    toolstack,
    trust,
    values,
)

#: The pillar key of the formula, and the sections under it.
PILLAR_KEY = "xen_nfsroot"
SECTIONS = ("defaults", "guests", "server", "dom0")
#: The roles a minion has in the pillar.
ROLES = ("server", "dom0")
#: The formula's own drop-in exports file (the server's default).
EXPORTS_FILE = "/etc/exports.d/xen-nfsroot.exports"
#: A required key's default.
REQUIRED = object()
#: The default of a field whose state has its own: the argument is left out.
STATE_DEFAULT = None

#: The states a guest's fields become arguments of.
GUEST = "xen_guest"
EXPORT = "nfs_export"
FSTAB = "domu_fstab"
ROOT = "domu_root"


class PillarError(CommandExecutionError):
    """An invalid ``xen_nfsroot`` pillar."""


class Field(NamedTuple):
    """One key of the pillar."""

    default: object
    check: object  # the validator: (value, field) -> the value in its canonical form
    states: tuple = ()  # (state, argument) pairs it becomes; argument "*": each key
    doc: str = ""


def fail(where, field, message, value):
    """Raise the error of a bad pillar: where, the field, what, the value."""
    raise PillarError(f"xen_nfsroot pillar: {where}: {field}: {message}, got {value!r}")


# ---------------------------------------------------------------------------
# Validators of the values only the pillar has
# ---------------------------------------------------------------------------


def _source(value, field):
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise values.invalid(field, value, "is not a file source (salt://, https://, a path)")
    return value


def _clients(value, field):
    clients = values.check_list(value, field, "non-empty list of clients")
    if not clients:
        raise values.invalid(field, value, "is not a non-empty list of clients")
    return clients


def _archive(value, field):
    if isinstance(value, str):
        value = {"source": value}
    return root_archive.check_archive(value, field)


def _fstab(value, field):
    if value is False:
        return False
    return fstab.check_nfs_root(value or {}, field)


def _dom0s(value, field):
    if value is None:
        return None
    dom0s = values.check_list(value, field, "non-empty list of minion ids")
    if not dom0s:
        raise values.invalid(field, value, "is not a non-empty list of minion ids")
    seen = []
    for item in dom0s:
        values.check_minion_id(item, field)
        if item in seen:
            raise values.invalid(field, item, f"is listed twice in {value!r}")
        seen.append(item)
    return seen


def _names(value, field):
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
            isinstance(item, str) and item.strip() for item in value):
        raise values.invalid(field, value, "is not a list of names")
    return list(value)


def _name(value, field):
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise values.invalid(field, value, "is not a name")
    return value


def _addresses(value, field):
    if not isinstance(value, dict):
        raise values.invalid(field, value, "is not a mapping of minion id to address")
    checked = {}
    for minion_id, address in value.items():
        values.check_minion_id(minion_id, field)
        checked[minion_id] = trust.check_address(address, f"{field}:{minion_id}")
    return checked


_options = functools.partial(values.check_list, what="list of export options")
_toolstack = functools.partial(values.check_choice, choices=toolstack.TOOLSTACK_CHOICES)


# ---------------------------------------------------------------------------
# The fields: a guest's, the server's, the dom0's
# ---------------------------------------------------------------------------

#: Every guest field but the config settings: default, validator, the state
#: arguments it becomes.
FIELDS = {
    "nfs_server": Field(REQUIRED, values.check_minion_id, (), "minion id exporting the root"),
    "nfs_server_address": Field(REQUIRED, values.check_ipv4, ((GUEST, "nfs_server"),),
                                "the address the guest mounts its root from (IPv4)"),
    "nfs_root": Field(REQUIRED, guest_config.check_nfs_root,
                      ((GUEST, "nfs_root"), (EXPORT, "name"), (FSTAB, "name"), (ROOT, "name")),
                      "the guest's root directory on the NFS server"),
    "export_clients": Field(REQUIRED, _clients, ((EXPORT, "clients"),),
                            "who may mount it: host, IP, CIDR, @netgroup, wildcard"),
    "dom0": Field(REQUIRED, values.check_minion_id, (), "minion id running the guest: its "
                  "home, where it is booted when it runs on none of its dom0s"),
    "dom0s": Field(None, _dom0s, (), "every dom0 that may run the guest, its home among them "
                   "(null: [dom0]); each gets its kernel and config, it runs on one at a time"),
    "kernel": Field(REQUIRED, guest_config.check_kernel_path, ((GUEST, "kernel"),),
                    "the guest's kernel on the dom0"),
    "export_options": Field(["rw", "no_root_squash", "async", "no_subtree_check"], _options,
                            ((EXPORT, "clients"),), "the export's options"),
    "allow_world_root": Field(False, values.check_switch, ((EXPORT, "allow_world_root"),),
                              "allow a world or wildcard client with no_root_squash"),
    "toolstack": Field("auto", _toolstack, ((GUEST, "toolstack"),), "auto, xl or xm"),
    "kernel_source": Field(None, _source, (), "copied to kernel by file.managed (salt://, "
                                              "https://, a path)"),
    "kernel_source_hash": Field(None, _source, (), "hash of a non-salt:// kernel_source"),
    "ramdisk_source": Field(None, _source, (), "copied to ramdisk"),
    "ramdisk_source_hash": Field(None, _source, (), "hash of a non-salt:// ramdisk_source"),
    "root_archive": Field(None, _archive, ((ROOT, "*"),),
                          "{source, source_hash, skip_verify}: populates nfs_root once"),
    "config_dir": Field(STATE_DEFAULT, guest_config.check_config_dir, ((GUEST, "config_dir"),),
                        "where <name>.cfg is written on the dom0 (null: /etc/xen)"),
    "fstab": Field({}, _fstab, ((FSTAB, "*"),),
                   "{fstype, opts, disable, dump, pass_num} of the guest's /etc/fstab "
                   "(domu_fstab.nfs_root's defaults), or false to leave it alone"),
    "autostart": Field(True, values.check_switch, (),
                       "boot it by highstate and at its dom0's start"),
    "restart_on_change": Field(False, values.check_switch, ((GUEST, "restart_on_change"),),
                               "restart the running guest when its config changes"),
    "check_kernel": Field(True, values.check_switch, ((GUEST, "check_kernel"),),
                          "check before booting that the kernel (or its initramfs) can mount "
                          "an NFS root"),
    "boot_timeout": Field(STATE_DEFAULT, console.check_boot_timeout, ((GUEST, "boot_timeout"),),
                          "seconds a boot is watched for its proof (null: 120; 0: not watched)"),
    "boot_marker": Field(None, console.check_boot_marker, ((GUEST, "boot_marker"),),
                         "a regular expression the guest's console prints once it runs from "
                         "its root: the proof of its boot"),
    "absent": Field(False, values.check_switch, (),
                    "stop it, remove its config and its export"),
}

#: The NFS server side (``xen_nfsroot:server``).
SERVER = {
    "manage_packages": Field(True, values.check_switch, (),
                             "install the NFS server packages (per OS family)"),
    "manage_service": Field(True, values.check_switch, (),
                            "keep the NFS server service running and enabled"),
    "exports_file": Field(EXPORTS_FILE, exports.check_exports_file, (),
                          "the exports file the exports go to (a formula-owned drop-in; "
                          "/etc/exports works too)"),
    "confine_roots": Field(True, values.check_switch, (),
                           "mount each guest root onto itself nosuid,nodev (and keep it in "
                           "/etc/fstab): the server's local users cannot run the guest's "
                           "set-id programs or open its device nodes"),
    "packages": Field(None, _names, (), "the NFS server packages (null: the OS family's)"),
    "service": Field(None, _name, (), "the NFS server service (null: the OS family's)"),
}

def _settings_file(value, field):
    return values.check_absolute_path(value, field, normalised=True, below_root=True)


#: How many guests of one run boot at once by default (each a forked process).
PARALLEL_BOOTS = 32


def _boots_at_once(value, field):
    if value is False:
        return 1
    return values.check_count(value, field)


#: The dom0 side (``xen_nfsroot:dom0``).
DOM0 = {
    "console_logging": Field(True, values.check_switch, (),
                             "xenconsoled logs guest consoles (the boot checks read them)"),
    "console_dir": Field(console.CONSOLE_DIR, console.check_console_dir, (),
                         "where xenconsoled logs guest consoles"),
    "parallel_boots": Field(PARALLEL_BOOTS, _boots_at_once, (),
                            "how many guests of one run boot at once (Salt's parallel: True), "
                            "their consoles watched together; 1: one after the other"),
    "xen_settings_file": Field(console.SETTINGS_FILE, _settings_file, (),
                               "sourced by the Xen init script (XENCONSOLED_ARGS)"),
    "addresses": Field({}, _addresses, (), "{minion id: address} a dom0 is reached at for a "
                                           "live migration (default: its minion id)"),
    "migrate_key": Field(trust.KEY, trust.check_path, (), "this dom0's migration key"),
    "authorized_keys": Field(trust.AUTHORIZED_KEYS, trust.check_path, (),
                             "where the peers' keys are trusted"),
    "known_hosts": Field(trust.KNOWN_HOSTS, trust.check_path, (), "the peers' host keys"),
    "migrate_wrapper": Field(trust.WRAPPER, trust.check_path, (),
                             "the forced command of the peers' keys (xl migrate-receive only)"),
}

_SECTIONS = {"server": SERVER, "dom0": DOM0}

# The guest's config settings become fields too, with guest_config's
# defaults: memory, vcpus, ramdisk, network, vif, nfs_options, root, extra,
# guest_type, on_crash (dhcp is the seed's xm spelling of network, nfs_server
# and nfs_root come from the fields above).
_SETTINGS_FROM_FIELDS = {"dhcp", "nfs_server", "nfs_root"}


def guest_fields():
    """Every guest field: :data:`FIELDS` and the guest's config settings."""
    defaults = guest_config.setting_defaults()
    docs = guest_config.setting_docs()
    # The pillar has no dhcp key (the seed's xm spelling), so the default of
    # network, which means DHCP, is spelled dhcp.
    defaults["network"] = "dhcp"
    settings = {
        name: Field(default, functools.partial(guest_config.check_setting, name),
                    ((GUEST, name),), docs[name])
        for name, default in defaults.items()
        if name not in _SETTINGS_FROM_FIELDS
    }
    return {**FIELDS, **settings}


def fields(section="guests"):
    """The fields of a section: ``guests`` (each guest's, also the keys of
    ``defaults``), ``server`` or ``dom0``."""
    if section == "guests":
        return guest_fields()
    if section not in _SECTIONS:
        raise values.invalid("section", section, "must be one of guests, server, dom0")
    return _SECTIONS[section]


def describe(section="guests"):
    """A section's fields as data: ``{name: {"required", "default", "states",
    "doc"}}``, ``states`` being the ``state.argument`` each becomes."""
    return {
        name: {
            "required": field.default is REQUIRED,
            "default": None if field.default is REQUIRED else field.default,
            "states": [f"{state}.{argument}" for state, argument in field.states],
            "doc": field.doc,
        }
        for name, field in fields(section).items()
    }


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def plain(value):
    """A copy of pillar data made of plain dicts and lists.

    Salt 3008 hands execution modules its pillar as dict and list subclasses
    whose repr hides every value; the copy holds the real values, for
    validation, for error messages and for a cache key, and shares no list
    with the pillar.
    """
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def check_top(pillar):
    """The ``xen_nfsroot`` mapping itself: nothing (None, '') is empty; its
    keys are the :data:`SECTIONS`. Returns it (or ``{}``)."""
    if pillar in (None, ""):
        return {}
    if not isinstance(pillar, dict):
        fail("xen_nfsroot", PILLAR_KEY, "expected a mapping", plain(pillar))
    unknown = sorted(set(pillar) - set(SECTIONS))
    if unknown:
        fail("xen_nfsroot", unknown[0], "unknown key", plain(pillar[unknown[0]]))
    return pillar


def _fill(where, fields_, given):
    """``given`` completed with the fields' defaults, each value checked."""
    filled = {}
    for key, field in fields_.items():
        if key not in given and field.default is REQUIRED:
            fail(where, key, "required key missing", None)
        value = given.get(key, plain(field.default))
        if value is None and field.default is None:
            filled[key] = None
            continue
        try:
            filled[key] = field.check(value, key)
        except (SaltInvocationError, CommandExecutionError) as err:
            raise PillarError(f"xen_nfsroot pillar: {where}: {err}") from None
    return filled


def section(pillar, name):
    """The ``server`` or ``dom0`` section of the ``xen_nfsroot`` mapping
    ``pillar``, defaults merged, each value checked."""
    given = pillar.get(name) or {}
    if not isinstance(given, dict):
        fail(name, name, "expected a mapping", given)
    section_fields = fields(name)
    unknown = sorted(set(given) - set(section_fields))
    if unknown:
        fail(name, unknown[0], "unknown key", given[unknown[0]])
    return _fill(name, section_fields, given)


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
                fail("guests", f"[{index}]", "expected a mapping with a name", item)
            entries.append((item["name"], item))
        return entries
    return fail("guests", "guests", "expected a mapping of guest names", raw)


def validate(pillar):
    """Every guest of the ``xen_nfsroot`` mapping ``pillar`` (plain data: see
    :func:`plain`), validated: ``{name: guest}`` in name order, defaults
    merged, values in their canonical form, each guest's state arguments
    under ``states``. The ``server`` and ``dom0`` sections are checked too.
    Raises :class:`PillarError` on the first problem."""
    pillar = check_top(pillar)
    every = guest_fields()
    defaults = pillar.get("defaults") or {}
    if not isinstance(defaults, dict):
        fail("defaults", "defaults", "expected a mapping", defaults)
    unknown = sorted(set(defaults) - set(every))
    if unknown:
        fail("defaults", unknown[0], "unknown key", defaults[unknown[0]])
    for name in _SECTIONS:
        section(pillar, name)
    guests = {}
    seen = {"root": {}, "mac": {}}
    for name, raw in _guest_entries(pillar):
        if name in guests:
            fail(f"guest {name!r}", "name", "two guests with one name", name)
        guest = _validate_guest(name, raw, defaults, every)
        check_across(name, guest, seen)
        guests[name] = guest
    return dict(sorted(guests.items()))


def _validate_guest(name, raw, defaults, every):
    where = f"guest {name!r}"
    try:
        values.check_domain_name(name)
    except SaltInvocationError as err:
        raise PillarError(f"xen_nfsroot pillar: guests: {err}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        fail(where, "guest", "expected a mapping of keys", raw)
    unknown = sorted(set(raw) - set(every) - {"name"})
    if unknown:
        fail(where, unknown[0], "unknown key", raw[unknown[0]])
    guest = {"name": name, **_fill(where, every, {**defaults, **raw})}
    _check_home(where, guest)
    guest["states"] = state_args(guest, every)
    _check_states(where, guest)
    return guest


def _check_home(where, guest):
    """The home dom0 is one of the guest's dom0s (alone when none are listed)."""
    if guest["dom0s"] is None:
        guest["dom0s"] = [guest["dom0"]]
    elif guest["dom0"] not in guest["dom0s"]:
        fail(where, "dom0s", f"does not hold the guest's home dom0 {guest['dom0']!r}",
             guest["dom0s"])


def _check_states(where, guest):
    """Each state's own check on the arguments it will get."""
    args = guest["states"]
    try:
        settings = guest_config.setting_defaults()
        guest_args = {k: v for k, v in args[GUEST].items() if k in settings}
        guest_config.guest_settings(guest["name"], guest["kernel"], **guest_args)
        export = args[EXPORT]
        export_options.validate(export["name"], clients=export["clients"],
                                allow_world_root=export["allow_world_root"])
    except (SaltInvocationError, CommandExecutionError) as err:
        raise PillarError(f"xen_nfsroot pillar: {where}: {err}") from None


def _ancestors(path):
    """The directories above path, nearest first ('/a/b/c' -> '/a/b', '/a')."""
    while True:
        path = path.rsplit("/", 1)[0]
        if not path:
            return
        yield path


def check_across(name, guest, seen):
    """What spans guests: one root, one MAC address, no root inside another.
    ``seen`` holds the guests checked before: ``{"root": {(server, path):
    name}, "mac": {mac: name}}``, and gets this one (plus ``"holds"``: the
    directories above each root, so each guest costs its path's depth, not
    the number of guests)."""
    where = f"guest {name!r}"
    server, path = guest["nfs_server"], guest["nfs_root"]
    roots, holds = seen["root"], seen.setdefault("holds", {})
    if (server, path) in roots:
        fail(where, "nfs_root", f"already the root of guest {roots[server, path]!r} on "
                                f"{server}", path)
    # The outer guest owns every directory on the way to the inner root.
    for above in _ancestors(path):
        if (server, above) in roots:
            fail(where, "nfs_root", f"inside the root {above} of guest "
                                    f"{roots[server, above]!r} on {server}", path)
    if (server, path) in holds:
        other_path, other = holds[server, path]
        fail(where, "nfs_root", f"holds the root {other_path} of guest {other!r} on "
                                f"{server}", path)
    roots[server, path] = name
    for above in _ancestors(path):
        holds.setdefault((server, above), (path, name))
    for mac in guest_config.vif_macs(guest["vif"]):
        if mac in seen["mac"]:
            fail(where, "vif", f"MAC address already used by guest {seen['mac'][mac]!r}", mac)
        seen["mac"][mac] = name


def state_args(guest, every):
    """The arguments of each state for this guest, from the fields' mapping
    (``every``: :func:`guest_fields`). A state the guest does not get
    (``domu_fstab`` with ``fstab: false``, ``domu_root`` without an
    archive) is None."""
    args = {GUEST: {"name": guest["name"]}, EXPORT: {}, FSTAB: {}, ROOT: {}}
    for key, field in every.items():
        value = guest[key]
        for state, argument in field.states:
            if argument == "*":
                args[state].update(value or {})
            elif value is not None:
                args[state][argument] = value
    export = args[EXPORT]
    export["clients"] = [{"hosts": client, "options": list(guest["export_options"])}
                         for client in guest["export_clients"]]
    export.setdefault("allow_world_root", False)
    if args[GUEST].get("toolstack") == "auto":
        del args[GUEST]["toolstack"]
    if guest["fstab"] is False:
        args[FSTAB] = None
    else:
        args[FSTAB].setdefault("name", guest["nfs_root"])
    if not guest["root_archive"]:
        args[ROOT] = None
    return args
