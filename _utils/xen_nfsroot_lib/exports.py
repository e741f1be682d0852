"""
The exports(5) format: a lossless model of an exports file, its tokenizer,
parser and renderer, and where exportfs looks for such files.

Every byte the model does not edit is rendered back unchanged (comments,
blank lines, tabs, continuation lines, quoting, a missing final newline,
lines ``exportfs`` itself rejects): ``ExportsFile.parse(text).render() ==
text`` for every text. Editing one export rewrites only that export's lines,
adding one appends a line, removing one deletes only its lines.

The tokenizer follows nfs-utils (``support/nfs/xio.c``, ``exports.c``):
``#`` starts a comment only where a token could start, ``"`` toggles quoting
inside a token, ``\\ooo`` octal escapes, a trailing ``\\`` continues the entry
on the next line, ``-opts`` after the path sets defaults for the rest of the
line, a client without ``(opts)`` gets the defaults, and ``(opts)`` with no
client name (``host (rw)``: whitespace before ``(``) applies to the world.

Options are compared as a normalised set
(:func:`xen_nfsroot_lib.export_options.option_tokens`): their order and
spelled-out defaults never cause a rewrite.
"""

import bisect
import os
import re

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import export_options

#: The exports file ``exportfs -a`` reads first.
DEFAULT_EXPORTS = "/etc/exports"
#: The drop-in directory it reads next: the files named ``*.exports``.
EXPORTS_D = "/etc/exports.d"
DROP_IN_SUFFIX = ".exports"

# A token without quotes, escapes or continuations: the common case, read
# in one match instead of character by character.
_PLAIN_TOKEN = re.compile(r'[^ \t\n\r\v\f"\\]*')
# Read per character by the tokenizer: local names.
_BLANKS = export_options.BLANKS
_SPACES = export_options.SPACES


# ---------------------------------------------------------------------------
# Where exportfs reads exports files
# ---------------------------------------------------------------------------


def is_drop_in(name):
    """Whether exportfs reads a file of this name in ``/etc/exports.d``:
    ``*.exports``, not a dot-file."""
    return name.endswith(DROP_IN_SUFFIX) and not name.startswith(".")


def _version_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def drop_ins(names):
    """The names of a listing of ``/etc/exports.d`` that exportfs reads, in
    its order (version order: ``9-a`` before ``10-b``)."""
    return sorted((name for name in names if is_drop_in(name)), key=_version_key)


def check_exports_file(exports, field="exports"):
    """
    Check the exports file an export goes to: an absolute path; in
    ``/etc/exports.d`` a name exportfs reads (ending in ``.exports``, not
    starting with ``.``). Returns it normalised; None is ``/etc/exports``.
    """
    if exports is None:
        return DEFAULT_EXPORTS
    export_options.check_path(exports, field)
    directory, name = os.path.split(os.path.normpath(exports))
    if os.path.normpath(directory) == EXPORTS_D and not is_drop_in(name):
        raise SaltInvocationError(
            f"{field}: {exports!r} would be ignored by exportfs: files in {EXPORTS_D} must "
            f"end in '{DROP_IN_SUFFIX}' and not start with '.'"
        )
    return os.path.normpath(exports)


# ---------------------------------------------------------------------------
# The model: tokenizer, parser, renderer
# ---------------------------------------------------------------------------



class _Token:
    """A token of an exports file: its value and its span in the text."""

    __slots__ = ("start", "end", "value")

    def __init__(self, start, end, value):
        self.start = start
        self.end = end
        self.value = value


class _Scanner:
    """exports(5) tokenizer, faithful to nfs-utils' xio.c and exports.c."""

    def __init__(self, text):
        self.text = text
        self.open_end = False  # the text ends with a live line continuation
        self.open_quote = None  # offset of a '"' left open at the end

    def _continuation(self, pos):
        """Offset after a line continuation at pos, or None if there is none."""
        text = self.text
        if text.startswith("\\\n", pos):
            pos += 2
            while pos < len(text) and text[pos] in _BLANKS:
                pos += 1
            if pos >= len(text):
                self.open_end = True
            return pos
        return None

    def skip(self, pos, chars):
        """Skip chars, comments and continuations; return the next offset."""
        text = self.text
        while pos < len(text):
            after = self._continuation(pos)
            if after is not None:
                pos = after
                continue
            char = text[pos]
            if char == "#":
                newline = text.find("\n", pos)
                if newline < 0:
                    return len(text)
                pos, char = newline, "\n"
            if char not in chars:
                return pos
            pos += 1
        return pos

    def token(self, pos):
        """Read one token at pos: (token, next offset)."""
        text = self.text
        end = _PLAIN_TOKEN.match(text, pos).end()
        if end == len(text) or text[end] not in '"\\':
            after = end if end == len(text) or text[end] == "\n" else end + 1
            return _Token(pos, end, text[pos:end]), after
        return self.token_by_char(pos)

    def token_by_char(self, pos):
        """token() for any text: quotes, octal escapes, continuations."""
        text = self.text
        value = bytearray()
        quoted = None
        start = end = pos
        while pos < len(text):
            after = self._continuation(pos)
            if after is not None:
                char, pos = " ", after
            else:
                char = text[pos]
                pos += 1
            if char == '"':
                quoted = None if quoted is not None else pos - 1
                end = pos
                continue
            if quoted is None and char in _SPACES:
                if char == "\n":
                    pos -= 1  # the newline ends the entry: leave it
                break
            value += char.encode("utf-8", "surrogateescape")
            end = pos
            tail = value[-4:]
            if len(tail) == 4 and tail[0] == 0x5C and all(0x30 <= b <= 0x37 for b in tail[1:]):
                del value[-4:]
                value.append(int(tail[1:], 8))
        if quoted is not None:
            self.open_quote = quoted
        return _Token(start, end, value.decode("utf-8", "surrogateescape")), pos

    def entries(self):
        """Yield (path token, [client tokens], end offset) for each entry."""
        text = self.text
        pos = 0
        while True:
            pos = self.skip(pos, " \t\n")
            if pos >= len(text):
                return
            path, pos = self.token(pos)
            tokens = []
            while self.open_quote is None:
                pos = self.skip(pos, _BLANKS)
                if pos >= len(text) or text[pos] == "\n":
                    break
                token, pos = self.token(pos)
                if token.end > token.start:
                    tokens.append(token)
            if path.value:
                yield path, tokens, pos


def path_key(path):
    """Paths naming the same directory compare equal (/srv/x/ == /srv/x)."""
    return os.path.normpath(path) if path.startswith("/") else path


def _parse_client(value):
    """A client token: (hosts, options or None, problem or None)."""
    host, paren, rest = value.partition("(")
    if not paren:
        return host, None, None
    if not rest.endswith(")") or ")" in rest[:-1]:
        return host or "*", [], f"bad option list in '{value}': exportfs rejects this line"
    problem = None
    if not host:
        host = "*"
        problem = (
            f"'{value}' has no client name: exportfs applies these options to the world "
            "(whitespace before '('?)"
        )
    return host, export_options.split_options(rest[:-1]), problem


class _Entry:
    """One export line (path, optional -defaults, clients) and its text."""

    def __init__(self, text, path, tokens, offset):
        # offset: of the entry's first line in the parsed text
        self.text = text  # the entry's whole lines, newline included
        self.path = path.value
        self.key = path_key(path.value)
        self.path_end = path.end - offset
        # where the first token after the path starts, and where the last ends
        self.after_path = tokens[0].start - offset if tokens else None
        self.tail = (tokens[-1].end if tokens else path.end) - offset
        self.defaults = []
        self.clients = []  # [(hosts, options list or None, problem, offset)]
        if tokens and tokens[0].value.startswith("-"):
            self.defaults = export_options.split_options(tokens[0].value[1:])
            tokens = tokens[1:]
        for token in tokens:
            hosts, options, problem = _parse_client(token.value)
            self.clients.append((hosts, options, problem, token.start - offset))
        if not tokens:
            problem = "no client given: exportfs exports this path to the world"
            self.clients.append(("*", None, problem, path.start - offset))

    def effective(self):
        """[(hosts, options as exportfs applies them, problem, offset)]."""
        return [
            (hosts, self.defaults + (options or []), problem, where)
            for hosts, options, problem, where in self.clients
        ]

    def signature(self):
        return sorted(
            (hosts, export_options.option_tokens(options))
            for hosts, options, _, _ in self.effective()
        )


def render_path(path):
    """A path as exports(5) text: octal escapes like exportfs writes them."""
    out = []
    for byte in path.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if byte < 0x21 or byte == 0x7F or char in '"\\#':
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return "".join(out).encode("latin-1").decode("utf-8", "surrogateescape")


def render_clients(clients):
    """Clients ({hosts, options}) as exports(5) text: ``host(opt,opt) ...``."""
    return " ".join(
        f"{client['hosts']}({','.join(client.get('options') or [])})" for client in clients
    )


def describe_clients(clients):
    """Clients as exports(5) text for a message, or None when there are none."""
    return render_clients(clients) if clients else None


class ExportsFile:
    """A lossless exports(5) file: parse, edit one export, render.

    ``ExportsFile.parse(text).render() == text`` for every text. The file is
    a list of chunks in order: entries (an export's complete lines) and the
    text between them (comments, blank lines), kept verbatim.
    """

    def __init__(self, chunks, open_quote=None):
        self.chunks = chunks  # _Entry or str
        self.open_quote = open_quote
        # Derived from chunks, kept up to date by the edits below so that a
        # run editing one file N times costs O(N), not O(N^2): the entries
        # by path key, and the rendered text (None: render again).
        self._index = None
        self._rendered = None

    @classmethod
    def parse(cls, text):
        """Parse exports(5) text into a model that renders it back unchanged."""
        scanner = _Scanner(text)
        line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        chunks = []
        done = 0
        for path, tokens, end in scanner.entries():
            first = line_starts[bisect.bisect_right(line_starts, path.start) - 1]
            last = text.find("\n", end)
            last = len(text) if last < 0 else last + 1
            if first > done:
                chunks.append(text[done:first])
            chunks.append(_Entry(text[first:last], path, tokens, first))
            done = last
        if done < len(text):
            chunks.append(text[done:])
        return cls(chunks, scanner.open_quote)

    def render(self):
        """The file's text."""
        if self._rendered is None:
            self._rendered = "".join(
                [chunk if isinstance(chunk, str) else chunk.text for chunk in self.chunks]
            )
        return self._rendered

    def _entries(self, key):
        if self._index is None:
            self._index = {}
            for chunk in self.chunks:
                if isinstance(chunk, _Entry):
                    self._index.setdefault(chunk.key, []).append(chunk)
        return self._index.get(key, [])

    def exports(self):
        """Yield (path, hosts, options, problem, line) for each client, in file order."""
        line = 1
        for chunk in self.chunks:
            if isinstance(chunk, _Entry):
                for hosts, options, problem, where in chunk.effective():
                    here = line + chunk.text.count("\n", 0, where)
                    yield chunk.path, hosts, options, problem, here
                line += chunk.text.count("\n")
            else:
                line += chunk.count("\n")

    def clients(self, path):
        """The clients of path ({hosts, options}), or None when not exported."""
        entries = self._entries(path_key(path))
        if not entries:
            return None
        return [
            {"hosts": hosts, "options": options}
            for entry in entries
            for hosts, options, _, _ in entry.effective()
        ]

    def differs(self, path, clients):
        """True when path is not exported to exactly clients (options normalised)."""
        entries = self._entries(path_key(path))
        wanted = sorted(
            (c["hosts"], export_options.option_tokens(c.get("options") or [])) for c in clients
        )
        return not entries or sorted(sum((e.signature() for e in entries), [])) != wanted

    def set_export(self, path, clients):
        """Make path exported to exactly clients; return True if the text changed.

        The first line of path is rewritten in place (its path spelling,
        indentation and trailing comment kept, a ``-defaults`` token
        dropped); other lines of path in this file are deleted; a new path is
        appended on a line of its own.
        """
        if not self.differs(path, clients):
            return False
        entries = self._entries(path_key(path))
        rendered = render_clients(clients)
        if not entries:
            self._append(f"{render_path(path)} {rendered}\n")
            return True
        first = entries[0]
        text = first.text
        if first.after_path is not None and "\n" not in text[: first.after_path]:
            prefix = text[: first.after_path]
        else:
            prefix = text[: first.path_end] + " "
        new_text = prefix + rendered + text[first.tail :]
        replacement = self._replace(first, new_text)
        for entry in entries[1:]:
            self.chunks.remove(entry)
        self._index[first.key] = [replacement]
        self._rendered = None
        return True

    def remove_export(self, path):
        """Delete every line exporting path; return True if the text changed."""
        entries = self._entries(path_key(path))
        for entry in entries:
            self.chunks.remove(entry)
        if entries:
            del self._index[entries[0].key]
            self._rendered = None
        return bool(entries)

    def _replace(self, entry, new_text):
        parsed = ExportsFile.parse(new_text).chunks
        replacement = [chunk for chunk in parsed if isinstance(chunk, _Entry)]
        if len(replacement) != 1 or replacement[0].key != entry.key:
            raise CommandExecutionError(f"internal error: cannot rewrite {entry.text!r}")
        self.chunks[self.chunks.index(entry)] = replacement[0]
        self._rendered = None
        return replacement[0]

    def _append(self, line):
        if self.open_quote is not None:
            raise CommandExecutionError(
                "the file ends inside a '\"' quote opened at offset "
                f"{self.open_quote}: a line added at its end would be swallowed; fix the "
                "quoting first"
            )
        start = len(self.chunks)
        last = next((chunk for chunk in reversed(self.chunks) if self._text(chunk)), None)
        if last is not None:
            # Chunks start at line boundaries between entries: the last one
            # alone tells whether the file ends in a live continuation.
            text = self._text(last)
            if not text.endswith("\n"):
                self.chunks.append("\n")
                text += "\n"
            scanner = _Scanner(text)
            for _ in scanner.entries():
                pass
            if scanner.open_end:  # a trailing '\' would join the new line to the last one
                self.chunks.append("\n")
        self.chunks.extend(ExportsFile.parse(line).chunks)
        added = self.chunks[start:]
        if self._index is not None:
            for chunk in added:
                if isinstance(chunk, _Entry):
                    self._index.setdefault(chunk.key, []).append(chunk)
        if self._rendered is not None:
            self._rendered += "".join(self._text(chunk) for chunk in added)

    @staticmethod
    def _text(chunk):
        return chunk if isinstance(chunk, str) else chunk.text

