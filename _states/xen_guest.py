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
import hashlib
import inspect
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
    the config's path, its wanted text and the domain's state. Returns where
    the boot's console output starts: (log, offset), or None without a boot."""
    path, wanted, domain_state = plan
    toolstack = options["toolstack"]
    if "config" in ret["changes"]:
        __salt__["xen_config.write_config"](path, wanted)
    guest = ret["changes"].get("guest")
    if not guest:
        return None
    if guest["new"] == "restarted":
        if _stop(name, options["shutdown_timeout"], toolstack, domain_state):
            guest["destroyed"] = True
    elif domain_state in DEAD:
        __salt__["xm.destroy"](name, toolstack=toolstack)
    log = __salt__["guest_console.log_path"](name, options["console_dir"])
    offset = __salt__["guest_console.size"](log)
    __salt__["xm.create"](path, toolstack=toolstack)
    return log, offset


def _look(name, kernel, settings, options):
    """(path, wanted text, current text, domain state), or a failed return."""
    try:
        path, wanted, current = _prepare(name, kernel, options["config_dir"],
                                         options["toolstack"], settings)
        domain_state = __salt__["xm.state"](name, toolstack=options["toolstack"])
    except ERRORS as err:
        return dict(_ret(name), result=False, comment=str(err))
    if domain_state == "dying":
        return dict(_ret(name), result=False,
                    comment=f"{name} is being destroyed by Xen: apply the state again later")
    return path, wanted, current, domain_state


def _apply_running(name, kernel, settings, options, force_restart=False):
    """Shared by running and mod_watch; ``options`` holds the state's options
    (config_dir, toolstack, restart_on_change, shutdown_timeout and the boot
    checks')."""
    looked = _look(name, kernel, settings, options)
    if isinstance(looked, dict):
        return looked
    path, wanted, current, domain_state = looked
    ret = _ret(name)
    config = _config_change(path, current, wanted)
    ret["changes"], future, past, note = _plan(name, domain_state, config, options,
                                               force_restart)
    if not ret["changes"]:
        shown = "running" if domain_state == "blocked" else domain_state
        ret["comment"] = f"{name} is {shown} with the config {path}"
        return ret
    fingerprint = _fingerprint(wanted, kernel, settings.get("ramdisk"))
    refused = _before_acting(name, (kernel, settings, fingerprint), options, ret)
    if refused:
        return refused
    kernel_note = ret.pop("kernel_note", "")
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "Would " + " and ".join(future) + note + kernel_note
        return ret
    try:
        console = _act(name, (path, wanted, domain_state), ret, options)
    except ERRORS as err:
        ret["result"] = False
        if "config" in ret["changes"] and _read(path) == wanted:
            ret["changes"].pop("guest", None)
            ret["comment"] = f"{_sentence(past[0])}, but: {err}"
        else:
            ret["changes"] = {}
            ret["comment"] = str(err)
        return ret
    ret["comment"] = _sentence(" and ".join(past) + note) + kernel_note
    if console is not None:
        _prove(name, console, options, ret, fingerprint)
    return ret


# ---------------------------------------------------------------------------
# Proven boots: the kernel checked before, the NFS root seen after
# ---------------------------------------------------------------------------


def _fingerprint(wanted, kernel, ramdisk):
    """What a boot depends on: the config's text and the kernel's and
    ramdisk's files (path, size, mtime)."""
    digest = hashlib.sha256(wanted.encode("utf-8"))
    for path in (kernel, ramdisk):
        if path:
            info = os.stat(path)
            digest.update(f"\0{path}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.hexdigest()


def _kernel_verdict(kernel, settings):
    """guest_kernel.check for this guest, once per run for one kernel."""
    network = settings.get("network")
    dhcp = network == "dhcp" or (network is None and settings.get("dhcp") != "off") or (
        isinstance(network, dict) and bool(network.get("dhcp")))
    key = ("xen_guest.kernel", kernel, settings.get("ramdisk"), dhcp,
           settings.get("guest_type") or "pv")
    if key not in __context__:
        __context__[key] = __salt__["guest_kernel.check"](
            kernel, ramdisk=settings.get("ramdisk"), dhcp=dhcp, guest_type=key[4])
    return __context__[key]


def _before_acting(name, guest, options, ret):
    """A boot that failed before with the same config and kernel is not tried
    again (unless retry); a kernel that cannot mount an NFS root is refused.
    guest: (kernel, settings, fingerprint). Returns the failed return, or
    None to go on (ret["kernel_note"] set)."""
    kernel, settings, fingerprint = guest
    booting = "guest" in ret["changes"]
    failure = __salt__["guest_console.last_failure"](name) if booting else None
    if failure and failure.get("fingerprint") == fingerprint and not options["retry"]:
        return dict(ret, changes={}, result=False, comment=(
            f"{name} failed to boot with this config and kernel ({failure['time']}): "
            f"{failure['comment']}. Not booting it again until its config, kernel or export "
            "changes (or retry: True)"))
    ret["kernel_note"] = ""
    if not options["check_kernel"] or not settings.get("nfs_root"):
        return None
    verdict = _kernel_verdict(kernel, settings)
    if verdict["checked"] and verdict["ok"] is False:
        ret.pop("kernel_note")
        return dict(ret, changes={}, result=False, comment=(
            f"The kernel {kernel} of {name} cannot mount an NFS root: "
            + "; ".join(verdict["problems"])))
    if not verdict["checked"]:
        ret["kernel_note"] = f" ({verdict['reason']})"
    return None


def _prove(name, console, options, ret, fingerprint):
    """Watch the boot: its console's evidence or failure into ret."""
    if not options["boot_timeout"]:
        ret["comment"] += " (not watched: boot_timeout is 0)"
        return
    log, offset = console
    seen = __salt__["guest_console.watch"](
        name, log, offset, timeout=options["boot_timeout"], marker=options["boot_marker"],
        toolstack=options["toolstack"])
    guest = ret["changes"]["guest"]
    if seen["verdict"] == "failed":
        lines = " | ".join(seen["lines"])
        reason = f"{seen['evidence']} after {seen['seconds']} s (console {log}: {lines})"
        ret["result"] = False
        guest["new"] = "failed"
        guest["failure"] = reason
        ret["comment"] += f", but it failed to come up on its NFS root: {reason}"
        __salt__["guest_console.record_failure"](name, fingerprint, reason)
        return
    __salt__["guest_console.clear_failure"](name)
    if seen["verdict"] == "mounted":
        guest["evidence"] = seen["evidence"]
        ret["comment"] += (f"; its console shows it on its NFS root after {seen['seconds']} s: "
                           f"{seen['evidence']}")
    elif seen["verdict"] == "alive":
        ret["comment"] += (f"; it still runs after {seen['seconds']} s but its console "
                           f"({log}) has not shown its root mounted")
    else:
        ret["comment"] += (f"; it still runs after {seen['seconds']} s; the root mount was not "
                           f"seen (no console log {log}: is xenconsoled logging guests?)")


def running(  # noqa: PLR0913,PLR0917 (Salt calls states with keywords)
    name, kernel, config_dir=None, toolstack=None, restart_on_change=False,
    shutdown_timeout=60, check_kernel=True, boot_timeout=None, boot_marker=None,
    console_dir=None, retry=False, **settings,
):
    """
    The guest's config file is as wanted and the guest is running, on its
    NFS root: its kernel is checked before it is booted, its console watched
    after.

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
    check_kernel
        Before writing or booting anything, check that the kernel (or its
        initramfs) can mount an NFS root (``guest_kernel.check``): a missing
        piece fails the state naming it; a kernel whose config cannot be
        found is not checked, and the comment says why. Default True.
    boot_timeout
        Seconds a boot is watched (default 120; 0: not watched): the state
        fails when the domain crashes, shuts down or vanishes, or its console
        shows a failure (kernel panic, the root not mounted, the NFS mount
        failing), quoting the console; it succeeds with the console line that
        shows the root mounted over NFS (or ``boot_marker``).
    boot_marker
        A regular expression the guest's console prints once it runs from its
        root: then the proof of the boot.
    console_dir
        Where xenconsoled logs guest consoles (default ``/var/log/xen/console``).
    retry
        Boot a guest whose last boot with this config and kernel failed
        (otherwise such a guest is not booted again until its config, kernel
        or export changes: the state reports the last failure).
    settings
        The guest's settings (``memory``, ``vcpus``, ``ramdisk``, ``network``:
        ``dhcp`` (default), ``off`` or ``{address, netmask, gateway, hostname,
        interface}``, the seed's ``dhcp``, ``vif``, ``nfs_server``,
        ``nfs_root``, ``nfs_options`` (default ``vers=3``), ``root`` (default
        ``/dev/nfs``), ``extra``, ``guest_type`` (``pv`` or ``pvh``),
        ``on_crash`` (``preserve`` keeps a crashed guest for inspection));
        see ``xen_config.GUEST_SETTINGS``.
    """
    options = {key: value for key, value in locals().items() if key in _OPTIONS}
    try:
        settings = _settings(settings)
        options = _checked_options(options)
    except SaltInvocationError as err:
        return dict(_ret(name), result=False, comment=str(err))
    return _apply_running(name, kernel, settings, options)


_OPTIONS = ("config_dir", "toolstack", "restart_on_change", "shutdown_timeout", "check_kernel",
            "boot_timeout", "boot_marker", "console_dir", "retry")


def _checked_options(options):
    options = dict(options)
    if options["boot_timeout"] is None:
        options["boot_timeout"] = __salt__["guest_console.watch_default"]()
    options["boot_timeout"] = __salt__["guest_console.check_boot_timeout"](
        options["boot_timeout"])
    options["boot_marker"] = __salt__["guest_console.check_boot_marker"](options["boot_marker"])
    if options["console_dir"] is not None:
        __salt__["guest_console.check_console_dir"](options["console_dir"])
    return options


def configured(name, kernel, config_dir=None, toolstack=None, check_kernel=True, **settings):
    """
    The guest's config file is as wanted; the domain is neither started nor
    stopped. The kernel is checked before the config is written, as for
    :func:`running`.

    Arguments as for :func:`running`.
    """
    ret = _ret(name)
    try:
        settings = _settings(settings)
        path, wanted, current = _prepare(name, kernel, config_dir, toolstack, settings)
    except ERRORS as err:
        return dict(ret, result=False, comment=str(err))
    config = _config_change(path, current, wanted)
    if not config:
        ret["comment"] = f"The config {path} of {name} is up to date"
        return ret
    ret["changes"]["config"] = config
    refused = _before_acting(name, (kernel, settings, None), {"check_kernel": check_kernel,
                                                            "retry": True}, ret)
    if refused:
        return refused
    kernel_note = ret.pop("kernel_note", "")
    verb = {"created": "create", "updated": "update"}[config["action"]]
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Would {verb} the config {path}{kernel_note}"
        return ret
    try:
        __salt__["xen_config.write_config"](path, wanted)
    except ERRORS as err:
        return dict(ret, changes={}, result=False, comment=f"Could not write {path}: {err}")
    ret["comment"] = f"{config['action'].capitalize()} the config {path}{kernel_note}"
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
    defaults = inspect.signature(running).parameters
    options = {key: kwargs.get(key, defaults[key].default) for key in _OPTIONS}
    try:
        options = _checked_options(options)
    except SaltInvocationError as err:
        return dict(_ret(name), result=False, comment=str(err))
    return _apply_running(name, kwargs.get("kernel"), settings, options, force_restart=True)
