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

The config goes to ``<config_dir>/<name>.cfg`` (``/etc/xen`` by default) in the
format of the toolstack in use (see the ``xm`` execution module): for xl the
kernel command line ``ip=... nfsroot=...`` is synthesized into ``extra``,
since xl ignores xm's NFS keys.

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


def __virtual__():
    if "xm.create" in __salt__:
        return __virtualname__
    return (False, "the xen_guest state needs the xm execution module (xl or xm not installed)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _diff(path, old, new):
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), path, path
        )
    )


def _prepare(name, kernel, config_dir, toolstack, guest):
    """Check every input, then render: returns (path, wanted text, current text or None).

    Nothing is started or written here; a bad value raises
    SaltInvocationError naming the field and the value.
    """
    path = __salt__["xm.config_path"](name, config_dir)
    # Validate the whole description before any process runs.
    __salt__["xm.guest_config"](name, kernel, toolstack="xl", **guest)
    for field, value in (("kernel", kernel), ("ramdisk", guest.get("ramdisk"))):
        if value and not os.path.isfile(value):
            raise SaltInvocationError(f"{field}: {value!r} does not exist on this dom0")
    wanted = __salt__["xm.render_config"](name, kernel, toolstack=toolstack, **guest)
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


def _sentence(text):
    return text[:1].upper() + text[1:]


def _apply_running(name, kernel, guest, options, force_restart=False):
    """Shared by running and mod_watch; ``options`` holds config_dir, toolstack,
    restart_on_change and shutdown_timeout."""
    config_dir = options["config_dir"]
    toolstack = options["toolstack"]
    restart_on_change = options["restart_on_change"]
    shutdown_timeout = options["shutdown_timeout"]
    ret = _ret(name)
    try:
        path, wanted, current = _prepare(name, kernel, config_dir, toolstack, guest)
        domain_state = __salt__["xm.state"](name, toolstack=toolstack)
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if domain_state == "dying":
        ret["result"] = False
        ret["comment"] = f"{name} is being destroyed by Xen: apply the state again later"
        return ret

    config = _config_change(path, current, wanted)
    live = domain_state in LIVE
    restart = live and (force_restart or (config is not None and restart_on_change))
    boot = not live
    if config:
        ret["changes"]["config"] = config
    if boot:
        ret["changes"]["guest"] = {"old": domain_state, "new": "running"}
    elif restart:
        ret["changes"]["guest"] = {"old": domain_state, "new": "restarted"}

    verb_config = {"created": "create", "updated": "update"}.get(config and config["action"])
    if not ret["changes"]:
        shown = "running" if domain_state == "blocked" else domain_state
        ret["comment"] = f"{name} is {shown} with the config {path}"
        return ret

    steps_future = []
    steps_past = []
    if config:
        steps_future.append(f"{verb_config} the config {path}")
        steps_past.append(f"{config['action']} the config {path}")
    if boot and domain_state in DEAD:
        steps_future.append(f"destroy the {domain_state} domain {name} and boot it again")
        steps_past.append(f"destroyed the {domain_state} domain {name} and booted it again")
    elif boot:
        steps_future.append(f"boot {name}")
        steps_past.append(f"booted {name}")
    elif restart:
        steps_future.append(f"restart {name}")
        steps_past.append(f"restarted {name}")
    note = ""
    if config and live and not restart:
        note = (
            f"; {name} keeps running with its previous configuration until it is "
            "restarted (restart_on_change is False)"
        )

    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "Would " + " and ".join(steps_future) + note
        return ret

    written = False
    try:
        if config:
            __salt__["xm.write_config"](path, wanted)
            written = True
        if restart:
            if _stop(name, shutdown_timeout, toolstack, domain_state):
                ret["changes"]["guest"]["destroyed"] = True
            __salt__["xm.create"](path, toolstack=toolstack)
        elif boot:
            if domain_state in DEAD:
                __salt__["xm.destroy"](name, toolstack=toolstack)
            __salt__["xm.create"](path, toolstack=toolstack)
    except (CommandExecutionError, SaltInvocationError, OSError) as err:
        ret["result"] = False
        if written:
            ret["changes"].pop("guest", None)
            ret["comment"] = f"{_sentence(steps_past[0])}, but: {err}"
        else:
            ret["changes"] = {}
            ret["comment"] = str(err)
        return ret
    ret["comment"] = _sentence(" and ".join(steps_past) + note)
    return ret


def running(  # noqa: PLR0917
    name,
    kernel,
    memory=256,
    ramdisk=None,
    network=None,
    dhcp=None,
    vif=None,
    nfs_server=None,
    nfs_root=None,
    root="/dev/nfs",
    extra=None,
    vcpus=None,
    nfs_options=None,
    guest_type="pv",
    config_dir="/etc/xen",
    toolstack=None,
    restart_on_change=False,
    shutdown_timeout=60,
):
    """
    The guest's config file is as wanted and the guest is running.

    name
        Domain name (Xen's rule: letters, digits, ``_ . : + -``); the config is
        ``<config_dir>/<name>.cfg``.
    kernel / ramdisk
        Absolute paths on this dom0; they must exist.
    memory
        MiB, a positive integer (default 256). ``vcpus``: optional count.
    network
        ``dhcp`` (default), ``off``, or ``{address, netmask, gateway, hostname,
        interface}``. The seed's ``dhcp: dhcp``/``off`` is accepted too.
    vif
        List of interface specs (default ``['']``: one interface, defaults).
    nfs_server / nfs_root / nfs_options
        The NFS root: server address, absolute export path, mount options
        (xl default ``vers=3``; xm: none unless given).
    root / extra
        ``root`` defaults to ``/dev/nfs``; ``extra`` is appended to the
        synthesized command line.
    guest_type
        ``pv`` (default) or ``pvh`` (xl only).
    config_dir
        Where the config lives (default ``/etc/xen``).
    toolstack
        ``auto`` (default: detected/configured), ``xl`` or ``xm``.
    restart_on_change
        Restart a running guest whose config changed (default False).
    shutdown_timeout
        Seconds a restart waits for the graceful shutdown before destroying.
    """
    guest = {
        "memory": memory, "ramdisk": ramdisk, "network": network, "dhcp": dhcp, "vif": vif,
        "nfs_server": nfs_server, "nfs_root": nfs_root, "root": root, "extra": extra,
        "vcpus": vcpus, "nfs_options": nfs_options, "guest_type": guest_type,
    }
    options = {"config_dir": config_dir, "toolstack": toolstack,
               "restart_on_change": restart_on_change, "shutdown_timeout": shutdown_timeout}
    return _apply_running(name, kernel, guest, options)


def configured(  # noqa: PLR0917
    name,
    kernel,
    memory=256,
    ramdisk=None,
    network=None,
    dhcp=None,
    vif=None,
    nfs_server=None,
    nfs_root=None,
    root="/dev/nfs",
    extra=None,
    vcpus=None,
    nfs_options=None,
    guest_type="pv",
    config_dir="/etc/xen",
    toolstack=None,
):
    """
    The guest's config file is as wanted; the domain is neither started nor stopped.

    Arguments as for :func:`running`.
    """
    guest = {
        "memory": memory, "ramdisk": ramdisk, "network": network, "dhcp": dhcp, "vif": vif,
        "nfs_server": nfs_server, "nfs_root": nfs_root, "root": root, "extra": extra,
        "vcpus": vcpus, "nfs_options": nfs_options, "guest_type": guest_type,
    }
    ret = _ret(name)
    try:
        path, wanted, current = _prepare(name, kernel, config_dir, toolstack, guest)
    except (CommandExecutionError, SaltInvocationError) as err:
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
        __salt__["xm.write_config"](path, wanted)
    except (CommandExecutionError, SaltInvocationError, OSError) as err:
        ret["result"] = False
        ret["comment"] = f"Could not write {path}: {err}"
        return ret
    ret["comment"] = f"{config['action'].capitalize()} the config {path}"
    return ret


def _apply_stopped(name, timeout, toolstack, ret):
    """Stop the domain into ``ret``; returns False on error (ret filled in)."""
    try:
        __salt__["xm.check_name"](name)
        domain_state = __salt__["xm.state"](name, toolstack=toolstack)
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return False
    if domain_state == "absent":
        ret["comment"] = f"{name} is not running"
        return True
    ret["changes"]["guest"] = {"old": domain_state, "new": "absent"}
    if __opts__["test"]:
        ret["result"] = None
        if domain_state in LIVE and domain_state != "paused":
            ret["comment"] = (
                f"Would shut down {name} (destroying it if still up after {timeout} s)"
            )
        else:
            ret["comment"] = f"Would destroy the {domain_state} domain {name}"
        return True
    try:
        destroyed = _stop(name, timeout, toolstack, domain_state)
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = str(err)
        return False
    if destroyed:
        ret["changes"]["guest"]["destroyed"] = True
        if domain_state in LIVE and domain_state != "paused":
            ret["comment"] = f"{name} did not shut down within {timeout} s: destroyed it"
        else:
            ret["comment"] = f"Destroyed the {domain_state} domain {name}"
    else:
        ret["comment"] = f"Shut down {name}"
    return True


def stopped(name, timeout=60, toolstack=None):
    """
    The guest is not running: graceful shutdown, destroyed if still up after ``timeout`` s.

    A domain already shut down or crashed (kept by Xen) is destroyed.
    """
    ret = _ret(name)
    _apply_stopped(name, timeout, toolstack, ret)
    return ret


def absent(name, config_dir="/etc/xen", timeout=60, toolstack=None):
    """
    The guest is stopped (as :func:`stopped`) and its config file removed.
    """
    ret = _ret(name)
    try:
        path = __salt__["xm.config_path"](name, config_dir)
    except (CommandExecutionError, SaltInvocationError) as err:
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
        __salt__["xm.remove_config"](path)
    except OSError as err:
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
    guest_keys = ("memory", "ramdisk", "network", "dhcp", "vif", "nfs_server", "nfs_root",
                  "root", "extra", "vcpus", "nfs_options", "guest_type")
    defaults = {"memory": 256, "root": "/dev/nfs", "guest_type": "pv"}
    guest = {key: kwargs.get(key, defaults.get(key)) for key in guest_keys}
    options = {
        "config_dir": kwargs.get("config_dir", "/etc/xen"),
        "toolstack": kwargs.get("toolstack"),
        "restart_on_change": kwargs.get("restart_on_change", False),
        "shutdown_timeout": kwargs.get("shutdown_timeout", 60),
    }
    return _apply_running(name, kwargs.get("kernel"), guest, options, force_restart=True)
