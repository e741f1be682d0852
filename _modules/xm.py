"""
The Xen toolstack (``xl`` or the old ``xm``) behind one interface: which one
answers, the domains it runs, and their control.

Domain control (list, create, shut down, destroy, reboot, migrate) runs the
toolstack's own command with an argument list, never through a shell; a
non-zero exit raises :class:`CommandExecutionError` carrying the tool's
message. Guest config files (both formats) belong to ``xen_config``; the
parsers of the listings and the checks of a migration's target are pure code
in :mod:`xen_nfsroot_lib.toolstack`.

Choice of listing: one run lists the domains once (``xl list`` or ``xm list``,
cached in ``__context__``). The plain listing is used because it is the only
one that shows a domain's state; ``xl list -l`` shows the running kernel and
command line but no state, so it is only spawned when ``list_domains`` is
asked for ``details``. A boot, shutdown, destroy or migration marks the
domains it touched (and Domain-0, whose memory may change) stale in the
cached listing: asking about one of them lists again, asking about another
guest does not.

Toolstack selection: ``auto`` (default) takes the installed toolstack that
answers, ``xl`` when both do; ``xl`` installed without a running hypervisor
(it prints an error and exits 1) counts as unusable. A state passes the
guest's own ``toolstack``; otherwise the minion config
``xen_nfsroot.toolstack`` (or ``xm.toolstack``) decides: ``auto``, ``xl`` or
``xm``.
"""

import copy
import os

import salt.utils.path
from salt.exceptions import CommandExecutionError

from xen_nfsroot_lib import placement, values
from xen_nfsroot_lib.toolstack import (
    TOOLSTACKS,
    check_migrate_host,
    check_seconds,
    check_ssh_command,
    parse_list,
    parse_xl_list_long,
    toolstack_choice,
)

__virtualname__ = "xm"

LISTING_KEY = "xm.listing"
TOOLSTACK_KEY = "xm.toolstack"


def __virtual__():
    if salt.utils.path.which("xl") or salt.utils.path.which("xm"):
        return __virtualname__
    return (False, "the xm module needs a Xen toolstack: neither xl nor xm is installed")


# ---------------------------------------------------------------------------
# Toolstack selection and the cached listing
# ---------------------------------------------------------------------------


def _nested(data, *keys):
    """data[k1][k2]..., or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _configured_toolstack():
    for key in ("xen_nfsroot.toolstack", "xm.toolstack"):
        if __opts__.get(key) is not None:
            return toolstack_choice(__opts__[key], f"minion config {key}")
    # Plain lookups: this runs for every guest of a run, and Salt's
    # traverse_dict_and_list costs more than the rest of it on __opts__.
    nested = _nested(__opts__, "xen_nfsroot", "toolstack")
    if nested is not None:
        return toolstack_choice(nested, "minion config xen_nfsroot:toolstack")
    return "auto"


def _run(tool, args, timeout=None):
    command = [tool, *args]
    ret = __salt__["cmd.run_all"](
        command, python_shell=False, ignore_retcode=True, timeout=timeout
    )
    return command, ret


def _failure(command, ret):
    message = (ret.get("stderr") or "").strip() or (ret.get("stdout") or "").strip()
    return CommandExecutionError(
        "'{}' failed (exit {}): {}".format(" ".join(command), ret.get("retcode"),
                                           message or "no message")
    )


def _refresh_listing(tool):
    command, ret = _run(tool, ["list"])
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    try:
        domains = parse_list(ret["stdout"], tool)
    except ValueError as err:
        raise CommandExecutionError(str(err)) from None
    listing = {"toolstack": tool, "domains": domains, "stale": set()}
    __context__[LISTING_KEY] = listing
    return listing


def _listing(tool, name=None):
    listing = __context__.get(LISTING_KEY)
    if (
        not listing
        or listing["toolstack"] != tool
        or "*" in listing["stale"]
        or (name is None and listing["stale"])
        or (name is not None and name in listing["stale"])
    ):
        listing = _refresh_listing(tool)
    return listing


def _invalidate(*names):
    listing = __context__.get(LISTING_KEY)
    if listing:
        listing["stale"].update([n for n in names if n] or ["*"])
        listing["stale"].add("Domain-0")


def _select_toolstack(requested):
    choice = toolstack_choice(requested, "toolstack") if requested not in (None, "") else None
    if choice is None:
        choice = _configured_toolstack()
    cached = __context__.get(TOOLSTACK_KEY)
    if cached and cached[0] == choice:
        return cached[1]
    candidates = TOOLSTACKS if choice == "auto" else (choice,)
    problems = []
    for tool in candidates:
        if not salt.utils.path.which(tool):
            if choice != "auto":
                problems.append(f"{tool} is not installed")
            continue
        try:
            _refresh_listing(tool)
        except CommandExecutionError as err:
            problems.append(f"{tool} is installed but not answering: {err}")
            continue
        __context__[TOOLSTACK_KEY] = (choice, tool)
        return tool
    raise CommandExecutionError(
        "No usable Xen toolstack: " + ("; ".join(problems) or "neither xl nor xm is installed")
    )


def toolstack(requested=None):
    """Return the usable toolstack: ``xl`` or ``xm``.

    ``requested`` (``auto``, ``xl``, ``xm``) overrides the configured choice
    (minion config ``xen_nfsroot.toolstack``/``xm.toolstack``, pillar
    ``xen_nfsroot:defaults:toolstack``, else ``auto``). A toolstack counts
    only when installed *and* answering: its ``list`` must succeed (that
    listing is kept as the run's domain listing, so detection costs no extra
    process). ``auto`` prefers xl. Raises ``CommandExecutionError`` saying
    why none is usable (e.g. "xl is installed but not answering: ... Can't
    find hypervisor information in sysfs!"). Cached in ``__context__``.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.toolstack
    """
    return _select_toolstack(requested)


def config_format(toolstack=None):
    """
    The config format (``xl`` or ``xm``) to write for a guest: the requested
    toolstack when it names one, else the usable one (as :func:`toolstack`),
    else the configured or installed one (a config can be written while the
    hypervisor is down).

    CLI Example:

    .. code-block:: bash

        salt dom0-a xm.config_format
    """
    requested = toolstack
    if requested in TOOLSTACKS:
        return requested
    try:
        return _select_toolstack(requested)
    except CommandExecutionError:
        choice = toolstack_choice(requested, "toolstack") if requested else _configured_toolstack()
        if choice in TOOLSTACKS:
            return choice
        for tool in TOOLSTACKS:
            if salt.utils.path.which(tool):
                return tool
        raise


# ---------------------------------------------------------------------------
# Public: listing and domain control
# ---------------------------------------------------------------------------


def list_domains(details=False, toolstack=None, fresh=False):
    """List the domains: ``{name: {id, memory_mb, vcpus, state, flags, time_s}}``.

    ``state`` is one of running, blocked, paused, shutdown, crashed, dying;
    ``flags`` the six letters as printed; ``id`` is ``None`` for an xm
    managed domain that is not running. One ``xl list``/``xm list`` per run
    (cached). With ``details=True`` under xl, ``xl list -l`` is run as well
    and each guest gains ``kernel``, ``ramdisk``, ``cmdline``, ``uuid`` and
    ``type`` (Domain-0 has none; xm shows none). ``fresh``: list again
    even if this run listed already (the mine's publication after a boot or
    a migration: ``mine.send xm.list_domains fresh=True``).

    CLI Example:

    .. code-block:: bash

        salt '*' xm.list_domains
        salt '*' xm.list_domains details=True
    """
    tool = _select_toolstack(toolstack)
    if fresh:
        _invalidate()
    domains = copy.deepcopy(_listing(tool)["domains"])
    if details and tool == "xl":
        command, ret = _run(tool, ["list", "-l"])
        if ret["retcode"] != 0:
            raise _failure(command, ret)
        try:
            detailed = parse_xl_list_long(ret["stdout"])
        except ValueError as err:
            raise CommandExecutionError(str(err)) from None
        for name, extra in detailed.items():
            if name in domains:
                for key in ("kernel", "ramdisk", "cmdline", "uuid", "type"):
                    domains[name][key] = extra[key]
    return domains


def mined_domains(dom0s):
    """
    The domain lists other dom0s published to the Salt mine (their
    ``xm.list_domains``), read once per run for one set of dom0s:
    ``{minion id: {name: domain}}``; a dom0 with no mine data is missing.

    dom0s
        The minion ids (a list).

    CLI Example:

    .. code-block:: bash

        salt dom0-a xm.mined_domains '[dom0-b]'
    """
    others = list(values.check_list(dom0s, "dom0s", "list of minion ids"))
    for other in others:
        values.check_minion_id(other, "dom0s")
    if not others:
        return {}
    key = ("xm.mined", tuple(sorted(others)))
    if key not in __context__:
        mined = __salt__["mine.get"](tgt=others, fun=placement.MINE_FUNCTION, tgt_type="list")
        __context__[key] = {minion: data for minion, data in (mined or {}).items()
                            if minion in others and isinstance(data, dict)}
    return copy.deepcopy(__context__[key])


def state(name, toolstack=None, fresh=False):
    """Return a domain's state: running, blocked, paused, shutdown, crashed, dying or absent.

    Uses the run's cached listing (listing again only if this domain was
    booted, stopped or migrated since, or with ``fresh``: a domain watched
    while it boots).

    CLI Example:

    .. code-block:: bash

        salt '*' xm.state XenGuest
    """
    values.check_domain_name(name)
    tool = _select_toolstack(toolstack)
    if fresh:
        _invalidate(name)
    domain = _listing(tool, name)["domains"].get(name)
    return domain["state"] if domain else "absent"


def create(path, toolstack=None):
    """Boot a domain from its config file (``xl create /abs/path`` / ``xm create /abs/path``).

    Returns ``{"name": <name in the file or None>, "path": <absolute path>,
    "toolstack": "xl"|"xm", "output": <the tool's messages>}``. Raises
    ``CommandExecutionError`` with the tool's message on failure.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.create /etc/xen/XenGuest.cfg
    """
    path = os.path.abspath(path)
    tool = _select_toolstack(toolstack)
    try:
        name = __salt__["xen_config.read_config"](path).get("name")
    except CommandExecutionError:
        name = None
    command, ret = _run(tool, ["create", path])
    _invalidate(name if isinstance(name, str) else None)
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    output = "\n".join(filter(None, [ret.get("stdout", "").strip(), ret.get("stderr", "").strip()]))
    return {"name": name, "path": path, "toolstack": tool, "output": output}


def _timed_out(ret, timeout):
    return bool(timeout) and ret.get("retcode") != 0 and "Timed out after" in (
        ret.get("stdout") or ""
    ) and not (ret.get("stderr") or "").strip()


def shutdown(name, wait=True, timeout=60, toolstack=None):
    """Shut a domain down gracefully (``shutdown -w NAME`` when ``wait``).

    With ``wait``, gives up after ``timeout`` seconds (``0``/``None``: wait
    for ever). Returns ``{"name": name, "stopped": bool, "timed_out": bool,
    "output": str}``: ``stopped`` is True once the domain has gone (only known
    with ``wait``); ``timed_out`` True when it was still up at the timeout
    (destroy it then if it must go).

    CLI Example:

    .. code-block:: bash

        salt '*' xm.shutdown XenGuest timeout=120
    """
    values.check_domain_name(name)
    values.check_switch(wait, "wait")
    # 0 (and None) is documented as "wait for ever"; anything else is a limit.
    timeout = None if timeout in (0, "0", None) else check_seconds(timeout)
    tool = _select_toolstack(toolstack)
    args = ["shutdown", "-w", name] if wait else ["shutdown", name]
    command, ret = _run(tool, args, timeout=(timeout or None) if wait else None)
    _invalidate(name)
    if wait and _timed_out(ret, timeout):
        return {"name": name, "stopped": False, "timed_out": True,
                "output": f"{name} was still up after {timeout} s"}
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    output = "\n".join(filter(None, [ret.get("stdout", "").strip(), ret.get("stderr", "").strip()]))
    return {"name": name, "stopped": bool(wait), "timed_out": False, "output": output}


def _control(name, args, tool):
    command, ret = _run(tool, args)
    _invalidate(name)
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    return True


def destroy(name, toolstack=None):
    """Destroy a domain at once (``destroy NAME``). Returns True.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.destroy XenGuest
    """
    values.check_domain_name(name)
    return _control(name, ["destroy", name], _select_toolstack(toolstack))


def reboot(name, toolstack=None):
    """Reboot a domain (``reboot NAME``). Returns True.

    CLI Example:

    .. code-block:: bash

        salt '*' xm.reboot XenGuest
    """
    values.check_domain_name(name)
    return _control(name, ["reboot", name], _select_toolstack(toolstack))


def migrate(name, host, live=True, ssh_command=None, timeout=None, toolstack=None):  # noqa: PLR0913,PLR0917 (Salt calls it with keywords)
    """Migrate a domain to another dom0 (``xl migrate [-s SSH] NAME HOST`` /
    ``xm migrate [--live] NAME HOST``).

    xl migrations are always live, over ssh (``ssh_command`` replaces
    ``ssh``: xl runs ``SSH HOST xl migrate-receive`` through ``sh -c``, so it
    may hold only option words, no shell syntax); xm talks to the target's
    xend relocation server and ``live`` matters for it only. ``timeout``:
    whole seconds, 1 to a day, before the migration is abandoned (default:
    none). Every argument is checked before xl runs. Returns
    ``{"name", "host", "toolstack", "output"}`` (xl's messages); raises
    ``CommandExecutionError`` with them when the tool fails.

    CLI Example:

    .. code-block:: bash

        salt dom0-a xm.migrate XenGuest dom0-b
    """
    values.check_domain_name(name)
    check_migrate_host(host)
    values.check_switch(live, "live")
    check_ssh_command(ssh_command)
    timeout = check_seconds(timeout, "timeout")
    tool = _select_toolstack(toolstack)
    args = ["migrate", name, host]
    if tool == "xm" and live:
        args = ["migrate", "--live", name, host]
    elif tool == "xl" and ssh_command:
        args = ["migrate", "-s", ssh_command, name, host]
    command, ret = _run(tool, args, timeout=timeout)
    _invalidate(name, f"{name}--migratedaway")
    if ret["retcode"] != 0:
        raise _failure(command, ret)
    output = "\n".join(filter(None, [ret.get("stdout", "").strip(), ret.get("stderr", "").strip()]))
    return {"name": name, "host": host, "toolstack": tool, "output": output}
