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

The guest's settings are those of ``xen_nfsroot_lib.guest_config.GUEST_SETTINGS`` (``memory``,
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

What is decided without the live system (the steps and the comments, the
fingerprint of a boot, the refusals) is :mod:`xen_nfsroot_lib.boot`; where
the guest runs across its dom0s, :mod:`xen_nfsroot_lib.placement`. This
module reads the dom0 (its config files, domains, console and the mine) and
acts.
"""

import inspect
import os
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import boot, console, files, guest_config, placement, trust, values
from xen_nfsroot_lib.boot import DEAD
from xen_nfsroot_lib.placement import RUNNING

__virtualname__ = "xen_guest"

ERRORS = (CommandExecutionError, SaltInvocationError, OSError)


def __virtual__():
    if "xm.create" in __salt__ and "xen_config.write_config" in __salt__:
        return __virtualname__
    return (False, "the xen_guest state needs the xm and xen_config execution modules "
                   "(xl or xm not installed)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _settings(arguments):
    """The guest settings among a state's keyword arguments; anything else
    that is not one of Salt's own keywords is an error naming it."""
    known = guest_config.setting_defaults()
    unknown = sorted(key for key in arguments if key not in known and not key.startswith("__"))
    if unknown:
        raise SaltInvocationError(
            f"{unknown[0]}: {arguments[unknown[0]]!r} is not a guest setting "
            f"(known: {', '.join(known)})")
    return {key: value for key, value in arguments.items() if key in known}


def _config_path(name, config_dir):
    arguments = {"config_dir": config_dir} if config_dir else {}
    return guest_config.config_path(name, **arguments)


def _read(path):
    data = files.read(path)
    return None if data is None else data.decode("utf-8", errors="replace")


def _prepare(name, kernel, config_dir, toolstack, settings):
    """Check every input, then render: returns (path, wanted text, current text or None).

    Nothing is started or written here; a bad value raises
    SaltInvocationError naming the field and the value.
    """
    path = _config_path(name, config_dir)
    # Validate the whole description before any process runs.
    guest_config.guest_settings(name, kernel, **settings)
    for field, value in (("kernel", kernel), ("ramdisk", settings.get("ramdisk"))):
        if value and not os.path.isfile(value):
            raise SaltInvocationError(f"{field}: {value!r} does not exist on this dom0")
    form = __salt__["xm.config_format"](toolstack)
    wanted = guest_config.render_config(name, kernel, form, **settings)
    return path, wanted, _read(path)


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
    elif domain_state in (*DEAD, boot.FAILED):
        __salt__["xm.destroy"](name, toolstack=toolstack)
    log = console.log_path(name, options["console_dir"])
    offset = __salt__["guest_console.size"](log)
    __salt__["xm.create"](path, toolstack=toolstack)
    return log, offset


def _look(name, kernel, settings, options):
    """(path, wanted, current text, domain state, failure record, fingerprint) or a failure."""
    try:
        path, wanted, current = _prepare(name, kernel, options["config_dir"],
                                         options["toolstack"], settings)
        domain_state = __salt__["xm.state"](name, toolstack=options["toolstack"])
        failure = __salt__["guest_console.last_failure"](name)
        if failure and "invalid" in failure and not __opts__["test"]:
            __salt__["guest_console.clear_failure"](name)
        fingerprint = boot.fingerprint(wanted, kernel, settings.get("ramdisk"))
    except ERRORS as err:
        return dict(_ret(name), result=False, comment=str(err))
    if domain_state == "dying":
        return dict(_ret(name), result=False,
                    comment=f"{name} is being destroyed by Xen: apply the state again later")
    return path, wanted, current, domain_state, failure, fingerprint


def _apply_running(name, kernel, settings, options, force_restart=False):
    """Shared by running and mod_watch; ``options`` holds the state's options
    (config_dir, toolstack, restart_on_change, shutdown_timeout and the boot
    checks'). A failure record the formula did not write is said and replaced."""
    looked = _look(name, kernel, settings, options)
    if isinstance(looked, dict):
        return looked
    options = dict(options, on_crash=settings.get("on_crash") or "destroy")
    ret = _running_here(name, (kernel, settings), looked, options, force_restart)
    ret["comment"] += boot.record_note(looked[4], __opts__["test"])
    return ret


def _running_here(name, guest, looked, options, force_restart):
    """A failed boot whose domain still runs stays failed until retry or a change."""
    kernel, settings = guest
    path, wanted, current, domain_state, failure, fingerprint = looked
    ret = _ret(name)
    kept = (failure or {}).get("domain_id")  # the failed domain, kept running
    if kept is not None and domain_state in RUNNING and kept == (__salt__["xm.list_domains"](
            toolstack=options["toolstack"]).get(name) or {}).get("id"):
        refusal = boot.failed_before(name, failure, fingerprint, options["retry"], True)
        if refusal:
            return dict(ret, result=False, comment=refusal)
        domain_state = boot.FAILED
    config = boot.config_change(path, current, wanted)
    ret["changes"], future, past, note = boot.plan(name, domain_state, config,
                                                   options["restart_on_change"], force_restart)
    elsewhere = _elsewhere(name, domain_state, options, "guest" in ret["changes"])
    if elsewhere is not None or not ret["changes"]:
        return _settled(name, elsewhere, (path, wanted, config, domain_state), ret)
    refused = _before_acting(name, (kernel, settings, fingerprint), options, ret)
    if refused:
        return refused
    kernel_note = ret.pop("kernel_note", "")
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "Would " + " and ".join(future) + note + kernel_note
        return ret
    try:
        started = _act(name, (path, wanted, domain_state), ret, options)
    except ERRORS as err:
        ret["result"] = False
        if "config" in ret["changes"] and _read(path) == wanted:
            ret["changes"].pop("guest", None)
            ret["comment"] = f"{boot.sentence(past[0])}, but: {err}"
        else:
            ret["changes"] = {}
            ret["comment"] = str(err)
        return ret
    ret["comment"] = boot.sentence(" and ".join(past) + note) + kernel_note
    if started is not None:
        _prove(name, started, options, ret, fingerprint)
    if options.get("other_dom0s") and "guest" in ret["changes"]:
        _publish(ret)
    return ret


# ---------------------------------------------------------------------------
# Never two instances: where the guest runs across its dom0s
# ---------------------------------------------------------------------------

def _where(name, others, toolstack=None):
    """Where ``name`` runs: this dom0's domain list and the mine's copies of
    the others' (:func:`xen_nfsroot_lib.placement.locate`; both read once
    per run)."""
    here = __salt__["xm.list_domains"](toolstack=toolstack)
    return placement.locate(name, here, others, __salt__["xm.mined_domains"](others))


def _elsewhere(name, domain_state, options, booting):
    """None when this dom0 may go on; else why not: a dict from :func:`_where`
    (runs on another dom0, on two, a migration's names, a silent dom0)."""
    others = options.get("other_dom0s") or []
    if not others:
        return None
    found = _where(name, others, options["toolstack"])
    return found if placement.blocks_boot(found, domain_state, booting) else None


def _settled(name, found, plan, ret):
    """The return when nothing is to be booted here: the guest runs here with
    its config, or runs (or may run) on another of its dom0s (``found``)."""
    path, wanted, config, domain_state = plan
    if found is None:
        shown = "running" if domain_state == "blocked" else domain_state
        ret["comment"] = f"{name} is {shown} with the config {path}"
        return ret
    ret["changes"] = {}
    refusal = placement.boot_refusal(name, found, __opts__["id"])
    if refusal:
        return dict(ret, result=False, comment=refusal)
    (there,) = found["there"]
    comment = f"{name} runs on {there}: not booted here"
    if config:
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"]["config"] = config
            ret["comment"] = f"{comment}; would {config['action'][:-1]} the config {path}"
            return ret
        try:
            __salt__["xen_config.write_config"](path, wanted)
        except ERRORS as err:
            return dict(ret, result=False, comment=f"{comment}; could not write {path}: {err}")
        ret["changes"]["config"] = config
        comment += f"; {config['action']} the config {path}"
    ret["comment"] = comment
    return ret


def _publish(ret):
    """The mine's copy of this dom0's domains, fresh after a change (the
    other dom0s read it before they boot)."""
    try:
        __salt__["mine.send"](placement.MINE_FUNCTION, fresh=True)
    except Exception as err:  # the change is made: say the mine is stale
        ret["comment"] += f" (the mine could not be updated: {err})"


# ---------------------------------------------------------------------------
# Proven boots: the kernel checked before, the NFS root seen after
# ---------------------------------------------------------------------------


def _kernel_verdict(kernel, settings):
    """guest_kernel.check for this guest (once per run for one kernel)."""
    kernel, ramdisk, dhcp, guest_type = boot.kernel_question(kernel, settings)
    return __salt__["guest_kernel.check"](kernel, ramdisk=ramdisk, dhcp=dhcp,
                                          guest_type=guest_type)


def _before_acting(name, guest, options, ret):
    """A boot that failed before with the same config and kernel is not tried
    again (unless retry); a kernel that cannot mount an NFS root is refused.
    guest: (kernel, settings, fingerprint). Returns the failed return, or
    None to go on (ret["kernel_note"] set)."""
    kernel, settings, fingerprint = guest
    booting = "guest" in ret["changes"]
    failure = __salt__["guest_console.last_failure"](name) if booting else None
    refusal = boot.failed_before(name, failure, fingerprint, options["retry"])
    if refusal:
        return dict(ret, changes={}, result=False, comment=refusal)
    ret["kernel_note"] = ""
    if not options["check_kernel"] or not settings.get("nfs_root"):
        return None
    verdict = _kernel_verdict(kernel, settings)
    refusal = boot.kernel_refusal(name, kernel, verdict)
    if refusal:
        ret.pop("kernel_note")
        return dict(ret, changes={}, result=False, comment=refusal)
    ret["kernel_note"] = boot.kernel_note(verdict)
    return None


def _after_failure(name, options, guest, ret):
    """Destroy a failed boot's domain still up, unless on_crash: preserve; the id of one kept."""
    domain = __salt__["xm.list_domains"](toolstack=options["toolstack"], fresh=True).get(name)
    if not domain or domain["state"] not in RUNNING:
        return None
    error = None
    if options["on_crash"] != "preserve":
        try:
            __salt__["xm.destroy"](name, toolstack=options["toolstack"])
            guest["destroyed"] = True
        except ERRORS as err:
            error = err
    ret["comment"] += boot.failed_domain(name, options["on_crash"], error)
    return None if guest.get("destroyed") else domain["id"]


def _prove(name, started, options, ret, fingerprint):
    """Watch the boot: its console's evidence or failure into ret."""
    if not options["boot_timeout"]:
        ret["comment"] += " (not watched: boot_timeout is 0)"
        return
    log, offset = started
    guest = ret["changes"]["guest"]
    try:
        seen = __salt__["guest_console.watch"](
            name, log, offset, timeout=options["boot_timeout"], marker=options["boot_marker"],
            toolstack=options["toolstack"])
    except ERRORS as err:
        ret.update(result=False, comment=f"{ret['comment']}, but its boot could not be watched: "
                                         f"{err}")
        return
    failure, told = boot.proof(seen, log)
    ret["comment"] += told
    if failure:
        ret["result"] = False
        guest["new"] = "failed"
        guest["failure"] = failure
        kept = _after_failure(name, options, guest, ret)
        __salt__["guest_console.record_failure"](name, fingerprint, failure, domain_id=kept)
        return
    __salt__["guest_console.clear_failure"](name)
    if seen["verdict"] == "mounted":
        guest["evidence"] = seen["evidence"]


def running(  # noqa: PLR0913,PLR0917 (Salt calls states with keywords)
    name, kernel, config_dir=None, toolstack=None, restart_on_change=False,
    shutdown_timeout=60, check_kernel=True, boot_timeout=None, boot_marker=None,
    console_dir=None, retry=False, other_dom0s=None, **settings,
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
        First check that the kernel (or its initramfs) can mount an NFS root
        (``guest_kernel.check``): a missing piece fails the state naming it; a
        kernel whose config is not found is not checked, as the comment says.
    boot_timeout
        Seconds a boot is watched (default 120; 0: not watched): the state
        fails when the domain crashes, shuts down or vanishes, or its console
        shows a failure (quoted); it succeeds with the console line that shows
        the root mounted over NFS (or ``boot_marker``).
    boot_marker
        A regular expression the guest's console prints once it runs from its
        root: then the proof of the boot.
    console_dir
        Where xenconsoled logs guest consoles (default ``/var/log/xen/console``).
    retry
        Boot a guest whose last boot with this config and kernel failed
        (otherwise every run reports the failure until its config, kernel or
        export changes). A failed boot's domain still up is destroyed, or,
        with ``on_crash: preserve``, destroyed only to boot it again.
    other_dom0s
        The guest's other dom0s (minion ids): it is booted here only when
        their ``xm.list_domains`` in the mine shows it on none of them (on
        one: ``result: True``, no boot, the config still written; here and
        there, or ``NAME--incoming``/``NAME--migratedaway`` anywhere, or a
        dom0 missing from the mine: ``result: False``, nothing changed).
        After a boot or restart this dom0's mine entry is sent again.
    settings
        The guest's settings (see the module's docstring and
        ``xen_nfsroot_lib.guest_config.GUEST_SETTINGS``); ``on_crash:
        preserve`` keeps a crashed guest, or one whose boot failed, up.
    """
    options = {key: value for key, value in locals().items() if key in _OPTIONS}
    try:
        settings = _settings(settings)
        options = boot.check_options(options, __opts__.get("id"))
    except SaltInvocationError as err:
        return dict(_ret(name), result=False, comment=str(err))
    return _apply_running(name, kernel, settings, options)


_OPTIONS = ("config_dir", "toolstack", "restart_on_change", "shutdown_timeout", "check_kernel",
            "boot_timeout", "boot_marker", "console_dir", "retry", "other_dom0s")


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
    config = boot.config_change(path, current, wanted)
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


def _failed(ret, err):
    ret.update(result=False, comment=str(err))
    return False


def _apply_stopped(name, timeout, toolstack, ret):
    """Stop the domain into ``ret``; returns False on error (ret filled in)."""
    try:
        values.check_domain_name(name)
        domain_state = __salt__["xm.state"](name, toolstack=toolstack)
    except ERRORS as err:
        return _failed(ret, err)
    if domain_state == "absent":
        ret["comment"] = f"{name} is not running"
        return True
    ret["changes"]["guest"] = {"old": domain_state, "new": "absent"}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = boot.stop_prediction(name, domain_state, timeout)
        return True
    try:
        destroyed = _stop(name, timeout, toolstack, domain_state)
    except ERRORS as err:
        ret["changes"] = {}
        return _failed(ret, err)
    if destroyed:
        ret["changes"]["guest"]["destroyed"] = True
    ret["comment"] = boot.stop_comment(name, domain_state, timeout, destroyed)
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
    known = guest_config.setting_defaults()
    settings = {key: value for key, value in kwargs.items() if key in known}
    defaults = inspect.signature(running).parameters
    options = {key: kwargs.get(key, defaults[key].default) for key in _OPTIONS}
    try:
        options = boot.check_options(options, __opts__.get("id"))
    except SaltInvocationError as err:
        return dict(_ret(name), result=False, comment=str(err))
    return _apply_running(name, kwargs.get("kernel"), settings, options, force_restart=True)


# ---------------------------------------------------------------------------
# Live migration
# ---------------------------------------------------------------------------


def _before_migrating(name, to, dom0s, toolstack, ret):
    """The return of a migration that must not (or need not) start, or None.
    dom0s: (every dom0 of the guest, the others than this one)."""
    every, others = dom0s
    others = list(others or [to])
    try:
        found = _where(name, others, toolstack)
    except ERRORS as err:
        return dict(ret, result=False, comment=str(err))
    if not found["here"] and found["there"] == [to] and not found["transient"]:
        return dict(ret, comment=f"{name} already runs on {to}")
    refusal = placement.migration_refusal(name, to, every, found, __opts__["id"])
    if refusal:
        return dict(ret, result=False, comment=refusal + ": nothing moved")
    return None


def migrated(  # noqa: PLR0913,PLR0917 (Salt calls states with keywords)
    name, to, address=None, dom0s=None, other_dom0s=None, toolstack=None, timeout=None,
    ssh_command=None,
):
    """
    Move the running guest live from this dom0 to the dom0 ``to``
    (``xl migrate``; its NFS root stays mounted: same server, same export).

    Checked before anything moves: ``to`` is one of ``dom0s``, the guest runs
    here, once (not on any of ``other_dom0s`` by the mine, no ``NAME--incoming``
    or ``NAME--migratedaway`` anywhere). After: neither ``NAME`` nor
    ``NAME--migratedaway`` is left here, and the mine is sent again. A guest
    that already runs on ``to`` (and not here) is the state already reached.

    name
        The guest (domain) name.
    to
        The target dom0's minion id.
    address
        Where ``to`` is reached (default: ``to``).
    dom0s
        Every dom0 of the guest (``to`` must be one).
    other_dom0s
        The guest's dom0s other than this one (``to`` included), asked
        through the mine.
    toolstack
        ``auto`` (default), ``xl`` or ``xm``.
    timeout
        Whole seconds, 1 to 86400 (a day), before the migration is
        abandoned (default: none).
    ssh_command
        The ssh command xl runs (default: ``trust.ssh_command()``, the
        formula's migration key and known hosts).

    Every argument is checked first (``placement.check_migration``): the
    lists are lists of minion ids (never a string), the host xl reaches is
    one word for sh and ssh (no IPv6 zone id); otherwise the state fails
    and nothing is asked or run.
    """
    ret = _ret(name)
    try:  # every argument, before anything is asked or run
        values.check_domain_name(name)
        checked = placement.check_migration(to, address, dom0s, other_dom0s, timeout,
                                            ssh_command)
    except SaltInvocationError as err:
        return dict(ret, result=False, comment=f"{err}: nothing moved")
    to, host, timeout = checked["to"], checked["host"], checked["timeout"]
    early = _before_migrating(name, to, (checked["dom0s"], checked["other_dom0s"]),
                              toolstack, ret)
    if early is not None:
        return early
    ret["changes"] = {"guest": {"old": __opts__["id"], "new": to}}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Would migrate {name} live to {to} ({host})"
        return ret
    try:
        if ssh_command is None:
            ssh_command = trust.ssh_command()
        start = time.monotonic()
        __salt__["xm.migrate"](name, host, ssh_command=ssh_command, timeout=timeout,
                               toolstack=toolstack)
    except ERRORS as err:
        ret["changes"] = {}
        ret["result"] = False
        left = _leftovers(name, toolstack)
        ret["comment"] = f"The migration of {name} to {to} failed: {err}" + (
            f"; left on this dom0: {', '.join(left)} (not destroyed: see which instance runs)"
            if left else "")
        _publish(ret)
        return ret
    seconds = round(time.monotonic() - start, 1)
    ret["changes"]["seconds"] = seconds
    left = _leftovers(name, toolstack)
    _publish(ret)
    if left:
        ret["result"] = False
        ret["comment"] = (f"xl migrate of {name} to {to} returned after {seconds} s, but this "
                          f"dom0 still has {', '.join(left)}: not destroyed")
        return ret
    ret["comment"] = f"Migrated {name} live to {to} ({host}) in {seconds} s" + ret["comment"]
    return ret


def _leftovers(name, toolstack):
    listing = __salt__["xm.list_domains"](toolstack=toolstack, fresh=True)
    return [n for n in (name, name + "--migratedaway") if n in listing]


def received(name, source=None, other_dom0s=None, toolstack=None):
    """
    The guest arrived here by a migration and runs under its own name: no
    ``NAME--incoming`` left, and it runs on none of ``other_dom0s`` by the
    mine (sent again by each dom0 after its migration). Changes nothing; the
    mine's copy of this dom0 is sent again. ``source`` (the dom0 it came
    from) is a minion id and ``other_dom0s`` a list of them (a string is
    refused, never read character by character).
    """
    ret = _ret(name)
    try:
        values.check_domain_name(name)
        if source is not None:
            placement.check_dom0(source, "source")
        others = placement.check_dom0s(other_dom0s, "other_dom0s") or []
        listing = __salt__["xm.list_domains"](toolstack=toolstack, fresh=True)
        found = _where(name, [o for o in others if o != __opts__["id"]], toolstack)
    except ERRORS as err:
        return dict(ret, result=False, comment=str(err))
    domain = listing.get(name)
    if found["transient"]:
        return dict(ret, result=False, comment=(
            f"{name} is not settled here: {placement.transient_text(found['transient'])}"))
    if not isinstance(domain, dict) or domain.get("state") not in RUNNING:
        state = domain.get("state") if isinstance(domain, dict) else "absent"
        return dict(ret, result=False, comment=f"{name} does not run on this dom0 ({state})")
    if found["there"]:
        return dict(ret, result=False, comment=(
            f"{name} runs here and on {' and '.join(found['there'])}"))
    ret["comment"] = f"{name} runs on this dom0 ({__opts__['id']})" + (
        f", arrived from {source}" if source else "")
    if not __opts__["test"]:
        _publish(ret)
    return ret
