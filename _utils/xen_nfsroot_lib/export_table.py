"""
What the NFS server says it does, as its tools and files report it: the live
export table (``exportfs -v``), exportfs's messages, and who has an export
mounted (rpc.mountd's rmtab, nfsd's list of NFSv4 clients).

Pure readers of text the execution module fetches: the listing is read into
an :class:`ExportTable`, indexed once and looked up per export, so that a run
checking N exports costs one ``exportfs -v`` and N look-ups.
"""

import contextlib
import fnmatch
import ipaddress
import re

from salt.exceptions import CommandExecutionError

from xen_nfsroot_lib import export_options, exports

#: rpc.mountd's record of NFSv3 mounts: ``client:path:count`` per line.
RMTAB = "/var/lib/nfs/rmtab"
#: nfsd's NFSv4 clients (kernels 5.3 and later): ``<id>/info`` per client.
NFSD_CLIENTS = "/proc/fs/nfsd/clients"

# exportfs messages that are warnings (exit status 0); anything else is an error.
_WARNINGS = re.compile(
    r"Neither 'subtree_check' or 'no_subtree_check' specified|^\s+(Assuming default|NOTE:)"
    r"|No options for |No host name given with |Failed to resolve "
)
_LOCATION = re.compile(r"(/\S+?)(:\s?\d+:| \[\d+\]:)")
_V4_ADDRESS = re.compile(r'^address:\s*"?\[?([0-9A-Fa-f.:]+?)\]?:\d+"?\s*$', re.M)


# ---------------------------------------------------------------------------
# ``exportfs -v``: the live export table
# ---------------------------------------------------------------------------


def parse_listing(text):
    """Parse ``exportfs -v`` output: {path: [{hosts, options}]} in output order.

    Two layouts: ``PATH<pad to 14>\\tCLIENT(opts)`` and, for paths longer
    than 14 characters, ``PATH\\n\\t\\tCLIENT(opts)`` (a path is printed as it
    is: a long one may hold a tab); ``<world>`` is ``*``.
    """
    listing = {}
    path = None
    lines = text.split("\n")  # only a newline ends a line: a path may hold \v, \f, \x1c
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.startswith("\t"):
            client = line.lstrip("\t")
        elif following.startswith("\t\t"):
            # A long path alone on its line: whatever it holds (a tab) is its own.
            path, client = line, None
        elif "\t" in line:
            path, _, client = line.rpartition("\t")
            if len(path) == 14:
                path = path.rstrip(" ")
        else:
            path, client = line, None
        if client is None:
            continue
        if path is None:
            raise CommandExecutionError(f"cannot parse exportfs -v output line {line!r}")
        host, _, rest = client.rstrip().partition("(")
        options = rest[:-1].split(",") if rest.endswith(")") else []
        host = "*" if host in ("<world>", "") else host
        listing.setdefault(path, []).append(
            {"hosts": host, "options": [option for option in options if option]}
        )
    return listing


class ExportTable:
    """The server's export table as ``exportfs -v`` listed it, indexed once
    by path (``/srv/x/`` and ``/srv/x`` are one export)."""

    def __init__(self, listing):
        self.listing = listing  # {path: [{hosts, options}]}, as listed
        self._by_key = {exports.path_key(path): clients for path, clients in listing.items()}

    @classmethod
    def parse(cls, text):
        """The table of ``exportfs -v`` output."""
        return cls(parse_listing(text))

    def clients(self, path):
        """The clients the server exports path to ([{hosts, options}]), or []."""
        return self._by_key.get(exports.path_key(path)) or []


def compare(key, wanted, listed):
    """Which of the wanted clients (validated ``[{hosts, options}]``) of the
    export key the server lists as asked: (confirmed, problems), one
    sentence each. Options are compared as normalised sets, ``secure`` left
    out (the listing's default differs by kernel)."""
    confirmed, problems = [], []
    for client in wanted:
        match = [item for item in listed if item["hosts"] == client["hosts"]]
        want = export_options.option_tokens(client["options"], ignore=("secure",))
        if not match:
            problems.append(f"exportfs -v does not list {key} for {client['hosts']}")
        elif export_options.option_tokens(
            match[0]["options"], export_options.LISTING_DEFAULTS, ("secure",)
        ) != want:
            problems.append(
                f"exportfs -v lists {key} for {exports.describe_clients(match[:1])}, "
                f"not {exports.describe_clients([client])}"
            )
        else:
            confirmed.append(f"{key} for {client['hosts']}")
    return confirmed, problems


# ---------------------------------------------------------------------------
# exportfs's messages
# ---------------------------------------------------------------------------


def errors(stderr):
    """The error lines of exportfs's stderr, warnings left out and without
    line numbers (which edits shift), so that two runs compare."""
    found = []
    for line in (stderr or "").splitlines():
        if line.strip() and not _WARNINGS.search(line):
            found.append(_LOCATION.sub(r"\1:", line.strip()))
    return found


def rejection(result, old_errors, restored=(), skipped=()):
    """The verdict on an ``exportfs -ra`` (``result``: its cmd.run_all
    result) that rejected a run's changes, once the files were restored:
    None when the errors predate the run (``old_errors``, the
    :func:`errors` of the files before it, holds every one of them; None
    when those files passed), otherwise the message, quoting the errors the
    run introduced and naming the files restored and those ``skipped``
    (changed by someone else since)."""
    new_errors = errors(result["stderr"])
    introduced = [line for line in new_errors if old_errors is None or line not in old_errors]
    if old_errors is not None and not introduced and not skipped:
        return None
    message = "\n".join(introduced or new_errors) or result["stderr"].strip()
    text = f"exportfs -ra failed with exit code {result['retcode']}: {message}"
    if restored:
        text += f"; restored {', '.join(restored)} to the contents before this run"
    if skipped:
        text += f"; not restored (changed by someone else since): {', '.join(skipped)}"
    return text


# ---------------------------------------------------------------------------
# Who has an export mounted
# ---------------------------------------------------------------------------


def parse_rmtab(text):
    """[{client, path}] of rpc.mountd's rmtab (``client:path:count`` lines;
    an IPv6 client has colons of its own)."""
    entries = []
    for line in text.splitlines():
        record, _, _count = line.rpartition(":")
        client, separator, exported = record.partition(":/")
        if separator:
            entries.append({"client": client, "path": "/" + exported})
    return entries


def nfsd_client_address(info):
    """The address of an NFSv4 client from its ``/proc/fs/nfsd/clients/ID/info``
    text, or None."""
    match = _V4_ADDRESS.search(info)
    return match.group(1) if match else None


def client_matches(address, client):
    """Whether a mounting host (as recorded) is one of an export's clients."""
    if client in ("*", address):
        return True
    with contextlib.suppress(ValueError):
        if "/" in client:
            return ipaddress.ip_address(address) in ipaddress.ip_network(client, strict=False)
    return any(char in client for char in "*?[") and fnmatch.fnmatch(address, client)


def mounted_by(path, clients, v3, v4, rmtab=RMTAB):
    """What says one of clients has path mounted: one sentence per NFSv3
    mount of path (``v3``: :func:`parse_rmtab`'s entries, read from rmtab)
    and per NFSv4 client (``v4``: addresses) among them."""
    key = exports.path_key(path)
    by = [f"{entry['client']} (NFSv3, {rmtab})" for entry in v3
          if exports.path_key(entry["path"]) == key
          and any(client_matches(entry["client"], client) for client in clients)]
    by += [f"{address} (an NFSv4 client of this server; NFSv4 does not say which export)"
           for address in v4
           if any(client_matches(address, client) for client in clients)]
    return by
