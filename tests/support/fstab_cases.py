"""Guest fstabs: the project's own (tests/data/fstab), what ``domu_fstab.nfs_root``
does to each, and how to tell what became of every line.

``FSTAB_CASES[name]`` is ``(kinds, old_root, disabled)``: the kind of each
line as ``xen_nfsroot_lib.fstab.parse`` reads it, one letter a line (``e`` entry, ``d``
disabled by this formula, ``c`` comment, ``b`` blank, ``o`` other); the root
line it replaces (None: the file needs no change; ``""``: there is no root
line, one is added); and the other lines it comments out, fields separated by
single spaces. ``CORPUS_FSTAB_EXPECTED`` holds the same for the real-world
files of ``--corpus`` (by file name, without ``kinds``).
"""

from typing import NamedTuple, Optional

from tests.support import DATA

FSTAB_FILES = sorted((DATA / "fstab").glob("*.fstab"))
MARKER = "#xen-nfsroot# "
NFS_ROOT_LINE = "/dev/nfs / nfs defaults 0 0"


class FstabCase(NamedTuple):
    kinds: str
    old_root: Optional[str]
    disabled: list


FSTAB_CASES = {
    "already-converted.fstab": FstabCase("cdeed", None, []),
    "crlf-line-endings.fstab": FstabCase(
        "ceeee", "/dev/sda1 / ext3 defaults 1 1", ["/dev/sda2 swap swap defaults 0 0"]
    ),
    "disk-root-and-swap.fstab": FstabCase(
        "ceeeeee", "/dev/xvda1 / ext4 errors=remount-ro 0 1", ["/dev/xvda2 none swap sw 0 0"]
    ),
    "missing-final-newline.fstab": FstabCase(
        "ceeee", "/dev/xvda1 / ext4 defaults 1 1", ["/dev/xvda3 swap swap defaults 0 0"]
    ),
    "network-and-bind-mounts.fstab": FstabCase(
        "cbeeeebebeeeee", "", ["LABEL=scratch /scratch auto defaults 0 0"]
    ),
    "nfs-root-already.fstab": FstabCase("ceeeee", None, []),
    "nfs-root-other-options.fstab": FstabCase("ceebcece", "/dev/nfs / nfs tcp,nolock 0 0", []),
    "nfs-server-root-line.fstab": FstabCase(
        "cceceebcecebbb", "192.0.2.1:/srv/xen/base / nfs tcp,nolock 0 0", []
    ),
    "not-an-entry.fstab": FstabCase("ceoooce", "/dev/xvda1 / ext4 defaults 1 1", []),
    "octal-escapes.fstab": FstabCase(
        "ceeee", "/dev/xvda1 / ext4 defaults 1 1", ["/dev/xvdb1 /srv/my\\040data ext4 defaults 0 2"]
    ),
    "pseudo-filesystems-only.fstab": FstabCase("ceeee", "", []),
    "uuid-and-label-devices.fstab": FstabCase(
        "ccccccccceceece",
        "UUID=3f6c1e2a-7b4d-4c8e-9a1f-2d5e6b7c8d90 / ext4 errors=remount-ro 0 1",
        ["LABEL=boot /boot ext2 defaults 0 2", "PARTUUID=5e2d1c3b-03 /srv/data xfs noatime 0 2",
         "UUID=8c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e none swap sw 0 0"],
    ),
}

# The real-world fstabs of the corpus (--corpus), by file name: (old_root, disabled).
CORPUS_FSTAB_EXPECTED = {
    "001-stephan-cr-diskless_debian_cluster.fstab": (None, []),
    "002-losowski-disklessDebian.fstab": (
        "192.168.124.1:/VMs/nfs/debian12-base / nfs tcp,nolock 0 0", []
    ),
    "003-losowski-disklessDebian.fstab": ("/dev/nfs / nfs tcp,nolock 0 0", []),
    "004-sosiax-diskless-centos-minimal.fstab": (
        "",
        ["LABEL=scratch /scratch auto defaults 0 0",
         "LABEL=fscache /var/cache/fscache auto defaults 0 0"],
    ),
    "005-cflowe-ec2-gentoo-install.fstab": ("/dev/xvda1 / ext4 defaults 1 1", []),
    "006-h-otter-diskless.fstab": ("", ["LABEL=n0kube-nvme /mnt/nvme ext4 errors=remount-ro 0 1"]),
    "007-CarlFK-pici.fstab": ("", []),
    "008-evasm-p2020_custom_rootfs.fstab": ("", []),
    "009-pushcx-chibrary.com.fstab": (
        "/dev/sda1 / ext2 defaults,noatime 1 1",
        ["/dev/sda2 /m ext2 defaults,noatime 0 2", "/dev/sda3 swap swap defaults 0 0"],
    ),
    "010-ChrisTrenkamp-rpi-nfs-root-over-wifi.fstab": ("", []),
    "011-QubesOS-qubes-core-agent-linux.fstab": (
        "/dev/mapper/dmroot / ext4 defaults,noatime 1 1",
        ["/dev/xvdb /rw auto noauto,defaults,discard 1 2", "/dev/xvdc1 swap swap defaults 0 0",
         "/dev/xvdi /mnt/removable auto noauto,user,rw 0 0"],
    ),
    "012-QubesOS-qubes-core-admin.fstab": (
        "/dev/mapper/dmroot / ext4 defaults,noatime 1 1",
        ["/dev/xvdb /rw ext4 noauto,defaults 1 2", "/dev/xvdc1 swap swap defaults 0 0",
         "/dev/xvdi /mnt/removable auto noauto,user,rw 0 0"],
    ),
}


def read(path):
    """The text of an fstab, bytes that are not UTF-8 kept as surrogates."""
    return path.read_bytes().decode("utf-8", "surrogateescape")


def lines_of(text):
    """Raw lines split at \\n only, endings kept (independent of the module)."""
    out = []
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end == -1 else end + 1
        out.append(text[start:end])
        start = end
    return out


def fates(before, after):
    """What happened to each line of ``before`` in ``after``.

    Returns (fates, inserted): fates[i] is "kept" (same bytes), "disabled"
    (MARKER + same bytes; a last line without newline may gain one) or
    "replaced" (a /dev/nfs root line rewritten in place); inserted
    lists (index in ``after``, line) of lines present only in ``after``. Any
    other difference raises AssertionError.
    """
    old, new = lines_of(before), lines_of(after)
    result, inserted = [], []
    i = j = 0
    while i < len(old):
        if j >= len(new):
            raise AssertionError(f"line {old[i]!r} lost")
        last = i == len(old) - 1 and not old[i].endswith("\n")
        if new[j] == old[i] or (last and new[j] == old[i] + "\n" and j < len(new) - 1):
            result.append("kept")
            i += 1
        elif new[j] == MARKER + old[i] or (last and new[j] == MARKER + old[i] + "\n"):
            result.append("disabled")
            i += 1
        elif old[i].split()[:2] == new[j].split()[:2] == ["/dev/nfs", "/"]:
            result.append("replaced")
            i += 1
        else:
            inserted.append((j, new[j]))
        j += 1
    inserted.extend((k, new[k]) for k in range(j, len(new)))
    return result, inserted


def commented_out(before, line_fates):
    """The lines of ``before`` whose fate is "disabled"."""
    return [line for line, fate in zip(lines_of(before), line_fates) if fate == "disabled"]
