"""
A guest's root confined on the NFS server: mounted on itself ``nosuid,nodev``.

A populated root holds the guest's set-id programs (``su``, ``passwd``: they
must stay set-id inside the guest) and the device nodes the guest makes over
its ``no_root_squash`` export. On the server they sit in a directory every
local user can traverse. A bind mount of the root onto itself with
``nosuid,nodev`` takes the set-id bits and the device nodes away from the
server's local users, and from nobody else: the flags belong to the server's
mount, not to the files, so the NFS server still serves the bits as they are
and the guest's own mount honours them.

This module reads the live truth, ``/proc/self/mountinfo``
(``proc_pid_mountinfo(5)``: one line per mount, fields separated by single
spaces, space, tab, newline and backslash escaped as ``\\ooo`` octal), and
says what a root needs: nothing, a bind mount, or the admin's attention when
the root is already a mount point of its own without the flags (its fstab
line is the admin's, never rewritten).
"""

import posixpath
from typing import NamedTuple

from xen_nfsroot_lib import fstab, values

#: Where the live mounts are read.
MOUNTINFO = "/proc/self/mountinfo"
#: The per-mount flags that confine a root.
FLAGS = ("nosuid", "nodev")
#: The options of the bind mount (the fstab line's and the mount command's).
BIND_OPTIONS = ("bind", *FLAGS)
#: The file system type of the fstab line of a bind mount.
BIND_FSTYPE = "none"


class Mount(NamedTuple):
    """One line of mountinfo: the fields this module reads."""

    mount_id: int
    parent_id: int
    mount_point: str
    options: frozenset


def parse(text):
    """The mounts of mountinfo text, in its order (a mount after the one it
    is mounted on). A line that does not have the fields is skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 6 or not (fields[0].isdigit() and fields[1].isdigit()):
            continue
        mounts.append(Mount(int(fields[0]), int(fields[1]), fstab.unmangle(fields[4]),
                            frozenset(fields[5].split(","))))
    return mounts


def index(mounts):
    """``{mount point: the mount seen there}``: where several are stacked on
    one mount point, the one on top (no other mount there is mounted on it)."""
    by_point = {}
    for mount in mounts:
        by_point.setdefault(mount.mount_point, []).append(mount)
    top = {}
    for point, stacked in by_point.items():
        below = {mount.parent_id for mount in stacked}
        top[point] = next((m for m in reversed(stacked) if m.mount_id not in below),
                          stacked[-1])
    return top


def check_root(value, field="name"):
    """A guest root to confine: a normalised absolute path below ``/``."""
    return values.check_absolute_path(value, field, normalised=True, below_root=True)


def holder(top, root):
    """The mount that holds ``root``: the one seen at ``root`` or at the
    nearest directory above it (None only for an index without ``/``)."""
    path = root
    while path not in top:
        if path == "/":
            return None
        path = posixpath.dirname(path)
    return top[path]


class Plan(NamedTuple):
    """What a root needs: ``action`` is ``"none"`` (the mount that holds it
    has the flags: at ``mount_point``, the root itself or a directory above),
    ``"mount"`` (a bind mount onto itself confines it) or ``"refuse"`` (it is
    a mount point of its own without the ``missing`` flags: only its owner
    can change that mount)."""

    action: str
    mount_point: str
    missing: tuple


def plan(top, root):
    """What ``root`` needs, from the index of the live mounts (:func:`index`)."""
    check_root(root, "name")
    mount = holder(top, root)
    point = mount.mount_point if mount is not None else "/"
    missing = tuple(flag for flag in FLAGS if mount is None or flag not in mount.options)
    if not missing:
        return Plan("none", point, ())
    if point == root:
        return Plan("refuse", point, missing)
    return Plan("mount", point, missing)


#: mount(2)'s flags (``<sys/mount.h>``): the bind mount, then the remount
#: that gives it the flags (a bind mount takes no flags of its own: util-linux
#: ``mount --bind -o nosuid,nodev`` makes the same two calls).
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 0x2, 0x4, 0x20, 0x1000
BIND_CALLS = (MS_BIND, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)


def confined(top, root):
    """The index once ``root`` is bind-mounted onto itself with the flags
    (so that one read of mountinfo serves a whole run)."""
    updated = dict(top)
    updated[root] = Mount(-1, -1, root, frozenset(("rw", *FLAGS)))
    return updated


def refusal(root, missing):
    """The error for a root that is a mount point of its own without the flags."""
    flags = ",".join(missing)
    return values.invalid(
        "name", root,
        f"is a mount point without {flags}: the server's local users could run the "
        f"guest's set-id programs or open its device nodes; add {flags} to its mount "
        f"options (its line in /etc/fstab, then mount -o remount,{flags} {root}), "
        "or turn confine_roots off",
    )
