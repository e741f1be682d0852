"""
A guest's root filesystem archive: its description (``root_archive`` in the
pillar, :func:`check_archive`), its hash, and the member filter that lets
only a safe archive be unpacked.

An archive's members are checked one by one before each is extracted
(:func:`member_problem`): no absolute path, no ``..`` component, nothing
written through a link an earlier member made, no hard link leaving the tree,
no device node or FIFO. Modes, owners (numeric ids) and symbolic links are
kept as in the archive: a root filesystem needs its set-id programs, its
owners and its absolute links (which name the guest's own root).

Unpacking into a fresh private directory and renaming it into place once is
``domu_root.populate_root``, which fetches the archive through Salt.
"""

import hashlib
import os
import re
import tarfile

from salt.exceptions import SaltInvocationError

from xen_nfsroot_lib import files, values

#: Hash algorithms by the length of a bare hexadecimal digest.
HASH_LENGTHS = {32: "md5", 40: "sha1", 56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}
#: Sources fetched over the network: they need a ``source_hash`` (or ``skip_verify``).
REMOTE_RE = re.compile(r"^(https?|ftp|s3|swift)://")
#: The keys of a root archive's description.
ARCHIVE_KEYS = ("source", "source_hash", "skip_verify")


# ---------------------------------------------------------------------------
# The description and its hash
# ---------------------------------------------------------------------------


def check_archive(archive, field="root_archive"):
    """
    Check the description of a root archive: a mapping with ``source`` (a
    ``salt://``, ``http(s)://``, ``file://`` location or a local path),
    ``source_hash`` (``ALGORITHM=HEX`` or a bare hex digest; required for a
    remote source unless ``skip_verify``) and ``skip_verify``. Returns it with
    every key.
    """
    if not isinstance(archive, dict):
        raise values.invalid(field, archive, "is not a mapping with a source")
    unknown = sorted(set(archive) - set(ARCHIVE_KEYS))
    if unknown:
        raise values.invalid(f"{field}.{unknown[0]}", archive[unknown[0]],
                             f"is not a root archive key ({', '.join(ARCHIVE_KEYS)})")
    checked = {"source": archive.get("source"), "source_hash": archive.get("source_hash"),
               "skip_verify": archive.get("skip_verify", False)}
    source = checked["source"]
    if not isinstance(source, str) or not source.strip() or "\n" in source:
        raise values.invalid(f"{field}.source", source, "is not an archive location")
    digest = checked["source_hash"]
    if digest is not None and not parse_hash(digest):
        raise values.invalid(f"{field}.source_hash", digest,
                             "is not ALGORITHM=HEX or a hexadecimal digest")
    values.check_switch(checked["skip_verify"], f"{field}.skip_verify")
    if REMOTE_RE.match(source) and digest is None and not checked["skip_verify"]:
        raise SaltInvocationError(
            f"{field}.source_hash: required for {source} (or set skip_verify: true)")
    return checked


def parse_hash(source_hash):
    """(algorithm, digest) of ``ALGORITHM=HEX`` or a bare digest (its length
    names the algorithm), or None when it is neither."""
    if not isinstance(source_hash, str):
        return None
    algorithm, _, digest = source_hash.rpartition("=")
    digest = digest.strip().lower()
    algorithm = (algorithm or HASH_LENGTHS.get(len(digest), "")).lower()
    if algorithm not in hashlib.algorithms_available or not re.fullmatch(r"[0-9a-f]+", digest):
        return None
    return algorithm, digest


def check_hash(path, source_hash):
    """Fail (:class:`~xen_nfsroot_lib.files.TreeError`) unless the file at
    path has the digest ``source_hash`` names."""
    algorithm, digest = parse_hash(source_hash)
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    if hasher.hexdigest() != digest:
        raise files.TreeError(f"{path}: {algorithm} is {hasher.hexdigest()}, not {digest} "
                              "(source_hash)")


# ---------------------------------------------------------------------------
# The member filter and the extraction
# ---------------------------------------------------------------------------


def _name_problem(member, destination):
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "has a '..' component"
    target = os.path.realpath(os.path.join(destination, name))
    if os.path.commonpath([target, destination]) != destination:
        return f"would be written outside the new root (through a link, to {target})"
    return None


def _link_problem(member, destination):
    if member.islnk():
        source = os.path.realpath(os.path.join(destination, member.linkname))
        if member.linkname.startswith("/") or os.path.commonpath(
                [source, destination]) != destination:
            return f"is a hard link to {member.linkname!r}, outside the new root"
    elif member.issym() and not member.linkname.startswith("/"):
        if _climbs_out(os.path.dirname(member.name), member.linkname):
            return f"is a symbolic link to {member.linkname!r}, which climbs out of the root"
    return None


def member_problem(member, destination):
    """Why a tar member must not be extracted into destination (the real
    path of the new root, members before it already extracted), or None.

    Names must stay inside (no absolute path, no '..', nothing extracted
    through a link an earlier member made); hard links must point inside;
    devices and FIFOs are refused. Modes, owners and symbolic links are
    kept as in the archive.
    """
    if member.ischr() or member.isblk() or member.isfifo():
        return "is a device node or FIFO"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "is not a file, directory or link"
    return _name_problem(member, destination) or _link_problem(member, destination)


def _climbs_out(directory, target):
    """True when the relative link target, seen from directory (inside the
    tree), goes above the tree's root."""
    depth = 0
    for part in [*directory.split("/"), *target.split("/")]:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def extract(archive, destination):
    """Extract every member of a tar archive (compression detected) into
    destination (a fresh, private directory), refusing any unsafe member
    with a :class:`~xen_nfsroot_lib.files.TreeError`; returns the number of
    members and whether one of them ('.') set the root's own mode."""
    extract_options = {"set_attrs": True, "numeric_owner": True}
    if hasattr(tarfile, "fully_trusted_filter"):
        # Each member is checked above; the data filter would strip set-id
        # bits and owners, and refuse absolute links, which a root needs.
        extract_options["filter"] = "fully_trusted"
    count, root_mode = 0, False
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                problem = member_problem(member, destination)
                if problem:
                    raise files.TreeError(f"{archive}: member {member.name!r} {problem}",
                                          refused=True)
                tar.extract(member, destination, **extract_options)
                count += 1
                root_mode = root_mode or member.name.rstrip("/") in ("", ".")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise files.TreeError(f"cannot extract {archive}: {err}") from None
    return count, root_mode
