"""
xenconsoled logging every guest's console, for the boot checks of
``xen_guest.running``.

.. code-block:: yaml

    /var/log/xen/console:
      xen_console.logging:
        - settings_file: /etc/default/xen

The settings file gets ``XENCONSOLED_ARGS="--log=guest --log-dir=DIR"``
(its other arguments and every other line kept), and xenconsoled, alone, is
restarted only when the running daemon does not log there already: the
state converges on the daemon that runs, not on the file alone. The work is
done by the ``guest_console`` execution module.

The file is sourced by ``sh`` as root: a directory that would not reach
xenconsoled as one word (a blank, ``$``, a quote, a backslash, a glob...),
or an ``XENCONSOLED_ARGS`` line sh reads otherwise than as plain words, is
refused and nothing is written.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import console

__virtualname__ = "xen_console"


def __virtual__():
    if "guest_console.configure_logging" in __salt__:
        return __virtualname__
    return (False, "xen_console: the guest_console execution module is not loaded")


def logging(name, settings_file=console.SETTINGS_FILE):
    """
    xenconsoled logs each guest's console to ``name/guest-NAME.log``.

    name
        The log directory (Debian: ``/var/log/xen/console``).
    settings_file
        The file the Xen init script sources (Debian: ``/etc/default/xen``).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        outcome = __salt__["guest_console.configure_logging"](name, settings_file, test=test)
        running = __salt__["guest_console.daemon_logging"]()
        restart = running not in (None, name)
        if outcome["changed"]:
            ret["changes"]["settings"] = {"file": settings_file, "old": outcome["old"],
                                          "new": outcome["new"]}
        if restart:
            ret["changes"]["xenconsoled"] = {"old": running or "no guest logging",
                                             "new": name}
        if not ret["changes"]:
            where = "" if running else " (xenconsoled is not running: it will at its start)"
            ret["comment"] = f"xenconsoled logs guest consoles to {name}{where}"
            return ret
        steps = []
        if outcome["changed"]:
            steps.append(f"set {outcome['new']} in {settings_file}")
        if restart:
            steps.append("restart xenconsoled")
        if test:
            ret["result"] = None
            ret["comment"] = "Would " + " and ".join(steps)
            return ret
        if restart:
            __salt__["guest_console.restart_daemon"](name)
        done = " and ".join(steps).replace("set ", "Set ", 1).replace(
            "restart xenconsoled", "restarted xenconsoled")
        ret["comment"] = done[:1].upper() + done[1:]
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = str(err)
    return ret
