"""The project's exports files (tests/data/exports) and what each one holds.

``EXPORTS_CASES[name]`` says, for each file:

- ``reading``: every client as exportfs reads it, in file order:
  ``(path, hosts, options, line, flagged)``, options as exportfs applies them
  (``-defaults`` first) joined with commas, ``flagged`` when the parser warns
  about the client (a space before ``(``, no client, a bad option list);
- ``added``: the bytes that adding the seed's export appends to the file
  (a newline first where the last line is open), or None where the edit is
  refused (the file ends inside a ``"``);
- ``exportfs_status``: the exit status of the real ``exportfs -ra`` on the
  file, its directories present (:func:`exported_directories`);
- ``seed_listed``: whether ``exportfs -v`` lists the seed's export once it is
  added (exportfs stops reading a file at a line it rejects).
"""

import contextlib
import pathlib
from typing import NamedTuple, Optional

from tests.support import DATA
from tests.support.seed import SEED_EXPORT_LINE

EXPORTS_FILES = sorted((DATA / "exports").glob("*.exports"))


class ExportsCase(NamedTuple):
    reading: list
    added: Optional[bytes] = SEED_EXPORT_LINE
    exportfs_status: int = 0
    seed_listed: bool = True


OPEN = b"\n" + SEED_EXPORT_LINE  # a newline first: the last line was open
RO_SYNC = "ro,sync,no_subtree_check"
RW_SYNC = "rw,sync,no_subtree_check"
LAB_NET = "192.0.2.0/24"

EXPORTS_CASES = {
    "bad-option-lists.exports": ExportsCase(
        [
            ("/srv/nfs/store", "*", "ro,no_subtree_check", 2, False),
            ("/srv/nfs/guix", "*", "", 3, True),
            ("/srv/nfs/guix", "async)", "", 3, False),
            ("/srv/nfs/log", "*", "ro,no_subtree_check", 4, False),
            ("/srv/nfs/tmp", "192.0.2.1", "", 5, True),
            ("/srv/nfs/tmp", "space", "", 5, False),
            ("/srv/nfs/music", "*", "ro,no_subtree_check", 6, False),
        ],
        exportfs_status=1, seed_listed=False,
    ),
    "clients-without-options.exports": ExportsCase([
        ("/srv/nfs/iso", "192.0.2.15", "", 2, False),
        ("/srv/nfs/media", LAB_NET, "", 3, False),
        ("/srv/nfs/media", "*.example.com", "ro,no_subtree_check", 3, False),
        ("/srv/nfs/pub", "*", "", 4, False),
    ]),
    "comments-and-blank-lines.exports": ExportsCase([
        ("/srv/nfs/home", LAB_NET, RW_SYNC, 8, False),
        ("/srv/nfs/build#2", "192.0.2.40", RW_SYNC, 12, False),
        ("/srv/nfs/indented", "192.0.2.41", RO_SYNC, 15, False),
    ]),
    "continuation-lines.exports": ExportsCase(
        [
            ("/srv/nfs/home", "192.0.2.11", RW_SYNC, 2, False),
            ("/srv/nfs/home", "192.0.2.12", RW_SYNC, 3, False),
            ("/srv/nfs/home", "192.0.2.13", RW_SYNC, 4, False),
            ("/srv/nfs/iso", "192.0.2.21", RO_SYNC, 6, False),
            ("/srv/nfs/iso", "192.0.2.22", RO_SYNC, 7, False),
            ("/srv/nfs/tools", "192.0.2.31", RO_SYNC, 8, False),
            ("/srv/nfs/pub", "*", "ro,all_squash,no_subtree_check", 10, False),
        ],
        added=OPEN,  # a blank line ends the continuation of the last line
    ),
    "default-options.exports": ExportsCase([
        ("/srv/nfs/home", "192.0.2.11", RW_SYNC, 2, False),
        ("/srv/nfs/home", "192.0.2.12", RW_SYNC + ",no_root_squash", 2, False),
        ("/srv/nfs/home", "10.0.0.0/255.0.0.0", RW_SYNC + ",ro", 2, False),
        ("/srv/nfs/pub", "@lab", "ro,all_squash,no_subtree_check", 3, False),
        ("/srv/nfs/pub", "192.0.2.128/25", "ro,all_squash,no_subtree_check", 4, False),
    ]),
    "empty.exports": ExportsCase([]),
    "ipv4-networks.exports": ExportsCase([
        ("/srv/nfs/home", "192.0.2.10", RW_SYNC, 2, False),
        ("/srv/nfs/home", "192.0.2.11", RW_SYNC, 2, False),
        ("/srv/nfs/lab", "10.141.0.0/16", RW_SYNC, 3, False),
        ("/srv/nfs/lab", "192.168.0.0/255.255.0.0", "ro,sync", 3, False),
        ("/srv/nfs/guix", "10.141.0.0/255.255.252.0", "ro,async,no_subtree_check", 4, False),
        ("/srv/nfs/guix", "0.0.0.0/0", "ro,async,no_subtree_check", 4, False),
        ("/srv/nfs/dev", "10.177.*.*", "rw,async,no_subtree_check,crossmnt", 5, False),
        ("/srv/nfs/one", "198.51.100.7/32", RW_SYNC, 6, False),
    ]),
    "ipv6.exports": ExportsCase([
        ("/srv/nfs/home", "2001:db8::10", RW_SYNC, 2, False),
        ("/srv/nfs/home", "2001:db8::11", RW_SYNC, 2, False),
        ("/srv/nfs/lab", "2001:db8:100::/48", RO_SYNC, 3, False),
        ("/srv/nfs/lab", "fe80::1", RO_SYNC, 3, False),
        ("/srv/nfs/local", "::1", "rw,sync,no_root_squash,no_subtree_check", 4, False),
        ("/srv/nfs/local", LAB_NET, RO_SYNC, 4, False),
    ]),
    "missing-final-newline.exports": ExportsCase(
        [
            ("/srv/nfs/home", LAB_NET, RW_SYNC, 2, False),
            ("/srv/nfs/iso", LAB_NET, RO_SYNC, 3, False),
        ],
        added=OPEN,
    ),
    "octal-escapes.exports": ExportsCase([
        ("/srv/nfs/my root", "192.0.2.10", RW_SYNC, 2, False),
        ("/srv/nfs/tab\tdir", "192.0.2.11", RO_SYNC, 3, False),
        ("/srv/nfs/back\\slash", "192.0.2.12", RO_SYNC, 4, False),
        ("/srv/nfs/café", "192.0.2.13", RO_SYNC, 5, False),  # \303\251: the UTF-8 bytes of é
        ("/srv/nfs/café", "192.0.2.14", RO_SYNC, 6, False),
    ]),
    "open-quote-at-end.exports": ExportsCase(
        [
            ("/srv/nfs/home", LAB_NET, RW_SYNC, 2, False),
            # the quote runs to the end of the file: one path, newline included
            ("/srv/nfs/unterminated 192.0.2.1(rw,sync,no_subtree_check)\n", "*", "", 3, True),
        ],
        added=None,
    ),
    "options.exports": ExportsCase([
        ("/srv/nfs4", LAB_NET, "rw,sync,fsid=0,crossmnt,no_subtree_check", 2, False),
        ("/srv/nfs4/home", LAB_NET, "rw,sync,nohide,no_subtree_check,fsid=3627484160", 3, False),
        ("/srv/nfs4/pub", LAB_NET, "ro,sync,fsid=root,no_subtree_check", 4, False),
        ("/srv/nfs/uuid", LAB_NET,
         "ro,sync,fsid=6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b,no_subtree_check", 5, False),
        ("/srv/nfs/krb", "*", "sec=sys,ro,sec=krb5:krb5i:krb5p,rw,no_subtree_check", 6, False),
        ("/srv/nfs/mac", "192.0.2.6",
         "rw,all_squash,anonuid=1000,anongid=50,insecure,no_subtree_check", 7, False),
        ("/srv/nfs/moved", LAB_NET, "ro,sync,refer=/srv/nfs/pub@192.0.2.20,no_subtree_check", 8,
         False),
        ("/srv/nfs/disk", LAB_NET, "ro,sync,mountpoint,subtree_check", 9, False),
        ("/srv/nfs/disk2", LAB_NET, "ro,sync,mp=/srv/nfs/disk2,no_subtree_check", 10, False),
        ("/srv/nfs/squash", LAB_NET, "rw,sync,squash_uids=0-99,no_subtree_check", 11, False),
        ("/srv/nfs/boot", LAB_NET, "ro,async,no_wdelay,insecure_locks,no_auth_nlm,no_subtree_check",
         12, False),
    ]),
    "path-without-client.exports": ExportsCase([
        ("/srv/nfs/pub", "*", "", 2, True),
        ("/srv/nfs/iso", "*", "", 3, True),
        ("/srv/nfs/home", LAB_NET, RW_SYNC, 4, False),
    ]),
    "plain-entries.exports": ExportsCase([
        ("/srv/nfs/home", LAB_NET, RW_SYNC, 2, False),
        ("/srv/nfs/iso", "192.0.2.15", RO_SYNC, 3, False),
        ("/srv/nfs/iso", "192.0.2.16", RO_SYNC, 3, False),
        ("/srv/nfs/backup", "backup1.example.com", "rw,sync,no_root_squash,no_subtree_check", 4,
         False),
        ("/srv/nfs/media", "*", "ro,all_squash,no_subtree_check", 5, False),
    ]),
    "quoted-paths.exports": ExportsCase([
        ("/srv/nfs/my root", "192.0.2.10", RW_SYNC, 2, False),
        ("/srv/nfs/plain", "192.0.2.11", RO_SYNC, 3, False),
        ("/srv/nfs/half quoted/dir", "192.0.2.12", RO_SYNC, 4, False),
        ("/srv/nfs/a #b", "192.0.2.13", RO_SYNC, 5, False),
    ]),
    "same-path-twice.exports": ExportsCase([
        ("/srv/nfs/data", "192.0.2.2", "ro,no_subtree_check,sync", 3, False),
        ("/srv/nfs/data", "192.0.2.3",
         "rw,no_subtree_check,sync,all_squash,anonuid=100,anongid=100", 6, False),
        ("/srv/nfs/data/", "192.0.2.4", "ro,no_subtree_check,sync", 7, False),
    ]),
    "tabs.exports": ExportsCase([
        ("/srv/nfs/home", LAB_NET, RW_SYNC, 2, False),
        ("/srv/nfs/iso", "192.0.2.15", RO_SYNC, 3, False),
        ("/srv/nfs/iso", "192.0.2.16", RO_SYNC, 3, False),
        ("/srv/nfs/scratch", "192.0.2.17", "rw,async,no_subtree_check", 4, False),
        ("/srv/nfs/pub", "*", "ro,all_squash,no_subtree_check", 5, False),
    ]),
    "unknown-option.exports": ExportsCase(
        [
            ("/srv/nfs/home", LAB_NET, RW_SYNC, 2, False),
            ("/srv/nfs/pxe", "*", "ro,sync,no_wdelay,no_root_sqash,insecure,no_subtree_check", 3,
             False),
            ("/srv/nfs/iso", LAB_NET, RO_SYNC, 4, False),
        ],
        exportfs_status=1, seed_listed=False,
    ),
    "whitespace-before-paren.exports": ExportsCase(
        [
            ("/srv/nfs/vol1", "192.0.2.93", "", 2, False),
            ("/srv/nfs/vol1", "*", "rw,sync,all_squash", 2, True),
            ("/srv/nfs/vol2", "192.0.2.93", "", 3, False),
            ("/srv/nfs/vol2", "*", "rw,sync,no_subtree_check", 3, False),
            ("/srv/nfs/tftp", "*", "", 4, False),
            ("/srv/nfs/tftp", "*", "ro,no_root_squash,no_subtree_check", 4, True),
            ("/srv/nfs/data", "*", "ro,insecure,all_squash,subtree_check", 5, True),
        ],
        # '* (ro,...)': the world twice with other options, which exportfs refuses
        exportfs_status=1,
    ),
    "wildcards-and-netgroups.exports": ExportsCase([
        ("/srv/nfs/home", "*.lab.example.com", RW_SYNC, 2, False),
        ("/srv/nfs/home", "node?.example.com", RW_SYNC, 2, False),
        ("/srv/nfs/build", "build[0-9].example.com", RW_SYNC, 3, False),
        ("/srv/nfs/build", "@builders", RW_SYNC, 3, False),
        ("/srv/nfs/krb", "gss/krb5", RW_SYNC, 4, False),
        ("/srv/nfs/krb", "gss/krb5i", RW_SYNC, 4, False),
        ("/srv/nfs/krb", "gss/krb5p", RW_SYNC, 4, False),
        ("/srv/nfs/pub", "*", "ro,all_squash,no_subtree_check", 5, False),
    ]),
}


@contextlib.contextmanager
def exported_directories(name):
    """The directories an exports file of EXPORTS_CASES names (all under /srv), for a while.

    Only in tests/isolate's private namespace, where /srv is a scratch overlay;
    the directories created are removed again afterwards.
    """
    created = []
    for path, *_ in EXPORTS_CASES[name].reading:
        if not path.startswith("/srv/"):
            raise ValueError(f"{name}: {path!r} is outside /srv")
        directory = pathlib.Path(path)
        created += [part for part in reversed((directory, *directory.parents))
                    if not part.exists()]
        directory.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        for directory in reversed(created):
            directory.rmdir()
