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
  ``migrate_targets`` ({host: state dir of the receiving dom0}),
  ``dom0_memory_mb``, ``dom0_vcpus``;
* ``spawn.log``     one JSON array per invocation: ``["xl", "list"]``.

Output layouts, messages and exit codes follow the real tools (xl 4.17 as on
Debian 12, xm/xend of Xen <= 4.4): the ``xl list`` header with its TABs, the
``xl list -l`` JSON shape (booleans as "True"/"False" strings), xl's silence
about xm-only keys (nfs_server, nfs_root, dhcp, ip...), xl's warning on
Python-looking configs, xm's command line synthesis (ip=..., nfsroot=...).
It reads configs with its own small parsers and never imports the formula.
"""

import fcntl
import json
import os
import re
import sys
import time
import uuid
import zlib
from contextlib import contextmanager

NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
DEBIAN_NO_HYPERVISOR = "ERROR:  Can't find hypervisor information in sysfs!"
XEND_DOWN = "Error: Unable to connect to xend: No such file or directory. Is xend running?"
XM_VIF_KEYS = {"backend", "bridge", "ip", "mac", "script", "type", "vifname", "rate", "model",
               "accel", "policy", "label"}
XL_HEADER = "Name                                        ID   Mem VCPUs\tState\tTime(s)"
# The real tools' own format strings, kept verbatim.
XM_HEADER = "%-40s %5s %5s %5s %10s %9s" % (
    "Name", "ID", "Mem", "VCPUs", "State", "Time(s)")


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
# xl
# ---------------------------------------------------------------------------


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
        "nics": domain["nics"],
        "on_reboot": domain["on_reboot"],
        "on_crash": domain["on_crash"],
        "on_soft_reset": "soft_reset",
    }
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
    return {
        "name": name, "type": dom_type, "memory_mb": memory, "maxmem_mb": maxmem,
        "vcpus": vcpus, "kernel": xl_string(settings, "kernel", source),
        "ramdisk": xl_string(settings, "ramdisk", source), "cmdline": cmdline, "nics": nics,
        "on_reboot": xl_string(settings, "on_reboot", source) or "restart",
        "on_crash": xl_string(settings, "on_crash", source) or "destroy",
        "on_poweroff": xl_string(settings, "on_poweroff", source) or "destroy",
    }


def xl_create(store, args):
    dryrun = quiet = False
    path = None
    extra_lines = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-n", "--dryrun"):
            dryrun = True
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-p", "-c", "-e", "-V", "-d", "-F"):
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
    with store.locked() as data:
        domid = data["next_id"]
        data["next_id"] += 1
        if wanted["name"] in data["domains"] or wanted["name"] == "Domain-0":
            raise Exit(3, "\n".join([
                "libxl: error: libxl_create.c:705:libxl__domain_make: Domain with name "
                f"\"{wanted['name']}\" already exists.",
                "libxl: error: libxl_create.c:1262:initiate_domain_create: cannot make "
                "domain: -6",
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
        data["domains"][wanted["name"]] = {
            **wanted, "id": domid, "uuid": str(uuid.uuid4()), "flags": "-b----",
            "started": time.time(), "toolstack": "xl", "config_path": path,
        }
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
    with store.locked() as data:
        data["domains"].pop(domain["name"], None)
    if wait:
        if tool == "xl":
            print("Waiting for 1 domains", file=sys.stderr)
            print(f"Domain {domain['id']} has been shut down, reason code 0", file=sys.stderr)
        else:
            print(f"Domain {domain['name']} terminated\nAll domains terminated")
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
    with store.locked() as data:
        entry = data["domains"][domain["name"]]
        entry["id"] = data["next_id"]
        data["next_id"] += 1
        entry["started"] = time.time()
    return 0


def migrate(store, name, host, tool):
    settings = store.settings()
    data = store.load()
    domain = find(data, settings, name, tool)
    target_dir = settings.get("migrate_targets", {}).get(host)
    if not target_dir:
        if tool == "xl":
            raise Exit(1, f"ssh: Could not resolve hostname {host}: Name or service not known\n"
                          "xl migrate: receiver did not respond (rc=-3)")
        raise Exit(1, "Error: can't connect: Name or service not known")
    target = Store(target_dir)
    with target.locked() as there:
        if domain["name"] in there["domains"]:
            raise Exit(1, "migration target: Domain with name already exists")
        entry = dict(data["domains"][domain["name"]])
        entry["id"] = there["next_id"]
        there["next_id"] += 1
        there["domains"][entry["name"]] = entry
    with store.locked() as data:
        data["domains"].pop(domain["name"], None)
    if tool == "xl":
        print("\n".join([
            "migration target: Ready to receive domain.",
            "Saving to migration stream new xl format (info 0x3/0x0/1326)",
            "Loading new save file <incoming migration stream> (new xl fmt info 0x3/0x0/1326)",
            " Savefile contains xl domain config in JSON format",
            "Parsing config from <saved>",
            "migration target: Transfer complete, requesting permission to start domain.",
            "migration sender: Target has acknowledged transfer.",
            "migration sender: Giving target permission to start.",
            "migration target: Got permission, starting domain.",
            "migration target: Domain started successsfully.",
            "migration sender: Target reports successful startup.",
            "Migration successful.",
        ]), file=sys.stderr)
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
    if command in ("shutdown", "reboot", "destroy", "migrate", "domid"):
        flags = [a for a in rest if a.startswith("-")]
        params = [a for a in rest if not a.startswith("-")]
        if command == "migrate":
            params = [a for a in rest if a not in ("--live", "-C", "--debug")]
        if not params:
            raise Exit(1, "You must specify -a or a domain id.\n" if command == "shutdown"
                       else f"'xl {command}' requires at least 1 argument.\n")
        if command == "shutdown":
            return graceful_shutdown(store, params[0], "xl", "-w" in flags or "--wait" in flags)
        if command == "reboot":
            return reboot(store, params[0], "xl")
        if command == "destroy":
            return destroy(store, params[0], "xl")
        if command == "domid":
            print(find(store.load(), settings, params[0], "xl")["id"])
            return 0
        if len(params) < 2:
            raise Exit(1, "'xl migrate' requires at least 2 arguments.\n")
        return migrate(store, params[0], params[1], "xl")
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
        data["domains"][name] = {
            "name": name, "id": domid, "type": "pv", "memory_mb": memory, "maxmem_mb": memory,
            "vcpus": vcpus, "kernel": os.path.abspath(kernel),
            "ramdisk": os.path.abspath(ramdisk) if ramdisk else None, "cmdline": kernel_args,
            "nics": nics, "on_reboot": "restart", "on_crash": "restart",
            "on_poweroff": "destroy", "uuid": str(uuid.uuid4()), "flags": "-b----",
            "started": time.time(), "toolstack": "xm", "config_path": os.path.abspath(path),
        }
    print(f"Started domain {name} (id={domid})")
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
    if command in ("shutdown", "destroy", "reboot") and not params:
        raise Exit(1, "Error: No domain parameter given")
    if command == "shutdown":
        return graceful_shutdown(store, params[0], "xm", "-w" in flags or "--wait" in flags)
    if command == "destroy":
        return destroy(store, params[0], "xm")
    if command == "reboot":
        return reboot(store, params[0], "xm")
    if command == "migrate":
        if len(params) < 2:
            raise Exit(1, "Error: 'xm migrate' requires between 2 and 8 arguments.")
        return migrate(store, params[0], params[1], "xm")
    raise Exit(1, f"Error: Subcommand {command} not found!")


def main(argv):
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
