"""Issue 13 in the real Xen: every boot carries its proof, or its failure
with the reason, judged from step 1's orchestration (``onehost.Steps``).

* ``nfsguest``: its ``xen_guest.running`` comment quotes the console line of
  its root mounted over NFS (its ``boot_marker``, the guest's own
  ``XEN-NFSROOT-GUEST-ROOT`` line), and the orchestration's mounted step,
  ``nfs_export.mounted`` on the NFS server, confirms the mount from the
  server's side (rpc.mountd's records);
* ``stockkernel``: the Debian kernel without an initramfs is refused before
  anything is written or booted, the comment naming ``CONFIG_ROOT_NFS`` and
  the kernel's config file; no domain, no console log, no config;
* ``noexport``: its root is not exported to it; it boots, its initramfs's
  mount is refused, and the state fails within its ``boot_timeout`` quoting
  the console's lines; the guest halts (``panic=0``) and Xen destroys it;
* ``nfsguest``'s root is confined on the server: mounted onto itself
  ``nosuid,nodev`` (findmnt), kept in the server's fstab, and a set-id root
  copy of ``id`` in it runs as the unprivileged user who starts it there,
  while the guest's own mount of that root (its console's root line) is not
  ``nosuid``: the guest keeps its set-id programs.
"""

import re

import guestlog
import saltout
from guests import (
    GUEST,
    GUEST_ADDRESS,
    GUEST_ROOT,
    REFUSED_GUEST,
    SERVER_ADDRESS,
    UNMOUNTED_GUEST,
    domains,
)

from xen_nfsroot_lib.console import log_path

# noexport's boot_timeout, as lab/pillar gives it.
UNMOUNTED_BOOT_TIMEOUT = 400
# How long the failed guest may take to halt once its failure is seen.
HALT_WAIT = 300


class Proofs:
    """The proofs, on a ``runner.Lab`` (its salt CLI, results and master)
    and step 1's ``orchestration`` ({state id: return})."""

    def __init__(self, lab, error, orchestration):
        self.lab = lab
        self.error = error
        self.orchestration = orchestration
        self.minion = lab.dom0.minion
        self.proof = lab.results.setdefault("proof", {})
        self.errors = []

    def guest_state(self, guest):
        """The xen_guest state of ``guest`` in the boot step of step 1's
        orchestration, as its dom0 returned it."""
        boot = self.orchestration.get("xen_nfsroot-boot")
        if boot is None:
            raise self.error("the orchestration has no boot step")
        found = saltout.minion_states(boot, self.minion).get(f"xen_nfsroot-guest-{guest}")
        if found is None:
            raise self.error(f"the boot step of {guest} returned no xen_guest state: "
                             f"{str(boot)[:400]}")
        return found

    def booted(self):
        """The positive boot: the state quotes the console's root mount."""
        ret = self.guest_state(GUEST)
        comment = ret.get("comment") or ""
        self.proof["booted"] = comment
        wanted = f"{guestlog.ROOT} {SERVER_ADDRESS}:{GUEST_ROOT} / nfs "
        if ret.get("result") is not True or "its console shows it on its NFS root" not in (
                comment) or wanted not in comment:
            self.errors.append(f"{GUEST}'s boot does not quote {wanted!r}: {ret!r}")

    def mounted(self):
        """The NFS server confirms the mount: the orchestration's mounted
        step (its return, without changes, is read from its job)."""
        step = self.orchestration.get(f"xen_nfsroot-mounted-{GUEST}") or {}
        jid = step.get("__jid__")
        if not jid:
            self.errors.append(f"no job of the mounted step: {str(step)[:300]}")
            return
        _, job = self.lab.cli.salt_run("mounted-job", "jobs.lookup_jid", jid)
        states = job.get(self.minion) if isinstance(job, dict) else None
        ret = saltout.by_id(states if isinstance(states, dict) else {}).get(
            f"xen_nfsroot-mounted-{GUEST}")
        if ret is None:
            self.errors.append(f"job {jid} of the mounted step has no nfs_export.mounted: "
                               f"{str(job)[:300]}")
            return
        self.proof["mounted"] = ret.get("comment")
        if ret.get("result") is not True or GUEST_ADDRESS not in (ret.get("comment") or "") or (
                ret.get("warnings")):
            self.errors.append(f"the server does not confirm {GUEST}'s mount: {ret!r}")

    def refused(self):
        """The refused kernel: named, with its config file; nothing done."""
        ret = self.guest_state(REFUSED_GUEST)
        comment = ret.get("comment") or ""
        self.proof["refused"] = comment
        config = f"/boot/config-{self.lab.master.kernel_release()}"
        if ret.get("result") is not False or ret.get("changes") or "CONFIG_ROOT_NFS" not in (
                comment) or config not in comment:
            self.errors.append(f"{REFUSED_GUEST} is not refused naming CONFIG_ROOT_NFS and "
                               f"{config}: {ret!r}")

    def caught(self):
        """The failed mount: caught within boot_timeout, the console quoted."""
        ret = self.guest_state(UNMOUNTED_GUEST)
        comment = ret.get("comment") or ""
        self.proof["caught"] = comment
        seconds = re.search(r"after (\d+(?:\.\d+)?) s \(console ", comment)
        if ret.get("result") is not False or "failed to come up on its NFS root" not in (
                comment) or "Permission denied" not in comment:
            self.errors.append(f"{UNMOUNTED_GUEST}'s failed mount is not caught: {ret!r}")
        elif not seconds or float(seconds.group(1)) > UNMOUNTED_BOOT_TIMEOUT:
            self.errors.append(f"{UNMOUNTED_GUEST}'s failure is not seen within its boot_timeout "
                               f"({UNMOUNTED_BOOT_TIMEOUT} s): {comment}")
        else:
            self.lab.results.timing("failed_mount_caught_after", float(seconds.group(1)))

    def leftovers(self):
        """Neither domain is left: the refused one never existed (no console
        log: xenconsoled opens one as soon as a domain appears; no config),
        the failed one halted once its initramfs gave up."""
        log = log_path
        found = self.lab.cli.facts("after-proofs", {
            "refused-config": f"test -e /etc/xen/{REFUSED_GUEST}.cfg; echo $?",
            "refused-console": f"test -e {log(REFUSED_GUEST)}; echo $?",
            "caught-gone": (f"i=0; while xl domid {UNMOUNTED_GUEST} >/dev/null 2>&1; do "
                            f"i=$((i + 1)); [ $i -lt {HALT_WAIT} ] || exit 1; sleep 1; done; "
                            "echo $i"),
            "caught-console": f"cat {log(UNMOUNTED_GUEST)}",
            "xl-list": "xl list",
            "root-mount": f"findmnt -n -o VFS-OPTIONS --mountpoint {GUEST_ROOT}",
            "root-fstab": f"findmnt --fstab -n -o SOURCE,FSTYPE,OPTIONS --target {GUEST_ROOT}",
            "root-suid": (f"probe={GUEST_ROOT}/tmp/lab-suid-id; cp /usr/bin/id $probe && "
                          "chmod 4755 $probe && setpriv --reuid=65534 --regid=65534 "
                          "--clear-groups $probe -u; rc=$?; rm -f $probe; exit $rc")})
        self.confined(found)
        running = domains(found["xl-list"]["stdout"])
        if REFUSED_GUEST in running or UNMOUNTED_GUEST in running:
            self.errors.append(f"xl list shows {REFUSED_GUEST} or {UNMOUNTED_GUEST}: {running}")
        if found["refused-console"]["stdout"].strip() != "1":
            self.errors.append(f"{log(REFUSED_GUEST)} exists: the refused guest was created")
        if found["refused-config"]["stdout"].strip() != "1":
            self.errors.append(f"/etc/xen/{REFUSED_GUEST}.cfg was written for a refused guest")
        if found["caught-gone"]["retcode"] != 0:
            self.errors.append(f"{UNMOUNTED_GUEST} still runs {HALT_WAIT} s after its failure")
        console = found["caught-console"]["stdout"]
        if "Permission denied" not in console:
            lines = "\n".join(console.splitlines()[-20:])
            self.errors.append(f"{log(UNMOUNTED_GUEST)} shows no refused mount:\n{lines}")
        self.lab.specimen(f"console-{UNMOUNTED_GUEST}.log", console)
        return running

    def confined(self, found):
        """The guest's root on the server: nosuid,nodev, so a local user there
        gets no root from the guest's set-id programs; the guest's own mount
        is not nosuid."""
        options = set(found["root-mount"]["stdout"].strip().split(","))
        fstab_line = found["root-fstab"]["stdout"].split()
        suid = found["root-suid"]["stdout"].strip()
        self.proof["confined"] = {"options": sorted(options), "fstab": fstab_line,
                                  "set-id run by uid 65534 as": suid}
        if not {"nosuid", "nodev"} <= options:
            self.errors.append(f"{GUEST_ROOT} is not mounted nosuid,nodev on the server: "
                               f"{found['root-mount']!r}")
        if fstab_line != [GUEST_ROOT, "none", "bind,nosuid,nodev"]:
            self.errors.append(f"the server's fstab does not keep {GUEST_ROOT}'s bind mount: "
                               f"{found['root-fstab']!r}")
        if suid != "65534":
            self.errors.append(f"a set-id root program in {GUEST_ROOT} ran as {suid!r} for an "
                               f"unprivileged user on the server: {found['root-suid']!r}")
        guest_root_line = self.proof.get("booted") or ""
        if re.search(rf"{re.escape(GUEST_ROOT)} / nfs \S*nosuid", guest_root_line):
            self.errors.append(f"{GUEST}'s own root mount is nosuid: {guest_root_line}")

    def step(self):
        if not self.orchestration:
            raise self.error("step 1 did not pass")
        self.booted()
        self.mounted()
        self.refused()
        self.caught()
        running = self.leftovers()
        for key in ("booted", "mounted", "refused", "caught", "confined"):
            self.lab.say(f"proof, {key}: {self.proof.get(key)}")
        self.lab.results.save()
        if self.errors:
            raise self.error("; ".join(self.errors))
        self.lab.say(f"xl list: {running} (never {REFUSED_GUEST}; {UNMOUNTED_GUEST} halted)")
