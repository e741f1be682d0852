#!/usr/bin/env python3
"""A stand-in for Xen's ``xl`` and ``xm`` commands, for tests on machines without Xen.

Installed as ``tests/doubles/bin/xl`` and ``tests/doubles/bin/xm`` (links to
this file); the name it is called by picks the toolstack. It keeps its
domains in the directory named by ``XEN_DOUBLE_DIR`` (which the test owns):

* ``domains.json``  the domains (Domain-0 is always there, not stored);
* ``settings.json`` behaviour switches, all optional:
  ``hypervisor`` (false: xl is installed but cannot answer, as Debian's
  wrapper without Xen), ``xend`` (false: xm cannot reach xend),
  ``ignore_shutdown`` (names of guests that ignore a graceful shutdown),
  ``dom0_memory_mb``, ``dom0_vcpus``;
  ``console_dir`` (xenconsoled's ``--log-dir``: each guest's console is
  appended to ``<console_dir>/guest-<name it first had>.log``; absent: no logs);
  ``boot`` (what each guest prints and does: ``{NAME or "*": {"console":
  transcript file, "then": "run" | "crash" | "poweroff", "delay": seconds,
  "incoming": transcript file, "address": the guest's address}}``: the
  transcript, ``@NAME@`` replaced by the
  domain's name, is appended at each boot, its second half ``delay`` seconds
  later when ``delay`` > 0; then the guest runs on, crashes (``on_crash``) or
  powers itself off (``on_poweroff``); ``incoming`` is what it prints once it
  runs here after a migration; read again at each boot);
  ``nfs_rmtab`` (the NFS server's ``/var/lib/nfs/rmtab``: a guest that
  runs on once its transcript is written, with an ``address``, is recorded
  there as mounting the path of its ``nfsroot=``, as rpc.mountd would);
  ``dump_dir`` (where core dumps go, for ``coredump-*``: Xen's
  ``/var/lib/xen/dump`` for xl, xend's ``/var/xen/dump``; default
  ``<XEN_DOUBLE_DIR>/dump``);
  ``migrate_targets`` ({host: state dir of the receiving dom0});
  ``migrate_failure`` ({NAME: "receiver-unreachable" | "incoming-left" |
  "migratedaway-left"}: where ``xl migrate`` of that guest breaks);
  ``migrate_step_delay`` (seconds ``xl migrate`` spends on each step of the
  protocol, so that others can watch ``NAME--incoming``/``NAME--migratedaway``);
* ``spawn.log``     one JSON array per invocation: ``["xl", "list"]``.

Output layouts, messages and exit codes follow the real tools (xl 4.17 as on
Debian 12, xm/xend of Xen <= 4.4): the ``xl list`` header with its TABs, the
``xl list -l`` JSON shape (booleans as "True"/"False" strings, fields at
libxl's default left out), xl's silence about xm-only keys (nfs_server,
nfs_root, dhcp, ip...), xl's warning on Python-looking configs, xm's command
line synthesis (ip=..., nfsroot=...), xl's monitor acting on a guest's
shutdown (xl_vmcontrol.c handle_domain_death) and xend's (XendDomainInfo
_maybeRestart), and ``xl migrate``'s protocol and messages (xl_migrate.c).
A guest whose console output is delayed, or whose restart waits (xl sleeps
2 s before re-creating a domain), is carried on by a detached copy of this
program (the subcommand ``GUEST_PROCESS``, never logged, silent), as xl's own
monitor is a daemon. It reads configs with its own small parsers and never
imports the formula.
"""

import copy
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
import zlib
from contextlib import contextmanager, suppress

NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
DEBIAN_NO_HYPERVISOR = "ERROR:  Can't find hypervisor information in sysfs!"
XEND_DOWN = "Error: Unable to connect to xend: No such file or directory. Is xend running?"
XM_VIF_KEYS = {"backend", "bridge", "ip", "mac", "script", "type", "vifname", "rate", "model",
               "accel", "policy", "label"}
XL_HEADER = "Name                                        ID   Mem VCPUs\tState\tTime(s)"
# The real tools' own format strings, kept verbatim.
XM_HEADER = "%-40s %5s %5s %5s %10s %9s" % (
    "Name", "ID", "Mem", "VCPUs", "State", "Time(s)")

#: The detached guest process: ``xen_double.py GUEST_PROCESS STATE_DIR UUID TOKEN``.
GUEST_PROCESS = "xen-double-guest"
#: xl.cfg(5) actions (xl_parse.c action_on_shutdown_names) and their JSON
#: spelling (libxl_action_on_shutdown_to_string); DESTROY is libxl's
#: init_val, which ``xl list -l`` leaves out.
XL_ACTIONS = {
    "destroy": "destroy", "restart": "restart", "rename-restart": "restart_rename",
    "preserve": "preserve", "coredump-destroy": "coredump_destroy",
    "coredump-restart": "coredump_restart", "soft-reset": "soft_reset",
}
#: xend's XendConfig.CONFIG_RESTART_MODES, and the Xen API names convert_on_crash maps.
XEND_RESTART_MODES = ("restart", "destroy", "preserve", "rename-restart", "coredump-destroy",
                      "coredump-restart")
XEND_ON_CRASH_LEGACY = {"coredump_and_destroy": "coredump-destroy",
                        "coredump_and_restart": "coredump-restart",
                        "rename_restart": "rename-restart"}
#: xl_vmcontrol.c create_domain: "XXX FIXME: If this sleep is not there then
#: domain re-creation fails sometimes." sleep(2) before every restart.
XL_RESTART_SLEEP = 2
#: xend refuses to restart a domain that lived less than this (XendConstants.py).
XEND_MINIMUM_RESTART_TIME = 60
#: The double's own bound on restarts of one guest (neither xl nor xend has one).
MAX_RESTARTS = 3
#: State letters (xl_info.c; xm from XendConfig's old states): running guests
#: are idle here, so blocked.
RUNNING, PAUSED, SUSPENDED = "-b----", "--p---", "---ss-"
SHUT_DOWN = {("xl", "poweroff"): "---s--", ("xl", "crash"): "---sc-",
             ("xm", "poweroff"): "---s--", ("xm", "crash"): "----c-"}


class Exit(Exception):
    def __init__(self, code, message=None):
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------
# State directory
# ---------------------------------------------------------------------------


class Store:
    def __init__(self, directory):
        self.dir = directory
        self.domains_file = os.path.join(directory, "domains.json")

    def settings(self):
        try:
            with open(os.path.join(self.dir, "settings.json")) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}

    @contextmanager
    def locked(self):
        with open(os.path.join(self.dir, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.load()
            yield data
            tmp = self.domains_file + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(data, handle, indent=1)
            os.replace(tmp, self.domains_file)

    def load(self):
        try:
            with open(self.domains_file) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {"next_id": 1, "domains": {}}

    def log_spawn(self, argv):
        with open(os.path.join(self.dir, "spawn.log"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(json.dumps(argv) + "\n")


def dom0(settings):
    return {
        "id": 0, "name": "Domain-0", "memory_mb": settings.get("dom0_memory_mb", 1024),
        "vcpus": settings.get("dom0_vcpus", 2), "flags": "r-----", "started": None,
    }


def cpu_time(domain):
    if domain.get("started") is None:
        return 12.1
    return round(max(0.0, time.time() - domain["started"]) * 0.01 + 0.1, 1)


def find(data, settings, ident, tool):
    """Domain by name or id (xl's find_domain / xend's lookup)."""
    domains = [dom0(settings), *data["domains"].values()]
    for domain in domains:
        if domain["name"] == ident or (ident.isdigit() and domain["id"] == int(ident)):
            return domain
    if tool == "xl":
        raise Exit(1, f"{ident} is an invalid domain identifier (rc=-6)")
    raise Exit(1, f"Error: Domain '{ident}' does not exist.")


def mac_for(name, index):
    digest = zlib.crc32(f"{name}/{index}".encode())
    return f"00:16:3e:{(digest >> 16) & 0x7F:02x}:{(digest >> 8) & 0xFF:02x}:{digest & 0xFF:02x}"


def running(domain):
    """Neither paused nor shut down (the guest executes)."""
    return domain["flags"][2:5] == "---"


# ---------------------------------------------------------------------------
# xl.cfg reader (libxlu_cfg_l.l / libxlu_cfg_y.y, written afresh)
# ---------------------------------------------------------------------------


class XlSyntax(Exception):
    def __init__(self, lines, likely_python):
        super().__init__("\n".join(lines))
        self.lines = lines
        self.likely_python = likely_python


def xl_scan(text, source):
    tokens = []
    line = 1
    i = 0
    errors = []
    likely_python = False
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
        elif c == "\n":
            tokens.append(("NL", "\n", line))
            line += 1
            i += 1
        elif c == "#":
            j = text.find("\n", i)
            if j < 0:
                j = n
            tokens.append(("NL", "\n", line))
            line += 1
            i = j + 1
        elif "a" <= c <= "z":
            j = i + 1
            while j < n and (text[j].isdigit() or "a" <= text[j] <= "z" or text[j] in "_."):
                j += 1
            tokens.append(("IDENT", text[i:j], line))
            i = j
        elif c.isdigit():
            j = i + 1
            while j < n and (text[j].isdigit() or "a" <= text[j] <= "f" or text[j] == "x"):
                j += 1
            tokens.append(("NUMBER", text[i:j], line))
            i = j
        elif c in "'\"":
            j = i + 1
            chars = []
            closed = False
            while j < n and text[j] != "\n":
                if text[j] == "\\" and j + 1 < n and text[j + 1] != "\n":
                    esc = text[j + 1]
                    simple = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f",
                              "v": "\v"}
                    chars.append(simple.get(esc, esc))
                    j += 2
                    continue
                if text[j] == c:
                    closed = True
                    break
                chars.append(text[j])
                j += 1
            if not closed:
                word = text[i:j].split()[0] if text[i:j].split() else c
                errors.append(f"{source}:{line}: config parsing error near `{word}': "
                              "lexical error")
                i = j
                continue
            tokens.append(("STRING", "".join(chars), line))
            i = j + 1
        elif text.startswith("+=", i):
            tokens.append(("+=", "+=", line))
            i += 2
        elif c in ",[]=;":
            tokens.append((c, c, line))
            i += 1
        else:
            if c in "+-.():":
                likely_python = True
            j = i
            while j < n and text[j] not in " \t\n":
                j += 1
            errors.append(f"{source}:{line}: config parsing error near `{text[i:j]}': "
                          "lexical error")
            i = j
    tokens.append(("EOF", "", line))
    if errors:
        raise XlSyntax(errors, likely_python)
    return tokens


def xl_read(text, source):
    """Settings as {key: (value, line)}; atoms stay strings, as in libxlu."""
    tokens = xl_scan(text, source)
    settings = {}
    k = 0

    def error(token):
        near = token[1] if token[0] not in ("NL", "EOF") else ""
        where = f"near `{near}'" if near else "near <newline>"
        raise XlSyntax([f"{source}:{token[2]}: config parsing error {where}: syntax error"],
                       False)

    def value():
        nonlocal k
        token = tokens[k]
        if token[0] in ("STRING", "NUMBER"):
            k += 1
            return token[1]
        if token[0] == "[":
            k += 1
            items = []
            while tokens[k][0] == "NL":
                k += 1
            while tokens[k][0] != "]":
                items.append(value())
                while tokens[k][0] == "NL":
                    k += 1
                if tokens[k][0] == ",":
                    k += 1
                    while tokens[k][0] == "NL":
                        k += 1
                elif tokens[k][0] != "]":
                    error(tokens[k])
            k += 1
            return items
        error(token)
        return None

    while tokens[k][0] != "EOF":
        token = tokens[k]
        if token[0] in ("NL", ";"):
            k += 1
            continue
        if token[0] != "IDENT" or tokens[k + 1][0] not in ("=", "+="):
            error(tokens[k + 1] if token[0] == "IDENT" else token)
        op = tokens[k + 1][0]
        k += 2
        line = tokens[k][2]
        got = value()
        if op == "+=" and token[1] in settings:
            got = settings[token[1]][0] + got
        settings[token[1]] = (got, line)
        if tokens[k][0] not in ("NL", ";", "EOF"):
            error(tokens[k])
    return settings


def xl_string(settings, key, source):
    if key not in settings:
        return None
    value, line = settings[key]
    if isinstance(value, list):
        print(f"{source}:{line}: warning: parameter `{key}' is a list but should be a "
              "single value", file=sys.stderr)
        return None
    return value


def xl_long(settings, key, source):
    text = xl_string(settings, key, source)
    if text is None:
        return None
    try:
        return int(text, 0) if not re.fullmatch(r"0[0-7]+", text) else int(text, 8)
    except ValueError:
        print(f"{source}:{settings[key][1]}: warning: parameter `{key}' is not a valid number",
              file=sys.stderr)
        return None




# ---------------------------------------------------------------------------
# Guest consoles (xenconsoled: tools/console/daemon/io.c) and guest lives
# ---------------------------------------------------------------------------


def console_log(settings, name):
    """io.c create_console_log: ``"%s/guest-%s%s.log"`` of the log dir and the
    name the domain has when xenconsoled first sees it (no suffix: PV console)."""
    directory = settings.get("console_dir")
    return os.path.join(directory, f"guest-{name}.log") if directory else None


def console_write(path, data=b""):
    """Append to a guest's log, opened as xenconsoled opens it (O_WRONLY |
    O_CREAT | O_APPEND, 0644): never truncated, created when the domain appears."""
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return  # xenconsoled logs "Failed to open log" and carries on
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def boot_plan(settings, name):
    """The ``boot`` setting for this guest (or for "*"), checked; None without one."""
    plans = settings.get("boot") or {}
    plan = plans.get(name, plans.get("*"))
    if plan is None:
        return None
    then = plan.get("then", "run")
    if then not in ("run", "crash", "poweroff"):
        raise Exit(2, f"xen test double: boot {name}: then is run, crash or poweroff, "
                      f"not {then!r}")
    try:
        delay = max(0.0, float(plan.get("delay", 0)))
    except (TypeError, ValueError):
        raise Exit(2, f"xen test double: boot {name}: delay {plan.get('delay')!r} "
                      "is not a number") from None
    for key in ("console", "incoming"):
        if plan.get(key) and not os.path.isfile(plan[key]):
            raise Exit(2, f"xen test double: boot {name}: {key}: no file {plan[key]}")
    return {"console": plan.get("console"), "then": then, "delay": delay,
            "incoming": plan.get("incoming"), "address": plan.get("address")}


def record_mount(settings, domain, plan):
    """The guest, up, has mounted its root: what the NFS server's rpc.mountd
    would record in ``nfs_rmtab`` (nfs-utils support/nfs/rmtab.c:
    ``"%s:%s:0x%.8x\\n"``, client address, path, count) for the plan's
    ``address`` and the path of the ``nfsroot=`` of its command line."""
    rmtab, address = settings.get("nfs_rmtab"), plan.get("address")
    words = [w for w in (domain.get("cmdline") or "").split() if w.startswith("nfsroot=")]
    if not rmtab or not address or not words:
        return
    path = words[-1].split("=", 1)[1].split(",", 1)[0].split(":", 1)[-1]
    with open(rmtab, "a", encoding="utf-8") as handle:
        handle.write(f"{address}:{path}:0x00000001\n")


def transcript(path, name):
    """A transcript's lines (bytes, line ends kept), ``@NAME@`` replaced by the domain's name."""
    if not path:
        return []
    with open(path, "rb") as handle:
        return handle.read().replace(b"@NAME@", name.encode()).splitlines(keepends=True)


def new_token():
    return uuid.uuid4().hex


def begin_life(domain, plan, restarts=0, token=None):
    """Give a domain that has just been booted its life (what its plan makes it
    print and do). Returns the token of the one who drives it now: None when
    there is nothing to do, or while it is paused (its unpauser takes over)."""
    if plan is None:
        domain["life"] = None
        return None
    owner = (token or new_token()) if running(domain) else None
    domain["life"] = {"plan": plan, "stage": "boot", "due": time.time(), "restarts": restarts,
                      "owner": owner}
    return owner


def resume_life(domain):
    """A domain runs again (unpaused, resumed, arrived by migration): what it was
    due to print moves by the time it was paused, and the caller takes over."""
    life = domain.get("life")
    paused_at = domain.pop("paused_at", None)
    if not life or life.get("stage") not in ("boot", "rest", "end"):
        return None
    if paused_at is not None:
        life["due"] += max(0.0, time.time() - paused_at)
    life["owner"] = new_token()
    return life["owner"]


def by_uuid(data, ident):
    matches = [d for d in data["domains"].values() if d.get("uuid") == ident]
    return max(matches, key=lambda d: d["id"]) if matches else None


def dump_core(store, settings, domain):
    """xl: ``XEN_DUMP_DIR "/%s"`` of the name (handle_domain_death); xend:
    ``/var/xen/dump/NAME/<time>-NAME.ID.core`` (XendDomainInfo.dumpCore). Both
    carry on when the dump fails. The file is a stand-in, not an ELF core."""
    directory = settings.get("dump_dir") or os.path.join(store.dir, "dump")
    if domain.get("toolstack") == "xm":
        directory = os.path.join(directory, os.path.basename(domain["name"]))
        path = os.path.join(directory, "%s-%s.%s.core" % (
            time.strftime("%Y-%m%d-%H%M.%S", time.localtime()), domain["name"], domain["id"]))
    else:
        path = os.path.join(directory, domain["name"])
    try:
        os.makedirs(directory, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(f"core of domain {domain['id']} ({domain['name']}), "
                         "written by the Xen test double\n".encode())
    except OSError:
        pass


def shut_down(store, data, domain, reason, token):
    """The guest has shut down (``poweroff`` or ``crash``): its state letters say
    so and, if a monitor watches it, its on_poweroff/on_crash follows (xl's
    handle_domain_death, xend's _maybeRestart). Returns the seconds until the
    restart ``token`` now owns, or None when nothing more will happen."""
    tool = domain.get("toolstack", "xl")
    domain["flags"] = SHUT_DOWN[(tool, reason)]
    restarts = (domain.get("life") or {}).get("restarts", 0)
    domain["life"] = None
    if not domain.get("monitor", True):
        return None  # xl create -e, migrate -e: nobody acts on its shutdown
    settings = store.settings()
    action = domain.get("on_crash" if reason == "crash" else "on_poweroff") or "destroy"
    if action.startswith("coredump-"):
        if reason == "crash" or tool == "xl":  # xend dumps cores of crashed domains only
            dump_core(store, settings, domain)
        action = "destroy" if action == "coredump-destroy" else "restart"
    if action == "preserve":
        return None
    if action == "destroy" or restarts >= MAX_RESTARTS:
        data["domains"].pop(domain["name"], None)
        return None
    if tool == "xm" and time.time() - (domain.get("started") or 0) < XEND_MINIMUM_RESTART_TIME:
        # "VM %s restarting too fast (Elapsed time: %f seconds). Refusing to
        # restart to avoid loops." (xend.log) and the domain is destroyed.
        data["domains"].pop(domain["name"], None)
        return None
    pause = 0 if tool == "xm" else XL_RESTART_SLEEP
    due = time.time() + pause
    if action == "soft-reset":  # xl only: the domain is kept for libxl_domain_soft_reset
        domain["life"] = {"stage": "soft-reset", "due": due, "restarts": restarts, "owner": token}
        return pause
    fresh = copy.deepcopy(domain)
    if action == "rename-restart":
        # The dead domain is kept under another name and a new uuid (xl's
        # preserve_domain, "-%Y%m%dT%H%MZ"; xend's _preserveForRestart, "Domain-<uuid>").
        new_uuid = str(uuid.uuid4())
        new_name = (f"Domain-{new_uuid}" if tool == "xm"
                    else domain["name"] + time.strftime("-%Y%m%dT%H%MZ", time.gmtime()))
        if new_name in data["domains"]:
            return None  # libxl_domain_preserve failed: "exit leaving the old domain in place"
        dead = data["domains"].pop(domain["name"])
        data["domains"][new_name] = {**dead, "name": new_name, "uuid": new_uuid}
    else:
        data["domains"].pop(domain["name"], None)
    data.setdefault("restarting", {})[domain["uuid"]] = {
        "domain": fresh, "due": due, "restarts": restarts + 1, "owner": token}
    return pause


def reboot_domain(store, data, pending):
    """The monitor creates the domain again: a new id, the same name and uuid,
    running (``-p`` counts for the first boot only), its console log reopened."""
    domain = pending["domain"]
    if domain["name"] in data["domains"]:
        return None  # the name is taken meanwhile: libxl refuses it, the monitor exits
    settings = store.settings()
    domain.update(id=data["next_id"], flags=RUNNING, started=time.time(),
                  console_log=console_log(settings, domain["name"]))
    domain.pop("paused_at", None)
    data["next_id"] += 1
    data["domains"][domain["name"]] = domain
    console_write(domain["console_log"])
    plan = boot_plan(settings, domain["name"])
    return 0 if begin_life(domain, plan, pending["restarts"], pending["owner"]) else None


def life_step(store, data, ident, token):
    """One step in the life of the guest whose uuid is ``ident``, if ``token``
    owns it: seconds to wait before the next one, or None when it is over."""
    now = time.time()
    domain = by_uuid(data, ident)
    if domain is None:
        pending = data.get("restarting", {}).get(ident)
        if not pending or pending["owner"] != token:
            return None
        if pending["due"] > now:
            return pending["due"] - now
        del data["restarting"][ident]
        return reboot_domain(store, data, pending)
    life = domain.get("life")
    if not life or life.get("owner") != token:
        return None
    if life["due"] > now:
        return life["due"] - now
    if life["stage"] == "soft-reset":
        if domain["type"] != "hvm":
            # libxl_domain_soft_reset: ERROR_INVAL unless HVM; create_domain's
            # error_out then destroys the domain.
            data["domains"].pop(domain["name"], None)
            return None
        domain.update(flags=RUNNING, started=now)
        plan = boot_plan(store.settings(), domain["name"])
        return 0 if begin_life(domain, plan, life["restarts"] + 1, token) else None
    if not running(domain):
        life["owner"] = None  # paused or suspended: whoever resumes it carries on
        return None
    plan = life["plan"]
    if life["stage"] == "boot":
        lines = transcript(plan["console"], domain["name"])
        half = len(lines) // 2 if plan["delay"] > 0 else len(lines)
        console_write(domain.get("console_log"), b"".join(lines[:half]))
        life.update(stage="rest", due=now + plan["delay"],
                    rest=b"".join(lines[half:]).decode("latin-1"))
        return 0
    if life["stage"] == "rest":
        console_write(domain.get("console_log"), life.pop("rest", "").encode("latin-1"))
        life["stage"] = "end"
        return 0
    if plan["then"] == "run":
        record_mount(store.settings(), domain, plan)
        domain["life"] = None
        return None
    return shut_down(store, data, domain, plan["then"], token)


def guest_step(directory, ident, token):
    """Follow the guest to the dom0 it runs on now (``moved``), and step there."""
    seen = set()
    while directory not in seen:
        seen.add(directory)
        store = Store(directory)
        with store.locked() as data:
            forward = data.get("moved", {}).get(ident)
            if not forward:
                return life_step(store, data, ident, token)
        directory = forward
    return None


def drive(directory, ident, token, detached=False):
    """Carry a guest's life on while ``token`` owns it: what is due now, here;
    what must wait, in a detached guest process (this one, when ``detached``)."""
    while token:
        wait = guest_step(directory, ident, token)
        if wait is None:
            return
        if wait > 0:
            if not detached:
                subprocess.Popen(
                    [sys.executable, os.path.realpath(__file__), GUEST_PROCESS, directory,
                     ident, token],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
                return
            time.sleep(wait)


def guest_process(directory, ident, token):
    """The detached guest: it writes the guest's console and state, nothing else,
    and stops quietly when its double's directory has gone."""
    with suppress(Exception):  # a stand-in guest never complains
        drive(directory, ident, token, detached=True)
    return 0


# ---------------------------------------------------------------------------
# xl
# ---------------------------------------------------------------------------

#: xl_parse.c reads these in this order, each with its default.
XL_EVENT_DEFAULTS = {"on_poweroff": "destroy", "on_reboot": "restart",
                     "on_watchdog": "destroy", "on_crash": "destroy",
                     "on_soft_reset": "soft-reset"}


def xl_row(domain):
    return "%-40s %5d %5d %5d     %s  %8.1f" % (  # xl_info.c's format
        domain["name"], domain["id"], domain["memory_mb"], domain["vcpus"], domain["flags"],
        cpu_time(domain))


def yajl(value, indent=0):
    """JSON as libxl's yajl generator beautifies it (4 spaces; empty maps open)."""
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{\n" + " " * indent + "}"
        items = [f"{pad}{json.dumps(k)}: {yajl(v, indent + 4)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[\n" + " " * indent + "]"
        items = [pad + yajl(v, indent + 4) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(value)


def xl_json(domain):
    b_info = {
        "max_vcpus": domain["vcpus"],
        "avail_vcpus": list(range(domain["vcpus"])),
        "max_memkb": domain["maxmem_mb"] * 1024,
        "target_memkb": domain["memory_mb"] * 1024,
        "video_memkb": 0,
        "sched_params": {"sched": "credit2", "weight": 256, "cap": 0},
        "claim_mode": "True",
        "kernel": domain["kernel"],
    }
    if domain.get("cmdline") is not None:
        b_info["cmdline"] = domain["cmdline"]
    if domain.get("ramdisk"):
        b_info["ramdisk"] = domain["ramdisk"]
    b_info[f"type.{domain['type']}"] = {}
    b_info["arch_arm"] = {}
    b_info["arch_x86"] = {"msr_relaxed": "False"}
    config = {
        "c_info": {"type": domain["type"], "name": domain["name"], "domid": 4294967295,
                   "uuid": domain["uuid"], "run_hotplug_scripts": "True"},
        "b_info": b_info,
    }
    if domain["nics"]:  # gentypes.py: an array is written when it has elements
        config["nics"] = domain["nics"]
    for event, default in XL_EVENT_DEFAULTS.items():
        action = XL_ACTIONS.get(domain.get(event) or default, "destroy")
        if action != "destroy":  # LIBXL_ACTION_ON_SHUTDOWN_DESTROY is the init_val
            config[event] = action
    return {"domid": domain["id"], "config": config}


def xl_list(store, args):
    long_form = False
    names = []
    for arg in args:
        if arg in ("-l", "--long"):
            long_form = True
        elif arg in ("-v", "--verbose", "-Z", "-c", "-n"):
            continue
        else:
            names.append(arg)
    data = store.load()
    settings = store.settings()
    if names:
        chosen = [find(data, settings, names[0], "xl")]
    else:
        chosen = [dom0(settings)] + sorted(data["domains"].values(), key=lambda d: d["id"])
    if long_form:
        entries = [xl_json(d) for d in chosen if d["id"] != 0]
        print(yajl(entries))
        return 0
    print(XL_HEADER)
    for domain in chosen:
        print(xl_row(domain))
    return 0


def xl_parse_file(path, extra_lines):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as err:
        raise Exit(3, f"Failed to read config file: {path}: {err.strerror}") from None
    if extra_lines:
        text += "\n" + "\n".join(extra_lines) + "\n"
    try:
        return xl_read(text, path)
    except XlSyntax as err:
        lines = list(err.lines)
        if err.likely_python:
            lines += ["warning: Config file looks like it contains Python code.",
                      "warning:  Arbitrary Python is no longer supported.",
                      "warning:  See https://wiki.xen.org/wiki/PythonInXlConfig"]
        lines.append("Failed to parse config: Invalid argument")
        raise Exit(1, "\n".join(lines)) from None


def xl_domain_from(settings, source):
    """What xl_parse.c keeps of a config: the xm-only keys are never looked at."""
    name = xl_string(settings, "name", source)
    if not name:
        raise Exit(1, "Domain name must be specified.")
    dom_type = xl_string(settings, "type", source) or "pv"
    if dom_type not in ("pv", "pvh", "hvm"):
        raise Exit(1, f"Invalid domain type {dom_type}.")
    memory = xl_long(settings, "memory", source) or 128
    maxmem = xl_long(settings, "maxmem", source) or memory
    vcpus = xl_long(settings, "vcpus", source) or 1
    cmdline = xl_string(settings, "cmdline", source)
    root = xl_string(settings, "root", source)
    extra = xl_string(settings, "extra", source)
    if cmdline is not None:
        if root is not None or extra is not None:
            print("Warning: ignoring root= and extra= in favour of cmdline=", file=sys.stderr)
    elif root is not None and extra is not None:
        cmdline = f"root={root} {extra}"
    elif root is not None:
        cmdline = f"root={root}"
    elif extra is not None:
        cmdline = extra
    nics = []
    vifs = settings.get("vif", ([], 0))[0]
    for index, spec in enumerate(vifs if isinstance(vifs, list) else []):
        nic = {"devid": index, "mac": mac_for(name, index), "bridge": "xenbr0", "nictype": "vif"}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, val = part.partition("=")
            if key in ("mac", "bridge"):
                nic[key] = val
        nics.append(nic)
    actions = {}
    for event, default in XL_EVENT_DEFAULTS.items():
        action = xl_string(settings, event, source)
        action = default if action is None else action
        if action not in XL_ACTIONS:
            raise Exit(1, f'Unknown {event} action "{action}" specified')
        actions[event] = action
    return {
        "name": name, "type": dom_type, "memory_mb": memory, "maxmem_mb": maxmem,
        "vcpus": vcpus, "kernel": xl_string(settings, "kernel", source),
        "ramdisk": xl_string(settings, "ramdisk", source), "cmdline": cmdline, "nics": nics,
        **actions,
    }


def xl_create(store, args):
    dryrun = quiet = paused = False
    monitor = True
    path = None
    extra_lines = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-n", "--dryrun"):
            dryrun = True
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg == "-p":
            paused = True
        elif arg == "-e":
            monitor = False
        elif arg in ("-c", "-V", "-d", "-F"):
            continue
        elif arg in ("-f", "--defconfig"):
            path = rest.pop(0)
        elif "=" in arg or path is not None:
            extra_lines.append(arg)
        else:
            path = arg
    if path is None:
        raise Exit(1, "Config file not specified and none in save file")
    if not quiet:
        print(f"Parsing config from {path}", file=sys.stderr)
    wanted = xl_domain_from(xl_parse_file(path, extra_lines), path)
    if dryrun:
        print(yajl(xl_json({**wanted, "id": None, "uuid": str(uuid.uuid4())})["config"]))
        return 0
    settings = store.settings()
    plan = boot_plan(settings, wanted["name"])
    with store.locked() as data:
        domid = data["next_id"]
        data["next_id"] += 1
        if wanted["name"] in data["domains"] or wanted["name"] == "Domain-0":
            raise Exit(3, "\n".join([
                f"libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain {domid}:"
                f"Domain with name \"{wanted['name']}\" already exists.",
                f"libxl: error: libxl_create.c:1294:initiate_domain_create: Domain {domid}:"
                "cannot make domain: -6",
            ]))
        for what, path_value in (("kernel", wanted["kernel"]), ("ramdisk", wanted["ramdisk"])):
            if wanted["type"] != "hvm" and what == "kernel" and not path_value:
                raise Exit(3, f"libxl: error: libxl_dom.c:592:libxl__build_pv: Domain {domid}:"
                              "no kernel specified")
            if path_value and not os.path.isfile(path_value):
                call = "xc_dom_kernel_file" if what == "kernel" else "xc_dom_module_file"
                raise Exit(3, "\n".join([
                    f"xc: error: panic: xg_dom_core.c:208: failed to open file '{path_value}': "
                    "No such file or directory: Internal error",
                    f"libxl: error: libxl_dom.c:737:libxl__build_dom: {call} failed: "
                    "No such file or directory",
                    "libxl: error: libxl_create.c:1773:domcreate_rebuild_done: "
                    f"Domain {domid}:cannot (re-)build domain: -3",
                    "libxl: error: libxl_domain.c:1183:libxl__destroy_domid: "
                    f"Domain {domid}:Non-existant domain",
                    "libxl: error: libxl_domain.c:1137:domain_destroy_callback: "
                    f"Domain {domid}:Unable to destroy guest",
                    "libxl: error: libxl_domain.c:1064:domain_destroy_cb: "
                    f"Domain {domid}:Destruction of domain failed",
                ]))
        domain = {
            **wanted, "id": domid, "uuid": str(uuid.uuid4()),
            "flags": PAUSED if paused else RUNNING, "started": time.time(), "toolstack": "xl",
            "config_path": path, "monitor": monitor,
            "console_log": console_log(settings, wanted["name"]),
        }
        if paused:
            domain["paused_at"] = time.time()
        console_write(domain["console_log"])
        token = begin_life(domain, plan)
        data["domains"][wanted["name"]] = domain
    drive(store.dir, domain["uuid"], token)
    return 0


def wait_gone(store, name, domid):
    while True:
        if store.load()["domains"].get(name, {}).get("id") != domid:
            return
        time.sleep(0.05)


def graceful_shutdown(store, ident, tool, wait):
    data = store.load()
    settings = store.settings()
    domain = find(data, settings, ident, tool)
    if tool == "xl":
        print(f"Shutting down domain {domain['id']}", file=sys.stderr)
    if domain["name"] in settings.get("ignore_shutdown", []):
        if wait:
            if tool == "xl":
                print("Waiting for 1 domains", file=sys.stderr)
            wait_gone(store, domain["name"], domain["id"])
            if tool == "xl":
                print(f"Domain {domain['id']} has been destroyed", file=sys.stderr)
            else:
                print(f"Domain {domain['name']} terminated\nAll domains terminated")
        return 0
    token = new_token()
    with store.locked() as data:
        entry = data["domains"].get(domain["name"])
        if entry is None or shut_down(store, data, entry, "poweroff", token) is None:
            token = None
    if wait:
        if tool == "xl":
            print("Waiting for 1 domains", file=sys.stderr)
            print(f"Domain {domain['id']} has been shut down, reason code 0", file=sys.stderr)
        else:
            print(f"Domain {domain['name']} terminated\nAll domains terminated")
    if token:
        drive(store.dir, entry["uuid"], token)
    return 0


def destroy(store, ident, tool):
    data = store.load()
    domain = find(data, store.settings(), ident, tool)
    if domain["id"] == 0:
        raise Exit(1, "Not destroying domain 0; use -f to force.\n"
                      "This can only be done when using a disaggregated hardware domain "
                      "and toolstack.\n")
    with store.locked() as data:
        data["domains"].pop(domain["name"], None)
    return 0


def reboot(store, ident, tool):
    data = store.load()
    domain = find(data, store.settings(), ident, tool)
    if tool == "xl":
        print(f"Rebooting domain {domain['id']}", file=sys.stderr)
    settings = store.settings()
    with store.locked() as data:
        entry = data["domains"][domain["name"]]
        entry["id"] = data["next_id"]
        data["next_id"] += 1
        entry["started"] = time.time()
        entry["console_log"] = console_log(settings, entry["name"])
        console_write(entry["console_log"])
        token = begin_life(entry, boot_plan(settings, entry["name"]))
    drive(store.dir, entry["uuid"], token)
    return 0


def pause(store, ident, tool, paused):
    """``pause``/``unpause`` (silent); an unpaused guest carries on with its life."""
    domain = find(store.load(), store.settings(), ident, tool)
    token = None
    with store.locked() as data:
        entry = data["domains"].get(domain["name"])
        if entry is not None and paused and running(entry):
            entry.update(flags=PAUSED, paused_at=time.time())
        elif entry is not None and not paused and entry["flags"] == PAUSED:
            entry["flags"] = RUNNING
            token = resume_life(entry)
    if token:
        drive(store.dir, entry["uuid"], token)
    return 0


# ---------------------------------------------------------------------------
# xl migrate (tools/xl/xl_migrate.c)
# ---------------------------------------------------------------------------

#: help("migrate") (xl.c) with xl_cmdtable.c's entry: modifies, cannot dry-run.
XL_MIGRATE_HELP = (
    "Usage: xl [-vtTf] migrate [options] <Domain> <host>\n\n"
    "Migrate a domain to another host.\n\n"
    "Options:\n\n"
    "-h              Print this help.\n"
    "-C <config>     Send <config> instead of config file from creation.\n"
    "-s <sshcommand> Use <sshcommand> instead of ssh.  String will be passed\n"
    "                to sh. If empty, run <host> instead of ssh <host> xl\n"
    "                migrate-receive [-d -e]\n"
    "-e              Do not wait in the background (on <host>) for the death\n"
    "                of the domain.\n"
    "--debug         Print huge (!) amount of debug during the migration process.\n"
    "-p              Do not unpause domain after migrating it.\n"
    "-D              Preserve the domain id\n"
)
#: xl_migrate.c failed_badly, verbatim.
XL_MIGRATE_FAILED_BADLY = (
    "** Migration failed during final handshake **\n"
    "Domain state is now undefined !\n"
    "Please CHECK AT BOTH ENDS for running instances, before renaming and\n"
    " resuming at most one instance.  Two simultaneous instances of the domain\n"
    " would probably result in SEVERE DATA LOSS and it is now your\n"
    " responsibility to avoid that.  Sorry."
)
MIGRATE_FAILURES = ("receiver-unreachable", "incoming-left", "migratedaway-left")


def xl_getopt(args, shortopts, longopts, command, required):
    """def_getopt (xl_utils.c) over GNU getopt_long: options anywhere (argv is
    permuted), unique prefixes of long ones, ``--`` ends them; -h and --help
    print the help (exit 0); an unknown option or a missing argument is
    "option `%c' not supported." (exit 2; NUL for long ones, optopt being 0)."""
    options, params = [], []
    rest = list(args)

    def unsupported(letter):
        print(f"option `{letter}' not supported.", file=sys.stderr)
        raise Exit(2)

    while rest:
        arg = rest.pop(0)
        if arg == "--":
            params += rest
            break
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            names = [n for n in longopts if n == key] or [n for n in longopts if n.startswith(key)]
            if len(names) != 1 or (eq and not longopts[names[0]]):
                unsupported("\0")
            if longopts[names[0]] and not eq:
                if not rest:
                    unsupported("\0")
                value = rest.pop(0)
            if names[0] == "help":
                print(XL_MIGRATE_HELP, end="")
                raise Exit(0)
            options.append(("--" + names[0], value if longopts[names[0]] else None))
        elif arg.startswith("-") and arg != "-":
            for i, letter in enumerate(arg[1:], start=1):
                spec = shortopts.find(letter)
                if letter == ":" or spec < 0:
                    unsupported(letter)
                if letter == "h":
                    print(XL_MIGRATE_HELP, end="")
                    raise Exit(0)
                if shortopts[spec + 1:spec + 2] == ":":
                    value = arg[i + 1:] if arg[i + 1:] else (rest.pop(0) if rest else None)
                    if value is None:
                        unsupported(letter)
                    options.append(("-" + letter, value))
                    break
                options.append(("-" + letter, None))
        else:
            params.append(arg)
    if len(params) < required:
        print(f"'xl {command}' requires at least {required} argument"
              f"{'s' if required > 1 else ''}.\n", file=sys.stderr)
        print(XL_MIGRATE_HELP, end="")
        raise Exit(2)
    return dict(options), params


class Link:
    """The migration transport: ``sh -c "exec SSHCOMMAND HOST xl migrate-receive..."``
    (``-s ''``: ``sh -c HOST``). Over ssh the receiver's stderr comes back to
    the sender's; a raw transport command keeps it on the receiving side."""

    def __init__(self, settings, ssh_command, host):
        self.host = host
        self.ssh_command = ssh_command
        try:
            self.words = shlex.split(ssh_command or host)
        except ValueError:
            self.words = (ssh_command or host).split()
        self.is_ssh = bool(self.words) and os.path.basename(self.words[0]) == "ssh"
        self.step_delay = float(settings.get("migrate_step_delay") or 0)
        self.pid = os.getpid() + 1

    def sender(self, *lines):
        for line in lines:
            print(line, file=sys.stderr, flush=True)

    def receiver(self, *lines):
        if self.ssh_command:
            self.sender(*lines)

    def step(self):
        if self.step_delay > 0:
            time.sleep(self.step_delay)

    def receiver_argv(self, options):
        """The receiving dom0's xl, as main_migrate builds its command line."""
        if not self.ssh_command:
            return ["xl", "migrate-receive"]  # the receiver's own command: nothing forwarded
        argv = ["xl", *(["-t"] if sys.stderr.isatty() else []), "migrate-receive"]
        if "-e" in options or "-F" in options:
            argv.append("-e")
        if "--debug" in options:
            argv.append("-d")
        if "-p" in options:
            argv.append("-p")
        return argv

    def ssh_target(self):
        """ssh's host and port (``user@`` dropped; ``-p PORT`` of the ssh command)."""
        port = "22"
        for i, word in enumerate(self.words[1:], start=1):
            if word == "-p" and i + 1 < len(self.words):
                port = self.words[i + 1]
            elif word.startswith("-p") and word[2:].isdigit():
                port = word[2:]
        return self.host.rpartition("@")[2], port

    def no_route(self):
        """The transport finds no receiver at all (the host is unknown): its own
        message (OpenSSH ends its lines with CR LF) and exit status."""
        if self.is_ssh:
            self.sender("ssh: Could not resolve hostname "
                        f"{self.ssh_target()[0][:100]}: Name or service not known\r")
            return 255
        if not self.words:
            return 0
        if self.ssh_command:
            self.sender(f"sh: 1: exec: {self.words[0]}: not found")
        else:
            self.sender(f"sh: 1: {self.words[0]}: not found")
        return 127

    def refused(self):
        """The host is there, its receiver never answers."""
        if self.is_ssh:
            host, port = self.ssh_target()
            self.sender(f"ssh: connect to host {host} port {port}: Connection refused\r")
            return 255
        return 1

    def broken(self):
        """The transport's status when the link breaks mid-way (ssh: 255)."""
        return 255 if self.is_ssh else 1

    def truncated(self, what):
        self.sender("libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated "
                    f"reading {what} from migration receiver stream")

    def transport_exited(self, status):
        """migration_child_report: libxl_report_child_exitstatus at XTL_INFO."""
        if status:
            self.sender("libxl: info: libxl_exec.c:117:libxl_report_child_exitstatus: migration "
                        f"transport process [{self.pid}] exited with error status {status}")

    def no_banner(self, status):
        """migrate_do_preamble: the receiver's banner never came; exit(EXIT_FAILURE)."""
        self.truncated("banner")
        self.transport_exited(status)
        return Exit(1)


def set_domain(store, name, **changes):
    """Change a domain by name; returns its record (None when it has gone)."""
    with store.locked() as data:
        domain = data["domains"].get(name)
        if domain is not None:
            domain.update(changes)
    return domain


def rename_domain(data, old, new):
    """libxl_domain_rename within one store; False when ``new`` is taken."""
    if new in data["domains"] or new == "Domain-0":
        return False
    domain = data["domains"].pop(old)
    domain["name"] = new
    data["domains"][new] = domain
    return True


def resume_at_sender(store, name, flags):
    """libxl_domain_resume: the sender's domain runs on, as before."""
    token = None
    with store.locked() as data:
        domain = data["domains"].get(name)
        if domain is not None:
            domain["flags"] = flags
            token = resume_life(domain) if running(domain) else None
    if token:
        drive(store.dir, domain["uuid"], token)


def xl_migrate(store, args):
    options, params = xl_getopt(args, "hFC:s:epD", {"debug": False, "live": False,
                                                     "help": False}, "migrate", 2)
    settings = store.settings()
    data = store.load()
    domain = find(data, settings, params[0], "xl")
    host = params[1]
    name = domain["name"]
    # save_domain_core_begin: the config the receiver gets
    if "-C" in options:
        try:
            with open(options["-C"], "rb"):
                pass
        except FileNotFoundError:
            raise Exit(1, "unable to read overridden config file") from None
        except OSError as err:
            raise Exit(1, "libxl: error: libxl_utils.c:336:libxl_read_file_contents: failed to "
                          f"open {options['-C']}: {err.strerror}\n"
                          "unable to read overridden config file") from None
        sent = {**domain, **xl_domain_from(xl_parse_file(options["-C"], []), options["-C"]),
                "uuid": str(uuid.uuid4())}
    elif domain["id"] == 0:
        sent = {**domain, "type": "pv", "maxmem_mb": domain["memory_mb"], "kernel": None,
                "nics": [], "uuid": "00000000-0000-0000-0000-000000000000"}
    else:
        sent = copy.deepcopy(domain)
    config = xl_json(sent)["config"]
    if "-D" in options and domain["id"]:
        config["c_info"]["domid"] = domain["id"]
    else:
        del config["c_info"]["domid"]  # 0: libxl's JSON leaves it out
    optional = 4 + len(yajl(config) + "\n") + 1  # the length word, the JSON and its NUL
    link = Link(settings, options.get("-s", "ssh"), host)
    target_dir = settings.get("migrate_targets", {}).get(host)
    failure = (settings.get("migrate_failure") or {}).get(name)
    if failure is not None and failure not in MIGRATE_FAILURES:
        raise Exit(2, f"xen test double: migrate_failure {name}: {failure!r} is not one of "
                      f"{', '.join(MIGRATE_FAILURES)}")
    if not target_dir:
        raise link.no_banner(link.no_route())
    if failure == "receiver-unreachable":
        raise link.no_banner(link.refused())
    target = Store(target_dir)
    target.log_spawn(link.receiver_argv(options))
    there = target.settings()
    if not there.get("hypervisor", True):
        link.receiver(DEBIAN_NO_HYPERVISOR)
        raise link.no_banner(1)

    # The receiver's banner, then the header with the config (migrate_do_preamble).
    link.receiver("migration target: Ready to receive domain.")
    link.sender(f"Saving to migration stream new xl format (info 0x3/0x0/{optional})")
    link.receiver(
        "Loading new save file <incoming migration stream> (new xl fmt info "
        f"0x3/0x0/{optional})",
        " Savefile contains xl domain config in JSON format",
        "Parsing config from <saved>")
    if domain["id"] == 0 or not running(domain) and domain["flags"] != PAUSED:
        link.sender("migration sender: libxl_domain_suspend failed (rc=-3)")
        link.transport_exited(link.broken())
        link.sender("Migration failed, resuming at sender.")
        raise Exit(1)
    xc_type = "x86 PV" if sent["type"] == "pv" else "x86 HVM"
    link.sender(f"xc: info: Saving domain {domain['id']}, type {xc_type}")

    # The receiver creates NAME--incoming, paused, from that config.
    incoming = f"{sent['name']}--incoming"
    refused = None
    with target.locked() as data_there:
        if "-D" in options and domain["id"]:
            new_id = domain["id"]
            if any(d["id"] == new_id for d in data_there["domains"].values()):
                refused = [f"libxl: error: libxl_create.c:709:libxl__domain_make: Domain {new_id}:"
                           "domain creation fail: File exists",
                           "libxl: error: libxl_create.c:1294:initiate_domain_create: "
                           "cannot make domain: -3"]
        else:
            new_id = data_there["next_id"]
            data_there["next_id"] += 1
        if refused is None and (incoming in data_there["domains"] or incoming == "Domain-0"):
            refused = [f"libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain {new_id}:"
                       f"Domain with name \"{incoming}\" already exists.",
                       "libxl: error: libxl_create.c:1294:initiate_domain_create: "
                       f"Domain {new_id}:cannot make domain: -6"]
        if refused is None:
            arrived = copy.deepcopy(sent)
            arrived.update(
                name=incoming, id=new_id, flags=PAUSED, started=time.time(), toolstack="xl",
                monitor=not (link.ssh_command and ("-e" in options or "-F" in options)),
                console_log=console_log(there, incoming))
            data_there["domains"][incoming] = arrived
            data_there.get("moved", {}).pop(arrived["uuid"], None)
    if refused is not None:
        link.receiver(*refused, "migration target: Domain creation failed (code -3).")
        link.sender("migration sender: libxl_domain_suspend failed (rc=-3)")
        link.transport_exited(1)
        link.sender("Migration failed, resuming at sender.")
        raise Exit(1)
    console_write(arrived["console_log"])  # xenconsoled sees NAME--incoming appear
    store_mfn = 0x100000 | (zlib.crc32(arrived["uuid"].encode()) & 0xFFFF0)
    link.receiver(
        "xc: info: Found x86 PV domain from Xen 4.17" if xc_type == "x86 PV"
        else "xc: info: Found x86 HVM domain from Xen 4.17",
        "xc: info: Restoring domain",
        "xc: info: Restore successful",
        f"xc: info: XenStore: mfn {store_mfn:#x}, dom 0, evt 1",
        f"xc: info: Console: mfn {store_mfn - 1:#x}, dom 0, evt 2")
    link.step()

    # The live transfer ends with the sender's copy suspended; the receiver is ready.
    flags_before = domain["flags"]
    set_domain(store, name, flags=SUSPENDED)
    link.step()
    link.receiver("migration target: Transfer complete, requesting permission to start domain.")
    if failure == "incoming-left":
        # The link breaks as the receiver says "ready": it is left with its
        # paused copy (its write fails: exit), the sender resumes.
        set_domain(target, incoming, life=None if not arrived.get("life") else {
            **arrived["life"], "owner": None})
        link.truncated("ready message")
        link.transport_exited(link.broken())
        link.sender("Migration failed, resuming at sender.")
        resume_at_sender(store, name, flags_before)
        raise Exit(1)
    link.sender("migration sender: Target has acknowledged transfer.")
    away = f"{name}--migratedaway"
    with store.locked() as data:
        renamed = rename_domain(data, name, away)
    if not renamed:
        link.sender(f"libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain {domain['id']}:"
                    f"Domain with name \"{away}\" already exists.")
        link.receiver("libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream "
                      "truncated reading GO message from migration stream",
                      "migration target: Failure, destroying our copy.")
        with target.locked() as data_there:
            data_there["domains"].pop(incoming, None)
        link.receiver("migration target: Cleanup OK, granting sender permission to resume.")
        link.sender("Migration failed, resuming at sender.")
        resume_at_sender(store, name, flags_before)
        raise Exit(1)
    link.step()

    # GO: the receiver renames its copy NAME and unpauses it (unless -p reached it).
    link.sender("migration sender: Giving target permission to start.")
    link.receiver("migration target: Got permission, starting domain.")
    stay_paused = bool(link.ssh_command) and "-p" in options
    token = None
    with target.locked() as data_there:
        started = rename_domain(data_there, incoming, sent["name"])
        if started:
            arrived = data_there["domains"][sent["name"]]
            if stay_paused:
                arrived["paused_at"] = time.time()
                if arrived.get("life"):
                    arrived["life"]["owner"] = None
            else:
                arrived["flags"] = RUNNING
                token = resume_life(arrived)
                plan = boot_plan(there, sent["name"])
                if plan and plan["incoming"]:
                    console_write(arrived["console_log"],
                                  b"".join(transcript(plan["incoming"], sent["name"])))
    if not started:
        link.receiver(f"libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain {new_id}:"
                      f"Domain with name \"{sent['name']}\" already exists.")
        link.sender("migration sender: Target reports startup failure (status code 6).")
        link.receiver("migration target: Failure, destroying our copy.")
        with target.locked() as data_there:
            data_there["domains"].pop(incoming, None)
        link.receiver("migration target: Cleanup OK, granting sender permission to resume.")
        link.sender("migration sender: Trying to resume at our end.")
        with store.locked() as data:
            rename_domain(data, away, name)
        resume_at_sender(store, name, flags_before)
        link.sender("migration sender: Resumed OK.", "Migration failed due to problems at target.")
        raise Exit(1)
    if os.path.realpath(target_dir) != os.path.realpath(store.dir):
        with store.locked() as data:
            data.setdefault("moved", {})[domain["uuid"]] = target_dir
    link.receiver("migration target: Domain started successsfully.")
    drive(target_dir, arrived["uuid"], token)
    link.step()

    # The receiver's report, then the sender destroys its copy.
    if failure == "migratedaway-left":
        link.truncated("success/failure report message")
        link.sender(XL_MIGRATE_FAILED_BADLY)
        link.transport_exited(link.broken())
        raise Exit(1)
    link.sender("migration sender: Target reports successful startup.")
    with store.locked() as data:
        data["domains"].pop(away, None)
    link.sender("Migration successful.")
    return 0


def xl_main(store, args):
    settings = store.settings()
    if not settings.get("hypervisor", True):
        raise Exit(1, DEBIAN_NO_HYPERVISOR)
    if not args:
        raise Exit(1, "Usage xl [-vfNtT] <subcommand> [args]")
    command, rest = args[0], args[1:]
    if command == "list":
        return xl_list(store, rest)
    if command == "create":
        return xl_create(store, rest)
    if command == "migrate":
        return xl_migrate(store, rest)
    if command in ("shutdown", "reboot", "destroy", "domid", "pause", "unpause"):
        flags = [a for a in rest if a.startswith("-")]
        params = [a for a in rest if not a.startswith("-")]
        if not params:
            raise Exit(1, "You must specify -a or a domain id.\n" if command == "shutdown"
                       else f"'xl {command}' requires at least 1 argument.\n")
        if command == "shutdown":
            return graceful_shutdown(store, params[0], "xl", "-w" in flags or "--wait" in flags)
        if command == "reboot":
            return reboot(store, params[0], "xl")
        if command == "destroy":
            return destroy(store, params[0], "xl")
        if command in ("pause", "unpause"):
            return pause(store, params[0], "xl", command == "pause")
        print(find(store.load(), settings, params[0], "xl")["id"])
        return 0
    if command == "info":
        print("host                   : dom0\nrelease                : 6.1.0-50-amd64\n"
              "nr_cpus                : 2\ntotal_memory           : 3071\n"
              "free_memory            : 2014\nxen_version            : 4.17.5")
        return 0
    raise Exit(1, f"command not implemented: {command}")


# ---------------------------------------------------------------------------
# xm
# ---------------------------------------------------------------------------


def xm_row(domain):
    return "%-40s %5s %5d %5d %10s %8.1f" % (  # xm main.py's format
        domain["name"], domain["id"], domain["memory_mb"], domain["vcpus"], domain["flags"],
        cpu_time(domain))


def xm_list(store, args):
    params = [a for a in args if not a.startswith("-")]
    data = store.load()
    settings = store.settings()
    if params:
        chosen = [find(data, settings, p, "xm") for p in params]
    else:
        chosen = [dom0(settings)] + sorted(data["domains"].values(), key=lambda d: d["id"])
    print(XM_HEADER)
    for domain in chosen:
        print(xm_row(domain))
    return 0


def xm_find_config(name):
    """opts.load_defconfig: the name itself, then each entry of '.:/etc/xen'."""
    for directory in ("", ".", "/etc/xen"):
        candidate = os.path.join(directory, name) if directory else name
        if os.path.exists(candidate):
            print(f'Using config file "{candidate}".')
            return candidate
    raise Exit(1, f'Error: Cannot open config file "{name}"')


def xend_actions(get):
    """XendConfig: on_poweroff/on_reboot/on_crash (legacy and Xen API spellings),
    checked by _actions_sanity_check."""
    actions = {}
    for event, key, default in (("shutdown", "on_poweroff", "destroy"),
                                ("reboot", "on_reboot", "restart"),
                                ("crash", "on_crash", "restart")):
        value = str(get(key, None) or default)
        if key == "on_crash":
            value = XEND_ON_CRASH_LEGACY.get(value, value)  # convert_on_crash
        if value not in XEND_RESTART_MODES:
            raise Exit(1, f"Error: Invalid Configuration: Invalid event handling mode: {event}")
        actions[key] = value
    return actions


def xm_create(store, args):
    dryrun = False
    config_name = None
    overrides = {}
    for arg in args:
        if arg in ("-n", "--dryrun"):
            dryrun = True
        elif arg.startswith("-"):
            continue
        elif "=" in arg:
            key, _, val = arg.partition("=")
            overrides[key] = val
        else:
            config_name = arg
    if config_name is None:
        config_name = "xmdefconfig"
    path = xm_find_config(config_name)
    namespace = {}
    try:
        with open(path) as handle:
            code = compile(handle.read(), path, "exec")
        exec(code, {"__builtins__": __builtins__}, namespace)  # xm runs its configs
    except Exception as err:  # xm reports whatever the script raised
        raise Exit(1, f"Error: {err}") from None
    vals = {k: v for k, v in namespace.items() if type(v) in (str, list, int, float)}
    vals.update(overrides)

    def get(key, default=""):
        value = vals.get(key, default)
        return default if value is None else value

    kernel = get("kernel", None)
    if not kernel and not get("bootloader", None):
        raise Exit(1, "Error: No kernel specified")
    try:
        memory = int(get("memory", 128))
        vcpus = int(get("vcpus", 1))
    except (TypeError, ValueError) as err:
        raise Exit(1, f"Error: Invalid value: {err}") from None
    vifs = get("vif", [])
    for spec in vifs:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key = part.split("=", 1)[0].strip()
            if "=" not in part or key not in XM_VIF_KEYS:
                raise Exit(1, f"Error: Invalid vif specifier: {spec}")
    # create.py: preprocess_ip, preprocess_nfs
    dhcp = get("dhcp", "off")
    nfs_server = get("nfs_server", None)
    nfs_root = get("nfs_root", None)
    extra = get("extra", "")
    if get("ip") or dhcp != "off":
        cmdline_ip = ":".join([get("ip"), nfs_server or "1.2.3.4", get("gateway"),
                               get("netmask"), get("hostname"), get("interface", "eth0"), dhcp])
    else:
        cmdline_ip = ""
    if nfs_root:
        if not nfs_server:
            raise Exit(1, "Error: Must set nfs root and nfs server")
        extra = "nfsroot=" + nfs_server + ":" + nfs_root + " " + extra
    # xend XendConfig.update_with_image_sxp
    kernel_args = extra
    if cmdline_ip and not re.search(r"ip=[^ ]+", kernel_args):
        kernel_args = f"ip={cmdline_ip} " + kernel_args
    root = get("root")
    if root.startswith("root="):
        root = root[len("root="):]
    if root and not re.search(r"root=", kernel_args):
        kernel_args = f"root={root} " + kernel_args
    name = get("name", None)
    if not name or not NAME_RE.match(name):
        raise Exit(1, f"Error: Invalid domain name: {name!r}")
    if dryrun:
        print(f"(vm (name {name}) (memory {memory}) (vcpus {vcpus}) (image (linux "
              f"(kernel {kernel}) (args '{kernel_args}'))))")
        return 0
    actions = xend_actions(get)
    settings = store.settings()
    plan = boot_plan(settings, name)
    with store.locked() as data:
        if name in data["domains"] or name == "Domain-0":
            raise Exit(1, f"Error: Domain '{name}' already exists with ID "
                          f"'{data['domains'][name]['id'] if name in data['domains'] else 0}'")
        ramdisk = get("ramdisk")
        if not os.path.isfile(kernel):
            raise Exit(1, f"Error: Kernel image does not exist: {kernel}")
        if ramdisk and not os.path.isfile(ramdisk):
            raise Exit(1, f"Error: Kernel ramdisk does not exist: {ramdisk}")
        domid = data["next_id"]
        data["next_id"] += 1
        nics = [{"devid": i, "mac": mac_for(name, i), "bridge": "xenbr0", "nictype": "vif"}
                for i in range(len(vifs))]
        domain = {
            "name": name, "id": domid, "type": "pv", "memory_mb": memory, "maxmem_mb": memory,
            "vcpus": vcpus, "kernel": os.path.abspath(kernel),
            "ramdisk": os.path.abspath(ramdisk) if ramdisk else None, "cmdline": kernel_args,
            "nics": nics, **actions, "uuid": str(uuid.uuid4()), "flags": RUNNING,
            "started": time.time(), "toolstack": "xm", "config_path": os.path.abspath(path),
            "console_log": console_log(settings, name),
        }
        console_write(domain["console_log"])
        token = begin_life(domain, plan)
        data["domains"][name] = domain
    print(f"Started domain {name} (id={domid})")
    drive(store.dir, domain["uuid"], token)
    return 0


def xm_migrate(store, name, host):
    """xend's domain_migrate, as the double has always done it: the guest moves
    under its own name; its console goes on in the target's guest-NAME.log."""
    settings = store.settings()
    data = store.load()
    domain = find(data, settings, name, "xm")
    if domain["id"] == 0:
        raise Exit(1, f"Error: Cannot migrate privileged domain {name}")
    target_dir = settings.get("migrate_targets", {}).get(host)
    if not target_dir:
        raise Exit(1, "Error: can't connect: Name or service not known")
    target = Store(target_dir)
    there = target.settings()
    with target.locked() as data_there:
        if domain["name"] in data_there["domains"]:
            raise Exit(1, "migration target: Domain with name already exists")
        entry = copy.deepcopy(data["domains"][domain["name"]])
        entry.update(id=data_there["next_id"], started=time.time(),
                     console_log=console_log(there, entry["name"]))
        data_there["next_id"] += 1
        data_there["domains"][entry["name"]] = entry
        data_there.get("moved", {}).pop(entry["uuid"], None)
        token = resume_life(entry) if running(entry) else None
    console_write(entry["console_log"])
    with store.locked() as data:
        data["domains"].pop(domain["name"], None)
        if os.path.realpath(target_dir) != os.path.realpath(store.dir):
            data.setdefault("moved", {})[entry["uuid"]] = target_dir
    drive(target_dir, entry["uuid"], token)
    return 0


def xm_main(store, args):
    settings = store.settings()
    if not settings.get("xend", True) or not settings.get("hypervisor", True):
        raise Exit(1, XEND_DOWN)
    if not args:
        raise Exit(1, "Usage: xm <subcommand> [args]")
    command, rest = args[0], args[1:]
    if command == "list":
        return xm_list(store, rest)
    if command == "create":
        return xm_create(store, rest)
    flags = [a for a in rest if a.startswith("-")]
    params = [a for a in rest if not a.startswith("-")]
    if command in ("shutdown", "destroy", "reboot", "pause", "unpause") and not params:
        raise Exit(1, "Error: No domain parameter given")
    if command == "shutdown":
        return graceful_shutdown(store, params[0], "xm", "-w" in flags or "--wait" in flags)
    if command == "destroy":
        return destroy(store, params[0], "xm")
    if command == "reboot":
        return reboot(store, params[0], "xm")
    if command in ("pause", "unpause"):
        return pause(store, params[0], "xm", command == "pause")
    if command == "migrate":
        if len(params) < 2:
            raise Exit(1, "Error: 'xm migrate' requires between 2 and 8 arguments.")
        return xm_migrate(store, params[0], params[1])
    raise Exit(1, f"Error: Subcommand {command} not found!")


def main(argv):
    if len(argv) == 5 and argv[1] == GUEST_PROCESS:
        return guest_process(*argv[2:])
    tool = os.path.basename(argv[0])
    directory = os.environ.get("XEN_DOUBLE_DIR")
    if not directory or not os.path.isdir(directory):
        print("xen test double: XEN_DOUBLE_DIR must name an existing directory",
              file=sys.stderr)
        return 2
    store = Store(directory)
    store.log_spawn([tool, *argv[1:]])
    try:
        if tool == "xl":
            return xl_main(store, argv[1:])
        if tool == "xm":
            return xm_main(store, argv[1:])
        raise Exit(2, f"xen test double: called as {tool!r}, not xl or xm")
    except Exit as stop:
        if stop.message:
            print(stop.message, file=sys.stderr)
        return stop.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
