"""
The ``xen_nfsroot`` pillar read on a minion: its guests, the roles of a
minion, where guests run, and the state data the SLS files loop over.

Every guest is described once, under ``xen_nfsroot:guests``; keys under
``xen_nfsroot:defaults`` are merged under every guest; ``xen_nfsroot:server``
and ``xen_nfsroot:dom0`` configure the NFS server and the dom0 sides. This
module is the one place that reads that pillar: the SLS files, the
orchestration and the reactor use what :func:`guests` and
:func:`state_data` return.

The schema (each key, its default, its validator, the state arguments it
becomes) and the validation are :mod:`xen_nfsroot_lib.schema`; where a
guest runs and the moves of a migration are :mod:`xen_nfsroot_lib.placement`.
Here: reading the pillar (once per run), asking the dom0s, and building the
states.

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

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import boot, placement, trust, values
from xen_nfsroot_lib import schema as pillar_schema
from xen_nfsroot_lib.schema import EXPORT, FSTAB, GUEST, ROLES, ROOT

log = logging.getLogger(__name__)

__virtualname__ = "xen_nfsroot"

# __context__ key: (fingerprint of the pillar, validated guests) of this run.
_CTX_VALIDATED = "xen_nfsroot.validated"


def __virtual__():
    return __virtualname__


def schema(section="guests"):
    """
    The keys of a section of the pillar: ``guests`` (each guest's keys, and
    those of ``defaults``), ``server`` or ``dom0``:
    ``{name: {"default", "required", "states", "doc"}}``, ``states`` being
    the ``state.argument`` each becomes.

    CLI Example:

    .. code-block:: bash

        salt '*' xen_nfsroot.schema
    """
    return pillar_schema.describe(section)


# ---------------------------------------------------------------------------
# The pillar, read once per run
# ---------------------------------------------------------------------------


def _read_pillar(section=None):
    """The ``xen_nfsroot`` pillar, or one section of it, as plain data."""
    # __pillar__, not pillar.get: on Salt 3008, pillar.get called outside a
    # template (the CLI, the orchestration's salt.function, a #!py SLS)
    # returns every value masked as "**********".
    pillar = pillar_schema.check_top(__pillar__.get(pillar_schema.PILLAR_KEY, {}))
    if section is not None:
        # Only what is asked for is copied: the guests can be thousands.
        return {section: pillar_schema.plain(pillar.get(section))}
    return pillar_schema.plain(pillar)


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
    pillar = _read_pillar() if pillar is None else pillar_schema.plain(pillar)
    key = _fingerprint(pillar)
    cached = __context__.get(_CTX_VALIDATED)
    if key is not None and cached is not None and cached[0] == key:
        return dict(cached[1])
    guests = pillar_schema.validate(pillar)
    if key is not None:
        __context__[_CTX_VALIDATED] = (key, guests)
    return dict(guests)


def settings(section="server", pillar=None):
    """
    Return the settings of the NFS server side (``xen_nfsroot:server``) or
    of the dom0 side (``xen_nfsroot:dom0``), defaults merged (their keys:
    ``xen_nfsroot.schema server``, ``xen_nfsroot.schema dom0``).

    The dom0 side holds ``console_logging`` (xenconsoled logs guest
    consoles, for the boot checks), ``console_dir`` and ``xen_settings_file``
    (the file the Xen init script sources), ``addresses`` (``{minion id:
    address}``: where a dom0 is reached for a live migration, and where its
    migrations come from; a dom0 not listed is reached by its minion id), and
    the migration trust's files: ``migrate_key``, ``authorized_keys``,
    ``known_hosts``, ``migrate_wrapper`` (the forced command of the peers'
    keys).

    CLI Example:

    .. code-block:: bash

        salt nfs1 xen_nfsroot.settings
    """
    if section not in ROLES:
        raise SaltInvocationError(f"section: expected server or dom0, got {section!r}")
    pillar = _read_pillar(section) if pillar is None else pillar_schema.plain(pillar)
    return pillar_schema.section(pillar, section)


def dom0_address(minion_id, pillar=None):
    """
    Where the dom0 ``minion_id`` is reached for a live migration (and where
    its migrations come from): ``dom0:addresses`` of the pillar, else the
    minion id.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xen_nfsroot.dom0_address dom0-b
    """
    return settings("dom0", pillar)["addresses"].get(minion_id, minion_id)


# ---------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------


def _select(every, selection):
    """The guests a filter selects: all without one; with ``only``, the guest
    pillar defines by that exact name; with ``among``, those of a list of
    names. A filter that is not such a name or list (``""``, ``0``,
    ``false``, ``null``, a mapping, an unknown name; for ``only`` a list too)
    selects nothing: bad input never widens a selection."""
    unknown = sorted(set(selection) - {"only", "among"})
    if unknown:
        raise SaltInvocationError(f"{unknown[0]}: not an argument of xen_nfsroot.guests")
    if "only" in selection:
        only = selection["only"]
        every = {only: every[only]} if isinstance(only, str) and only in every else {}
        if not every:
            log.warning("xen_nfsroot: guest filter %r names no guest in pillar; nothing selected",
                        only)
    if "among" in selection:
        among = selection["among"]
        names = set(among) if isinstance(among, list) and all(
            isinstance(name, str) for name in among) else set()
        if names - set(every) or not names:
            log.warning("xen_nfsroot: guest list %r names no guest in pillar (or not all); "
                        "only those it names are selected", among)
        every = {name: guest for name, guest in every.items() if name in names}
    return every


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

    among
        Keep only the guests of this list of names (the orchestration's one
        boot step for all its guests); a value that is not a list of names
        selects nothing, a name pillar does not define is left out and
        logged.

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
        values.check_minion_id(evacuate, "evacuate")
        leaving = placement.evacuees(every, evacuate)
        asked = sorted({dom0 for g in leaving.values() for dom0 in g["dom0s"]})
        return placement.evacuation(leaving, evacuate, ask_dom0s(asked) if leaving else {})
    found = placement.migration_target(every, guest, to)
    return [placement.move(guest, found["dom0s"], to, ask_dom0s(found["dom0s"]))]


# ---------------------------------------------------------------------------
# State data for the SLS files
# ---------------------------------------------------------------------------


def _args(mapping):
    """State arguments from a mapping, leaving out those that are None."""
    return [{key: value} for key, value in mapping.items() if value is not None]


def _server_states(name, guest, server):
    high = {}
    args = guest["states"]
    export_id = f"xen_nfsroot-export-{name}"
    target = [{"exports": server["exports_file"]}, {"reload": False}]
    if guest["absent"]:
        return {export_id: {"nfs_export.absent": [{"name": guest["nfs_root"]}, *target]}}
    require = []
    confine = server["confine_roots"]
    if args[ROOT] is not None:
        high[f"xen_nfsroot-root-{name}"] = {"domu_root.populated": [
            *_args(args[ROOT]), *([{"confine": True}] if confine else [])]}
        require = [{"domu_root": f"xen_nfsroot-root-{name}"}]
    if confine:
        high[f"xen_nfsroot-confined-{name}"] = {"domu_root.confined": [
            {"name": guest["nfs_root"]}, *_requisite(require)]}
        require = [{"domu_root": f"xen_nfsroot-confined-{name}"}]
    if args[FSTAB] is not None:
        high[f"xen_nfsroot-fstab-{name}"] = {
            "domu_fstab.nfs_root": [*_args(args[FSTAB]), *_requisite(require)]}
        require = [{"domu_fstab": f"xen_nfsroot-fstab-{name}"}]
    high[export_id] = {"nfs_export.present": [*_args(args[EXPORT]), *target,
                                              *_requisite(require)]}
    return high


def _requisite(require):
    return [{"require": require}] if require else []


def _server_data(selected):
    server = settings("server")
    high = {}
    if server["manage_packages"] or server["manage_service"]:
        high["include"] = ["xen_nfsroot.packages"]
    for name, guest in selected.items():
        high.update(_server_states(name, guest, server))
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
    dom0 = settings("dom0")
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
    dom0 = settings("dom0")
    console = _console_state(high, dom0) if any(
        not guest["absent"] for guest in selected.values()) else []
    managed = set()
    for name, guest in selected.items():
        guest_id = f"xen_nfsroot-guest-{name}"
        args = dict(guest["states"][GUEST])
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
    _parallel_boots(high)
    return high


BOOTS_PREPARED = "xen_nfsroot-boots-prepared"


def _boot_candidates(high):
    """{state id: arguments} of the xen_guest.running states whose guest does
    not run on this dom0 now (one ``xl list`` per toolstack, the run's own:
    ``xm.list_domains`` keeps it for the states). None when the dom0 cannot
    be listed (the states then say why, one after the other)."""
    running = {sid: dict(pair for arg in data["xen_guest.running"] if isinstance(arg, dict)
                         for pair in arg.items())
               for sid, data in high.items()
               if isinstance(data, dict) and "xen_guest.running" in data}
    here = {}
    try:
        for toolstack in {args.get("toolstack") for args in running.values()}:
            here[toolstack] = __salt__["xm.list_domains"](toolstack=toolstack)
    except (KeyError, CommandExecutionError, SaltInvocationError) as err:
        log.info("xen_nfsroot: boots run one after the other (cannot list domains: %s)", err)
        return None
    return {sid: args for sid, args in running.items()
            if (here[args.get("toolstack")].get(args["name"]) or {}).get("state")
            not in placement.RUNNING}


def _parallel_boots(high):
    """Two or more guests to boot: their states run in parallel (Salt's
    ``parallel: True``, one forked process each, all watching their consoles
    at once), after one state that makes the reads they share (the domain
    list, the mine, the kernel checks) so that each fork inherits them
    instead of making them again. At most ``xen_nfsroot:dom0:parallel_boots``
    forks at once: Salt 3008 queues the others itself when the minion sets
    ``state_max_parallel``; otherwise the guests past that number boot one
    after the other, in the run's own process. A test run stays in one
    process, as does every run with ``parallel_boots: 1``."""
    at_once = settings("dom0")["parallel_boots"]
    if __opts__.get("test") or at_once < 2:
        return
    booting = _boot_candidates(high)
    if not booting or len(booting) < 2:
        return
    if not __opts__.get("state_max_parallel"):
        booting = dict(list(booting.items())[:at_once])
    shared = boot.shared_questions(booting.values())
    before = sorted({tuple(req.items())[0] for args in booting.values()
                     for req in args.get("require", [])})
    high[BOOTS_PREPARED] = {"xen_boots.prepared": [
        *({key: value} for key, value in shared.items()),
        *_requisite([{module: sid} for module, sid in before])]}
    for sid in booting:
        (state,) = high[sid]
        high[sid][state] += [{"parallel": True}]
        _add_requisite(high[sid][state], {"xen_boots": BOOTS_PREPARED})


def _add_requisite(args, requisite):
    for arg in args:
        if isinstance(arg, dict) and "require" in arg:
            arg["require"].append(requisite)
            return
    args.append({"require": [requisite]})


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
            dom0 = settings("dom0")
            ssh = trust.ssh_command(key=dom0["migrate_key"], known_hosts=dom0["known_hosts"])
            args = {"name": name, "to": target, "address": dom0_address(target),
                    "ssh_command": ssh,
                    "dom0s": guest["dom0s"], "other_dom0s": others,
                    "toolstack": guest["states"][GUEST].get("toolstack")}
            high[state_id] = {"xen_guest.migrated": _args(args)}
        elif minion_id == target:
            args = {"name": name, "source": source, "other_dom0s": others,
                    "toolstack": guest["states"][GUEST].get("toolstack")}
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
    only, among
        As for :func:`guests`.

    CLI Example:

    .. code-block:: bash

        salt nfs1 xen_nfsroot.state_data server
    """
    if role == "migrate_key":
        return _key_data(settings("dom0"))
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
