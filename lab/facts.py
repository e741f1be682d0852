"""Several facts of a dom0 in one ``cmd.run_all``: the script and its parser.

Each fact is a shell command; the script runs them one after the other and
prints, for each, its stdout, its stderr and its exit status between header
lines that carry a boundary made for this call (so no output can forge one)::

    @@LAB-FACT-1a2b3c NAME stdout
    ...stdout, byte for byte...
    @@LAB-FACT-1a2b3c NAME stderr
    ...stderr...
    @@LAB-FACT-1a2b3c NAME rc 0

One call instead of one per fact: under emulation each Salt job costs the
dom0's minion far more than the commands themselves.  The parser is shared
by the runner and the end-to-end tests, which read the raw output kept in
``RUN/out/``.
"""

import re
import secrets
import shlex

HEADER = re.compile(r"^(@@LAB-FACT-[0-9a-f]+) (\S+) (stdout|stderr|rc)(?: (-?\d+))?$", re.M)


def script(facts):
    """A shell script printing every fact of ``facts`` ({name: command})."""
    boundary = f"@@LAB-FACT-{secrets.token_hex(6)}"
    lines = ['d=$(mktemp -d)']
    for name, command in facts.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"fact name {name!r}")
        head = shlex.quote(f"{boundary} {name}")
        lines.append(
            f'( {command}\n) >"$d/out" 2>"$d/err" </dev/null; rc=$?; '
            f"printf '%s stdout\\n' {head}; cat \"$d/out\"; "
            f"printf '\\n%s stderr\\n' {head}; cat \"$d/err\"; "
            f"printf '\\n%s rc %s\\n' {head} \"$rc\""
        )
    lines.append('rm -rf "$d"')
    return "\n".join(lines)


def parse(text):
    """{name: {"stdout", "stderr", "retcode"}} from the script's output."""
    first = HEADER.search(text or "")
    if not first:
        raise ValueError(f"no fact in this output: {(text or '')[:200]!r}")
    boundary = first.group(1)
    headers = [m for m in HEADER.finditer(text) if m.group(1) == boundary]
    facts = {}
    for index, match in enumerate(headers):
        name, kind = match.group(2), match.group(3)
        entry = facts.setdefault(name, {})
        if kind == "rc":
            entry["retcode"] = int(match.group(4))
            continue
        # The script prints a newline after each output, before the next header.
        end = headers[index + 1].start() - 1 if index + 1 < len(headers) else len(text)
        entry[kind] = text[match.end() + 1:end]
    incomplete = [name for name, entry in facts.items() if "retcode" not in entry]
    if incomplete:
        raise ValueError(f"facts without an exit status: {incomplete}")
    return facts


def of_run_all(ret):
    """The facts of a ``cmd.run_all`` return of the script, or None if it
    failed or printed no facts."""
    if not isinstance(ret, dict) or ret.get("retcode") != 0:
        return None
    try:
        return parse(ret["stdout"])
    except ValueError:
        return None
