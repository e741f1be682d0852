"""
A guest's boot, planned: what the ``xen_guest`` states will do, what they
say, and what a boot depends on.

The states read the live system (the config file, the domain's state, the
kernel's verdict, the console) and act; here is the pure part in between:
the change of the config file, the steps of a ``running`` state in the
future tense (``test=True``) and the past, the fingerprint that keys the
memory of a failed boot, the refusals before a boot and the verdict of a
boot's console in words.
"""

import difflib
import hashlib
import os

from xen_nfsroot_lib import console, values
from xen_nfsroot_lib.placement import RUNNING

#: Domain states Xen keeps after the guest stopped: destroyed before a boot.
DEAD = ("shutdown", "crashed")
#: A domain still up whose boot failed (``on_crash: preserve`` kept it):
#: destroyed before it is booted again.
FAILED = "failed"


def sentence(text):
    """The text with its first letter in upper case."""
    return text[:1].upper() + text[1:]


def check_options(options, me):
    """The boot options of a ``running`` state (``boot_timeout``,
    ``boot_marker``, ``console_dir``, ``other_dom0s``) checked, on the dom0
    ``me``: a copy, ``boot_timeout`` defaulted to :data:`console.BOOT_TIMEOUT`
    and ``other_dom0s`` to ``[]``."""
    options = dict(options)
    if options["boot_timeout"] is None:
        options["boot_timeout"] = console.BOOT_TIMEOUT
    options["boot_timeout"] = console.check_boot_timeout(options["boot_timeout"])
    options["boot_marker"] = console.check_boot_marker(options["boot_marker"])
    if options["console_dir"] is not None:
        console.check_console_dir(options["console_dir"])
    others = options["other_dom0s"]
    if others is not None and (isinstance(others, str) or not isinstance(others, (list, tuple))
                               or not all(isinstance(o, str) and o for o in others)):
        raise values.invalid("other_dom0s", others, "is not a list of minion ids")
    if others is not None and me in others:
        raise values.invalid("other_dom0s", others, f"holds this dom0 ({me}) itself")
    options["other_dom0s"] = list(others or [])
    return options


def _diff(path, old, new):
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), path, path
        )
    )


def config_change(path, current, wanted):
    """The change of the config file at ``path`` from ``current`` (None: no
    file) to ``wanted``: ``{path, action: created|updated[, diff]}``, or None."""
    if current is None:
        return {"path": path, "action": "created"}
    if current != wanted:
        return {"path": path, "action": "updated", "diff": _diff(path, current, wanted)}
    return None


def plan(name, domain_state, config, restart_on_change, force_restart):
    """What a ``running`` state does to a domain in ``domain_state`` with the
    config change ``config``: (changes, future steps, past steps, note).
    A running guest is restarted when forced (a watched change) or when its
    config changed and ``restart_on_change``."""
    live = domain_state in RUNNING
    restart = live and (force_restart or (config is not None and restart_on_change))
    changes = {}
    future, past = [], []
    if config:
        changes["config"] = config
        verb = {"created": "create", "updated": "update"}[config["action"]]
        future.append(f"{verb} the config {config['path']}")
        past.append(f"{config['action']} the config {config['path']}")
    if not live:
        changes["guest"] = {"old": domain_state, "new": "running"}
        if domain_state in (*DEAD, FAILED):
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


def fingerprint(wanted, kernel, ramdisk):
    """What a boot depends on: the config's text and the kernel's and
    ramdisk's files (path, size, mtime)."""
    digest = hashlib.sha256(wanted.encode("utf-8"))
    for path in (kernel, ramdisk):
        if path:
            info = os.stat(path)
            digest.update(f"\0{path}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.hexdigest()


def kernel_question(kernel, settings):
    """What the kernel check of a guest asks (the arguments of
    ``guest_kernel.check`` and the key of its answer in a run):
    ``(kernel, ramdisk, dhcp, guest_type)``."""
    network = settings.get("network")
    dhcp = network == "dhcp" or (network is None and settings.get("dhcp") != "off") or (
        isinstance(network, dict) and bool(network.get("dhcp")))
    return kernel, settings.get("ramdisk"), dhcp, settings.get("guest_type") or "pv"


def failed_before(name, failure, fingerprint_, retry, still_running=False):
    """Why a boot is not tried again: it failed before (``failure``, as
    ``guest_console.last_failure`` keeps it) with the same fingerprint, and
    ``retry`` is not set; or None. ``still_running``: the failed domain is
    still up (kept for inspection)."""
    if failure and failure.get("fingerprint") == fingerprint_ and not retry:
        kept = (" Its domain still runs, kept for inspection (on_crash: preserve)."
                if still_running else "")
        return (f"{name} failed to boot with this config and kernel ({failure['time']}): "
                f"{failure['comment']}.{kept} Not booting it again until its config, kernel or "
                "export changes (or retry: True)")
    return None


def failed_domain(name, on_crash, error=None):
    """What the comment adds of a failed boot's domain that was still up:
    kept (``on_crash: preserve``), destroyed, or not destroyed (``error``)."""
    if on_crash == "preserve":
        return f"; {name} is kept running for inspection (on_crash: preserve)"
    if error is not None:
        return f"; it still runs: destroying it failed: {error}"
    return (f"; destroyed it (on_crash: {on_crash}; on_crash: preserve keeps a failed guest "
            "for inspection)")


def record_note(failure, test):
    """What a run says of a failure record it could not read
    (``{"invalid": why}``), or ``""``."""
    if not failure or "invalid" not in failure:
        return ""
    verb = "would be replaced" if test else "removed"
    return f" (the record of its last failed boot was not readable: {failure['invalid']}; {verb})"


def kernel_refusal(name, kernel, verdict):
    """Why the kernel is refused (``guest_kernel.check``'s verdict), or None."""
    if verdict["checked"] and verdict["ok"] is False:
        return (f"The kernel {kernel} of {name} cannot mount an NFS root: "
                + "; ".join(verdict["problems"]))
    return None


def kernel_note(verdict):
    """What the comment adds about a kernel that could not be checked."""
    return "" if verdict["checked"] else f" ({verdict['reason']})"


def proof(seen, log):
    """A boot's console verdict (``guest_console.watch``'s answer) in words:
    (the failure, or None, and what the comment adds)."""
    if seen["verdict"] == "failed":
        lines = " | ".join(seen["lines"])
        reason = f"{seen['evidence']} after {seen['seconds']} s (console {log}: {lines})"
        return reason, f", but it failed to come up on its NFS root: {reason}"
    if seen["verdict"] == "mounted":
        return None, (f"; its console shows it on its NFS root after {seen['seconds']} s: "
                      f"{seen['evidence']}")
    if seen["verdict"] == "alive":
        return None, (f"; it still runs after {seen['seconds']} s but its console "
                      f"({log}) has not shown its root mounted")
    return None, (f"; it still runs after {seen['seconds']} s; the root mount was not "
                  f"seen (no console log {log}: is xenconsoled logging guests?)")


def stop_prediction(name, domain_state, timeout):
    """What stopping a domain in ``domain_state`` would do (``test=True``)."""
    if domain_state in RUNNING and domain_state != "paused":
        return f"Would shut down {name} (destroying it if still up after {timeout} s)"
    return f"Would destroy the {domain_state} domain {name}"


def stop_comment(name, domain_state, timeout, destroyed):
    """What stopping a domain in ``domain_state`` did."""
    if not destroyed:
        return f"Shut down {name}"
    if domain_state in RUNNING and domain_state != "paused":
        return f"{name} did not shut down within {timeout} s: destroyed it"
    return f"Destroyed the {domain_state} domain {name}"


# ---------------------------------------------------------------------------
# Parallel boots: the reads they share, made once before they fork
# ---------------------------------------------------------------------------


def shared_questions(boots):
    """What the boots of a run read alike, from their ``xen_guest.running``
    arguments: ``{"kernels": [[kernel, ramdisk, dhcp, guest_type], ...],
    "dom0s": [[minion id, ...], ...], "toolstacks": [...]}``, each once."""
    shared = {"kernels": [], "dom0s": [], "toolstacks": []}

    def add(key, value):
        if value not in shared[key]:
            shared[key].append(value)

    for args in boots:
        if args.get("check_kernel", True) and args.get("nfs_root"):
            add("kernels", list(kernel_question(args["kernel"], args)))
        if args.get("other_dom0s"):
            add("dom0s", sorted(args["other_dom0s"]))
        add("toolstacks", args.get("toolstack"))
    return shared


def shared_reads(kernels, dom0s, toolstacks):
    """The reads of ``xen_boots.prepared``: ``(what, function, args, kwargs)``
    each, for the execution module function that keeps its answer for the
    run."""
    reads = [("the domain list", "xm.list_domains", [], {"toolstack": toolstack})
             for toolstack in toolstacks or [None]]
    reads += [(f"the mine of {', '.join(others)}", "xm.mined_domains", [others], {})
              for others in values.check_list(dom0s or [], "dom0s")]
    for question in values.check_list(kernels or [], "kernels"):
        if not isinstance(question, (list, tuple)) or len(question) != 4:
            raise values.invalid("kernels", question,
                                 "must be [kernel, ramdisk, dhcp, guest_type]")
        reads.append((f"the kernel {question[0]}", "guest_kernel.check", [question[0]],
                      dict(zip(("ramdisk", "dhcp", "guest_type"), question[1:], strict=True))))
    return reads
