"""
Xen guests (domUs) booted from a config file the formula writes.

.. code-block:: yaml

    XenGuest:
      xen_guest.running:
        - kernel: /boot/vmlinuz-2.6.18-53.1.14.el5.myxen
        - memory: 256
        - network: dhcp                 # or {address, netmask, gateway, hostname, interface}
        - vif: ['']
        - nfs_server: 192.0.2.1
        - nfs_root: /xen

The guest's settings are those of ``xen_config.GUEST_SETTINGS`` (``memory``,
``vcpus``, ``ramdisk``, ``network``, ``dhcp``, ``vif``, ``nfs_server``,
``nfs_root``, ``nfs_options``, ``root``, ``extra``, ``guest_type``,
``on_crash``), given as keyword arguments; their defaults and validators are
that table's. The config goes to ``<config_dir>/<name>.cfg`` (``/etc/xen``
by default) in the format of the toolstack in use: for xl the kernel command
line ``ip=... nfsroot=...`` is synthesized into ``extra``, since xl ignores
xm's NFS keys.

"Running with the same config" means: the domain is up and its config file
already holds exactly the wanted text. A changed config is written
atomically; the running guest is restarted only with
``restart_on_change: True`` (otherwise it keeps its old configuration until
its next boot, and the comment says so). One domain listing serves the whole
run (cached by the ``xm`` module).
"""

import difflib
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "xen_guest"

LIVE = ("running", "blocked", "paused")
DEAD = ("shutdown", "crashed")
ERRORS = (CommandExecutionError, SaltInvocationError, OSError)


def __virtual__():
    if "xm.create" in __salt__ and "xen_config.render_config" in __salt__:
        return __virtualname__
    return (False, "the xen_guest state needs the xm and xen_config execution modules "
                   "(xl or xm not installed)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _sentence(text):
    return text[:1].upper() + text[1:]


def _settings(arguments):
    """The guest settings among a state's keyword arguments; anything else
    that is not one of Salt's own keywords is an error naming it."""
    known = __salt__["xen_config.guest_setting_defaults"]()
    unknown = sorted(key for key in arguments if key not in known and not key.startswith("__"))
    if unknown:
        raise SaltInvocationError(
            f"{unknown[0]}: {arguments[unknown[0]]!r} is not a guest setting "
            f"(known: {', '.join(known)})")
    return {key: value for key, value in arguments.items() if key in known}


def _config_path(name, config_dir):
    arguments = {"config_dir": config_dir} if config_dir else {}
    return __salt__["xen_config.config_path"](name, **arguments)


def _read(path):
    data = __salt__["nfsroot_files.read"](path)
    return None if data is None else data.decode("utf-8", errors="replace")


def _diff(path, old, new):
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), path, path
        )
    )


def _prepare(name, kernel, config_dir, toolstack, settings):
    """Check every input, then render: returns (path, wanted text, current text or None).

    Nothing is started or written here; a bad value raises
    SaltInvocationError naming the field and the value.
    """
    path = _config_path(name, config_dir)
    # Validate the whole description before any process runs.
    __salt__["xen_config.guest_settings"](name, kernel, **settings)
    for field, value in (("kernel", kernel), ("ramdisk", settings.get("ramdisk"))):
        if value and not os.path.isfile(value):
            raise SaltInvocationError(f"{field}: {value!r} does not exist on this dom0")
    form = __salt__["xm.config_format"](toolstack)
    wanted = __salt__["xen_config.render_config"](name, kernel, form, **settings)
    return path, wanted, _read(path)


def _config_change(path, current, wanted):
    if current is None:
        return {"path": path, "action": "created"}
    if current != wanted:
        return {"path": path, "action": "updated", "diff": _diff(path, current, wanted)}
    return None


def _stop(name, timeout, toolstack, current_state):
    """Shut a domain down, destroying it after ``timeout``; returns True if destroyed."""
    if current_state in DEAD or current_state == "paused":
        __salt__["xm.destroy"](name, toolstack=toolstack)
        return True
    result = __salt__["xm.shutdown"](name, wait=True, timeout=timeout, toolstack=toolstack)
    if result["timed_out"]:
        __salt__["xm.destroy"](name, toolstack=toolstack)
        return True
    return False


def _plan(name, domain_state, config, options, force_restart):
    """(changes, future steps, past steps, note) of a running state."""
    live = domain_state in LIVE
    restart = live and (force_restart or (config is not None and options["restart_on_change"]))
    changes = {}
    future, past = [], []
    if config:
        changes["config"] = config
        verb = {"created": "create", "updated": "update"}[config["action"]]
        future.append(f"{verb} the config {config['path']}")
        past.append(f"{config['action']} the config {config['path']}")
    if not live:
        changes["guest"] = {"old": domain_state, "new": "running"}
        if domain_state in DEAD:
            future.append(f"destroy the {domain_state} domain {name} and boot it again")
            past.append(f"destroyed the {domain_state} domain {name} and booted it again")
        else:
            future.append(f"boot {name}")
            past.append(f"booted {name}")
    elif restart:
        changes["guest"] = {"old": domain_state, "new": "restarted"}
        future.append(f"restart {name}")
        past.append(f"restarted {name}")
    note = ""
    if config and live and not restart:
        note = (f"; {name} keeps running with its previous configuration until it is "
                "restarted (restart_on_change is False)")
    return changes, future, past, note


def _act(name, plan, ret, options):
    """Write the config, then boot or restart (into ret["changes"]); plan holds
    the config's path, its wanted text and the domain's state."""
    path, wanted, domain_state = plan
    toolstack = options["toolstack"]
    if "config" in ret["changes"]:
        __salt__["xen_config.write_config"](path, wanted)
    guest = ret["changes"].get("guest")
    if guest and guest["new"] == "restarted":
        if _stop(name, options["shutdown_timeout"], toolstack, domain_state):
            guest["destroyed"] = True
    elif guest and domain_state in DEAD:
        __salt__["xm.destroy"](name, toolstack=toolstack)
    if guest:
        __salt__["xm.create"](path, toolstack=toolstack)


def _apply_running(name, kernel, settings, options, force_restart=False):
    """Shared by running and mod_watch; ``options`` holds config_dir, toolstack,
    restart_on_change and shutdown_timeout."""
    ret = _ret(name)
    try:
        path, wanted, current = _prepare(name, kernel, options["config_dir"],
                                         options["toolstack"], settings)
        domain_state = __salt__["xm.state"](name, toolstack=options["toolstack"])
    except ERRORS as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if domain_state == "dying":
        ret["result"] = False
        ret["comment"] = f"{name} is being destroyed by Xen: apply the state again later"
        return ret
    config = _config_change(path, current, wanted)
    ret["changes"], future, past, note = _plan(name, domain_state, config, options,
                                               force_restart)
    if not ret["changes"]:
        shown = "running" if domain_state == "blocked" else domain_state
        ret["comment"] = f"{name} is {shown} with the config {path}"
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "Would " + " and ".join(future) + note
        return ret
    try:
        _act(name, (path, wanted, domain_state), ret, options)
    except ERRORS as err:
        ret["result"] = False
        if "config" in ret["changes"] and _read(path) == wanted:
            ret["changes"].pop("guest", None)
            ret["comment"] = f"{_sentence(past[0])}, but: {err}"
        else:
            ret["changes"] = {}
            ret["comment"] = str(err)
        return ret
    ret["comment"] = _sentence(" and ".join(past) + note)
    return ret


def running(  # noqa: PLR0913,PLR0917 (Salt calls states with keywords)
    name, kernel, config_dir=None, toolstack=None, restart_on_change=False,
    shutdown_timeout=60, **settings,
):
    """
    The guest's config file is as wanted and the guest is running.

    name
        Domain name (Xen's rule: letters, digits, ``_ . : + -``); the config is
        ``<config_dir>/<name>.cfg``.
    kernel
        Absolute path on this dom0; it must exist (``ramdisk`` too, if given).
    config_dir
        Where the config lives (default ``/etc/xen``).
    toolstack
        ``auto`` (default: detected/configured), ``xl`` or ``xm``.
    restart_on_change
        Restart a running guest whose config changed (default False).
    shutdown_timeout
        Seconds a restart waits for the graceful shutdown before destroying.
    settings
        The guest's settings (``memory``, ``vcpus``, ``ramdisk``, ``network``:
        ``dhcp`` (default), ``off`` or ``{address, netmask, gateway, hostname,
        interface}``, the seed's ``dhcp``, ``vif``, ``nfs_server``,
        ``nfs_root``, ``nfs_options`` (default ``vers=3``), ``root`` (default
        ``/dev/nfs``), ``extra``, ``guest_type`` (``pv`` or ``pvh``),
        ``on_crash``); see ``xen_config.GUEST_SETTINGS``.
    """
    options = {"config_dir": config_dir, "toolstack": toolstack,
               "restart_on_change": restart_on_change, "shutdown_timeout": shutdown_timeout}
    try:
        settings = _settings(settings)
    except SaltInvocationError as err:
        return dict(_ret(name), result=False, comment=str(err))
    return _apply_running(name, kernel, settings, options)


def configured(name, kernel, config_dir=None, toolstack=None, **settings):
    """
    The guest's config file is as wanted; the domain is neither started nor stopped.

    Arguments as for :func:`running`.
    """
    ret = _ret(name)
    try:
        path, wanted, current = _prepare(name, kernel, config_dir, toolstack, _settings(settings))
    except ERRORS as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    config = _config_change(path, current, wanted)
    if not config:
        ret["comment"] = f"The config {path} of {name} is up to date"
        return ret
    ret["changes"]["config"] = config
    verb = {"created": "create", "updated": "update"}[config["action"]]
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Would {verb} the config {path}"
        return ret
    try:
        __salt__["xen_config.write_config"](path, wanted)
    except ERRORS as err:
        ret["result"] = False
        ret["comment"] = f"Could not write {path}: {err}"
        return ret
    ret["comment"] = f"{config['action'].capitalize()} the config {path}"
    return ret


def _stop_prediction(name, domain_state, timeout):
    if domain_state in LIVE and domain_state != "paused":
        return f"Would shut down {name} (destroying it if still up after {timeout} s)"
    return f"Would destroy the {domain_state} domain {name}"


def _stop_comment(name, domain_state, timeout, destroyed):
    if not destroyed:
        return f"Shut down {name}"
    if domain_state in LIVE and domain_state != "paused":
        return f"{name} did not shut down within {timeout} s: destroyed it"
    return f"Destroyed the {domain_state} domain {name}"


def _apply_stopped(name, timeout, toolstack, ret):
    """Stop the domain into ``ret``; returns False on error (ret filled in)."""
    try:
        __salt__["xen_config.check_name"](name)
        domain_state = __salt__["xm.state"](name, toolstack=toolstack)
    except ERRORS as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return False
    if domain_state == "absent":
        ret["comment"] = f"{name} is not running"
        return True
    ret["changes"]["guest"] = {"old": domain_state, "new": "absent"}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = _stop_prediction(name, domain_state, timeout)
        return True
    try:
        destroyed = _stop(name, timeout, toolstack, domain_state)
    except ERRORS as err:
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = str(err)
        return False
    if destroyed:
        ret["changes"]["guest"]["destroyed"] = True
    ret["comment"] = _stop_comment(name, domain_state, timeout, destroyed)
    return True


def stopped(name, timeout=60, toolstack=None):
    """
    The guest is not running: graceful shutdown, destroyed if still up after ``timeout`` s.

    A domain already shut down or crashed (kept by Xen) is destroyed.
    """
    ret = _ret(name)
    _apply_stopped(name, timeout, toolstack, ret)
    return ret


def absent(name, config_dir=None, timeout=60, toolstack=None):
    """
    The guest is stopped (as :func:`stopped`) and its config file removed.
    """
    ret = _ret(name)
    try:
        path = _config_path(name, config_dir)
    except ERRORS as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if not _apply_stopped(name, timeout, toolstack, ret):
        return ret
    stop_comment = ret["comment"]
    if not os.path.exists(path):
        ret["comment"] = f"{stop_comment}; its config {path} is absent"
        return ret
    ret["changes"]["config"] = {"path": path, "action": "removed"}
    if __opts__["test"]:
        ret["result"] = None
        if "guest" in ret["changes"]:
            ret["comment"] = f"{stop_comment} and remove the config {path}"
        else:
            ret["comment"] = f"{stop_comment}; would remove the config {path}"
        return ret
    try:
        __salt__["xen_config.remove_config"](path)
    except ERRORS as err:
        ret["result"] = False
        ret["comment"] = f"{stop_comment}; could not remove {path}: {err}"
        return ret
    ret["comment"] = f"{stop_comment}; removed the config {path}"
    return ret


def mod_watch(name, sfun=None, **kwargs):
    """
    Restart the guest when a watched state changed (``running`` only).

    A running guest is shut down (destroyed after ``shutdown_timeout``) and
    booted from its config again; an absent one is booted.
    """
    if sfun != "running":
        ret = _ret(name)
        ret["comment"] = f"Nothing to do on a watched change for xen_guest.{sfun}"
        return ret
    known = __salt__["xen_config.guest_setting_defaults"]()
    settings = {key: value for key, value in kwargs.items() if key in known}
    options = {
        "config_dir": kwargs.get("config_dir"),
        "toolstack": kwargs.get("toolstack"),
        "restart_on_change": kwargs.get("restart_on_change", False),
        "shutdown_timeout": kwargs.get("shutdown_timeout", 60),
    }
    return _apply_running(name, kwargs.get("kernel"), settings, options, force_restart=True)
