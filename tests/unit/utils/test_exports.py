"""The exports(5) model: tokenizer, parser and renderer, lossless round trips,
and editing one export.

No Salt loader; the files read are the project's own (tests/data) and, with
``--corpus``, the real-world ones.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.exports_cases import EXPORTS_CASES, EXPORTS_FILES
from tests.support.seed import SEED_EXPORT as SEED
from tests.support.seed import SEED_EXPORT_LINE
from xen_nfsroot_lib import exports

ExportsFile = exports.ExportsFile
SEED_LINE = SEED_EXPORT_LINE.decode()


def parse(text):
    return ExportsFile.parse(text)


def exports_of(text):
    """[(path, hosts, options, line)] of a text, warnings left out."""
    return [(path, hosts, options, line) for path, hosts, options, _, line in parse(text).exports()]


# --- round trips of every syntax -------------------------------------------------

SYNTAX = {
    "empty": "",
    "blank lines only": "\n\n  \n\t\n",
    "simple": "/srv/a 192.0.2.1(rw,sync)\n",
    "missing final newline": "/srv/a 192.0.2.1(rw,sync)",
    "tabs": "/srv/a\t\t192.0.2.1(rw)\t10.0.0.0/8(ro)\t\n",
    "comment lines": "# exports\n#\t\tsee exports(5)\n/srv/a *(ro)\n# end",
    "trailing comment": "/srv/a 192.0.2.1(rw) # the guest\n",
    "comment glued to a token is part of it": "/srv/a 192.0.2.1(rw)#x\n",
    "hash inside path": "/srv/x#y 192.0.2.1(rw)\n",
    "quoted path": '"/srv/my root" 192.0.2.1(rw)\n',
    "quote in the middle of a token": '/srv/"my root" 192.0.2.1(rw)\n',
    "octal escape": "/srv/my\\040root 192.0.2.1(rw)\n",
    "continuation": "/srv/a 192.0.2.1(rw) \\\n     192.0.2.2(ro) \\\n\t192.0.2.3\n",
    "continuation without space": "/srv/a 192.0.2.1(rw)\\\n  192.0.2.2(ro)\n",
    "comment ending in a backslash": "/srv/a 192.0.2.1(rw) # c \\\n/srv/b 192.0.2.2(ro)\n",
    "defaults": "/srv/a -rw,async 192.0.2.1 10.0.0.0/255.0.0.0(ro) @group\n",
    "several clients": "/srv/a 192.0.2.1(rw) 192.0.2.2(ro,sync) *.example.com(ro)\n",
    "client without options": "/srv/a 192.0.2.1\n",
    "path without client": "/srv/a\n",
    "same path twice": "/srv/a 192.0.2.1(rw)\n\n# other\n/srv/a 192.0.2.2(ro)\n",
    "whitespace before paren": "/srv/a 192.0.2.1 (rw,no_root_squash)\n",
    "space inside option list": "/srv/a *(rw, async)\n",
    "crlf": "/srv/a 192.0.2.1(rw)\r\n# c\r\n/srv/b 192.0.2.2(ro)\r\n",
    "ipv6 and cidr": "/srv/a 2001:db8::/32(rw) fe80::1(ro) 10.0.0.0/8(rw)\n",
    "wildcards and netgroups": "/srv/a host?.example.com(rw) [ab]x.com(ro) @ng(rw) *(ro)\n",
    "utf-8 comment": "# Configuración NFS — ok\n/srv/a 192.0.2.1(rw)\n",
    "unbalanced quote": '/srv/a 192.0.2.1(rw)\n"/srv/b 192.0.2.2(ro)\n',
    "trailing continuation at end": "/srv/a 192.0.2.1(rw) \\\n",
    "leading whitespace": "   /srv/a 192.0.2.1(rw)\n",
}


@pytest.mark.parametrize("text", SYNTAX.values(), ids=SYNTAX.keys())
def test_every_syntax_round_trips(text):
    assert parse(text).render() == text


def test_invalid_utf8_round_trips_byte_for_byte():
    data = b"# caf\xe9 latin-1\n/srv/\xff 192.0.2.1(rw)\n"
    text = data.decode("utf-8", "surrogateescape")
    model = parse(text)
    assert model.render().encode("utf-8", "surrogateescape") == data
    model.set_export("/xen", SEED)
    assert model.render().encode("utf-8", "surrogateescape") == data + SEED_LINE.encode()


def test_parse_reads_what_exportfs_reads():
    text = (
        "# header\n"
        '"/srv/my root" 192.0.2.1(rw)  # trailing\n'
        "/srv/my\\040root 192.0.2.2\n"
        "/srv/a -rw,async 192.0.2.3 10.0.0.0/8(ro) \\\n"
        "    @ng(sync)\n"
        "/srv/x#y 192.0.2.4(ro)\n"
        "/srv/b\n"
    )
    assert exports_of(text) == [
        ("/srv/my root", "192.0.2.1", ["rw"], 2),
        ("/srv/my root", "192.0.2.2", [], 3),
        ("/srv/a", "192.0.2.3", ["rw", "async"], 4),
        ("/srv/a", "10.0.0.0/8", ["rw", "async", "ro"], 4),
        ("/srv/a", "@ng", ["rw", "async", "sync"], 5),
        ("/srv/x#y", "192.0.2.4", ["ro"], 6),
        ("/srv/b", "*", [], 7),
    ]


def test_comment_ends_at_newline_even_after_a_backslash():
    text = "/srv/a 192.0.2.1(rw) # note \\\n/srv/b 192.0.2.2(ro)\n"
    assert [item[0] for item in exports_of(text)] == ["/srv/a", "/srv/b"]


def test_whitespace_before_paren_is_flagged_as_world_export():
    clients = list(parse("/srv/a 192.0.2.10 (rw,no_root_squash)\n").exports())
    assert [(hosts, options) for _, hosts, options, _, _ in clients] == [
        ("192.0.2.10", []),
        ("*", ["rw", "no_root_squash"]),
    ]
    assert clients[0][3] is None
    assert "applies these options to the world" in clients[1][3]


def test_bad_option_list_is_flagged():
    (_, hosts, _, problem, _), = parse("/srv/a *(rw,\n").exports()
    assert hosts == "*"
    assert "bad option list" in problem


def test_octal_escape_decodes_bytes():
    assert exports_of("/srv/caf\\303\\251 *(ro)\n")[0][0] == "/srv/café"


# --- hypothesis ------------------------------------------------------------------

HOSTS = st.sampled_from(
    ["192.0.2.10", "10.0.0.0/8", "2001:db8::/32", "*.example.com", "@ng", "*", "h1", "fe80::1"]
)
OPTIONS = st.lists(st.sampled_from(["rw", "ro", "sync", "async", "no_root_squash", "fsid=1"]))
PATHS = st.sampled_from(["/srv/a", "/srv/b", "/xen", "/srv/my root", "/srv/x#y", "/"])
BLANK = st.sampled_from([" ", "\t", "  \t", " \\\n   "])


@st.composite
def entry_lines(draw):
    path = draw(PATHS)
    spelled = exports.render_path(path) if draw(st.booleans()) else f'"{path}"'
    if spelled.startswith("#"):
        spelled = exports.render_path(path)
    clients = draw(st.lists(st.tuples(HOSTS, OPTIONS), min_size=1, max_size=4))
    parts = [spelled]
    for hosts, options in clients:
        parts.append(draw(BLANK))
        parts.append(f"{hosts}({','.join(options)})")
    comment = draw(st.sampled_from(["", " # note", "\t#"]))
    return "".join(parts) + comment, path, clients


@st.composite
def exports_files(draw):
    lines, expected = [], []
    for kind in draw(st.lists(st.sampled_from(["entry", "comment", "blank"]), max_size=8)):
        if kind == "entry":
            line, path, clients = draw(entry_lines())
            lines.append(line)
            expected += [(path, hosts, options) for hosts, options in clients]
        elif kind == "comment":
            lines.append("#" + draw(st.text(alphabet=" abc\t#\\(),", max_size=10)))
        else:
            lines.append(draw(st.sampled_from(["", " ", "\t"])))
    end = draw(st.sampled_from(["\n", ""]))
    return "\n".join(lines) + (end if lines else ""), expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(exports_files())
def test_generated_files_round_trip_and_parse(generated):
    text, expected = generated
    model = parse(text)
    assert model.render() == text
    assert [(path, hosts, options) for path, hosts, options, _ in exports_of(text)] == expected


@settings(max_examples=300)
@given(st.text(alphabet=' \t\n\r"#\\/()a*,0-@', max_size=60))
def test_any_text_round_trips(text):
    assert parse(text).render() == text


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(exports_files())
def test_adding_to_generated_files_keeps_every_line(generated):
    text, _ = generated
    model = parse(text)
    changed = model.set_export("/new/export", SEED)
    assert changed
    new = model.render()
    base = text if text.endswith("\n") or not text else text + "\n"
    added = new[len(base):]
    assert new.startswith(base)
    assert added in ("/new/export 192.0.2.10(rw,no_root_squash,async,no_subtree_check)\n",
                     "\n/new/export 192.0.2.10(rw,no_root_squash,async,no_subtree_check)\n")
    assert not parse(new).differs("/new/export", SEED)
    assert parse(new).clients("/new/export") == SEED


# --- exports files: the project's own (tests/data/exports) and, with --corpus, real ones ---


def read(source):
    """The text of an exports file, bytes that are not UTF-8 kept as surrogates."""
    return source.read_bytes().decode("utf-8", "surrogateescape")


def reading(text):
    """[(path, hosts, options, line, flagged)] of a text, options joined with commas."""
    return [(path, hosts, ",".join(options), line, problem is not None)
            for path, hosts, options, problem, line in parse(text).exports()]


def check_round_trip(source):
    data = source.read_bytes()
    model = parse(data.decode("utf-8", "surrogateescape"))
    assert model.render().encode("utf-8", "surrogateescape") == data


def add_seed(text):
    """The text with the seed's export added, after checking that a second add changes nothing."""
    model = parse(text)
    assert model.set_export("/xen", SEED)
    new = model.render()
    assert not parse(new).set_export("/xen", SEED)
    assert parse(new).clients("/xen") == SEED
    return new


def seed_reading(text):
    """The reading of the seed's export when it is the last line of text."""
    return [("/xen", "192.0.2.10", ",".join(SEED[0]["options"]), text.count("\n"), False)]


def check_refused(text):
    """A file ending inside a quote: adding is refused and the model is left as it was."""
    model = parse(text)
    with pytest.raises(CommandExecutionError, match="quote"):
        model.set_export("/xen", SEED)
    assert model.render() == text


def test_every_data_file_has_an_expectation():
    assert sorted(EXPORTS_CASES) == [path.name for path in EXPORTS_FILES]


@pytest.mark.parametrize("source", EXPORTS_FILES, ids=[path.name for path in EXPORTS_FILES])
def test_data_file_round_trips_byte_for_byte(source):
    check_round_trip(source)


@pytest.mark.parametrize("source", EXPORTS_FILES, ids=[path.name for path in EXPORTS_FILES])
def test_data_file_is_read_as_exportfs_reads_it(source):
    assert reading(read(source)) == EXPORTS_CASES[source.name].reading


@pytest.mark.parametrize("source", EXPORTS_FILES, ids=[path.name for path in EXPORTS_FILES])
def test_adding_the_seed_export_keeps_every_other_byte_of_a_data_file(source):
    text = read(source)
    added = EXPORTS_CASES[source.name].added
    if added is None:
        check_refused(text)
        return
    new = add_seed(text)
    assert new == text + added.decode()
    assert reading(new) == reading(text) + seed_reading(new)


def test_corpus_file_round_trips_byte_for_byte(corpus_exports):
    check_round_trip(corpus_exports)


def test_adding_the_seed_export_keeps_every_corpus_line(corpus_exports):
    text = read(corpus_exports)
    if parse(text).open_quote is not None:
        check_refused(text)
        return
    new = add_seed(text)
    # every byte kept; before the seed's line only the newlines that close an open last line
    assert new.startswith(text)
    added = new[len(text):]
    assert added.lstrip("\n") == SEED_LINE
    assert len(added) - len(SEED_LINE) <= 2
    assert reading(new) == reading(text) + seed_reading(new)


def _tokens_both_ways(text):
    """token() and token_by_char() at every offset of text, side by side."""
    for pos in range(len(text) + 1):
        fast, slow = exports._Scanner(text), exports._Scanner(text)
        (a, a_next), (b, b_next) = fast.token(pos), slow.token_by_char(pos)
        yield (a.start, a.end, a.value, a_next, fast.open_quote), (
            b.start, b.end, b.value, b_next, slow.open_quote)


@pytest.mark.parametrize("source", EXPORTS_FILES, ids=[path.name for path in EXPORTS_FILES])
def test_the_plain_token_shortcut_reads_a_data_file_like_the_full_reader(source):
    for fast, slow in _tokens_both_ways(read(source)):
        assert fast == slow


def test_the_plain_token_shortcut_reads_the_corpus_like_the_full_reader(corpus_exports):
    for fast, slow in _tokens_both_ways(read(corpus_exports)):
        assert fast == slow


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=' \t\n\r"\\#()/,=*a1\u00e9', max_size=24))
def test_the_plain_token_shortcut_agrees_on_any_text(text):
    for fast, slow in _tokens_both_ways(text):
        assert fast == slow


# --- editing ----------------------------------------------------------------------

FILE = (
    "# managed by hand\n"
    "/srv/a\t192.0.2.1(rw)   # first\n"
    "/xen 192.0.2.10(ro) \\\n"
    "     192.0.2.11(ro)  # guest\n"
    "\n"
    "/srv/b 192.0.2.2(ro)\n"
    "/xen 192.0.2.12(rw)\n"
    "/srv/c 192.0.2.3(ro)"
)


def test_editing_rewrites_only_that_export_and_keeps_its_comment():
    model = parse(FILE)
    assert model.set_export("/xen", SEED)
    assert model.render() == (
        "# managed by hand\n"
        "/srv/a\t192.0.2.1(rw)   # first\n"
        "/xen 192.0.2.10(rw,no_root_squash,async,no_subtree_check)  # guest\n"
        "\n"
        "/srv/b 192.0.2.2(ro)\n"
        "/srv/c 192.0.2.3(ro)"
    )


def test_editing_keeps_path_spelling_and_separator_and_drops_defaults():
    model = parse('"/srv/my root"\t\t-rw 192.0.2.1 192.0.2.2(ro)\n/srv/z *(ro)\n')
    model.set_export("/srv/my root", [{"hosts": "192.0.2.1", "options": ["ro"]}])
    assert model.render() == '"/srv/my root"\t\t192.0.2.1(ro)\n/srv/z *(ro)\n'


def test_removing_deletes_only_that_exports_lines():
    model = parse(FILE)
    assert model.remove_export("/xen")
    assert model.render() == (
        "# managed by hand\n"
        "/srv/a\t192.0.2.1(rw)   # first\n"
        "\n"
        "/srv/b 192.0.2.2(ro)\n"
        "/srv/c 192.0.2.3(ro)"
    )
    assert not model.remove_export("/xen")


def test_adding_appends_a_line_and_mends_a_missing_final_newline():
    model = parse("/srv/a 192.0.2.1(rw)")
    model.set_export("/xen", SEED)
    assert model.render() == "/srv/a 192.0.2.1(rw)\n" + SEED_LINE


def test_adding_after_a_trailing_continuation_starts_a_new_entry():
    for text in ("/srv/a 192.0.2.1(rw) \\\n", "/srv/a 192.0.2.1(rw) \\"):
        model = parse(text)
        model.set_export("/xen", SEED)
        assert [item[0] for item in exports_of(model.render())] == ["/srv/a", "/xen"]


def test_adding_after_a_comment_ending_in_backslash_needs_no_blank_line():
    model = parse("# note \\\n")
    model.set_export("/xen", SEED)
    assert model.render() == "# note \\\n" + SEED_LINE


def test_adding_to_a_file_ending_inside_a_quote_is_refused():
    model = parse('"/srv/a 192.0.2.1(rw)\n')
    with pytest.raises(CommandExecutionError, match="quote"):
        model.set_export("/xen", SEED)


def test_paths_with_spaces_and_specials_are_escaped():
    model = parse("")
    model.set_export('/srv/my root"#\\x', [{"hosts": "*", "options": ["ro"]}])
    assert model.render() == "/srv/my\\040root\\042\\043\\134x *(ro)\n"
    assert model.clients('/srv/my root"#\\x') == [{"hosts": "*", "options": ["ro"]}]


def test_no_rewrite_when_order_or_defaults_differ():
    text = "/xen 192.0.2.10(async,no_root_squash,rw,wdelay,hide,secure,sec=sys)\n"
    assert not parse(text).set_export("/xen", SEED)
    text = "/xen -async 192.0.2.10(rw,no_root_squash)\n"
    assert not parse(text).set_export("/xen", SEED)
    assert not parse("/xen/ 192.0.2.10(rw,no_root_squash,async)\n").set_export("/xen", SEED)
    assert not parse("/srv *()\n").set_export("/srv", [{"hosts": "*", "options": []}])
    assert not parse("/srv *\n").set_export("/srv", [{"hosts": "*", "options": ["sync"]}])


def test_same_path_on_two_lines_matching_is_left_alone():
    text = "/xen 192.0.2.10(rw)\n# b\n/xen 192.0.2.11(ro)\n"
    wanted = [
        {"hosts": "192.0.2.11", "options": ["ro"]},
        {"hosts": "192.0.2.10", "options": ["rw"]},
    ]
    assert not parse(text).set_export("/xen", wanted)


# --- where exportfs reads exports files ----------------------------------------------


def test_drop_ins_are_the_names_exportfs_reads_in_version_order():
    names = ["10-b.exports", "notes.txt", ".hidden.exports", "9-a.exports", "x.exports~"]
    assert exports.drop_ins(names) == ["9-a.exports", "10-b.exports"]


@pytest.mark.parametrize(
    ("given", "checked"),
    [
        (None, "/etc/exports"),
        ("/etc/exports", "/etc/exports"),
        ("/etc/exports.d/xen-nfsroot.exports", "/etc/exports.d/xen-nfsroot.exports"),
        ("/etc//exports.d/./a.exports", "/etc/exports.d/a.exports"),
        ("/srv/elsewhere", "/srv/elsewhere"),
    ],
)
def test_check_exports_file_normalises(given, checked):
    assert exports.check_exports_file(given) == checked


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("/etc/exports.d/xen_nfsroot", "exports: '/etc/exports.d/xen_nfsroot' would be ignored "
         "by exportfs: files in /etc/exports.d must end in '.exports' and not start with '.'"),
        ("/etc/exports.d/.x.exports", "would be ignored by exportfs"),
        ("exports", "exports: 'exports' is not an absolute path"),
        ("/etc/exports\n", "contains a newline or NUL character"),
    ],
)
def test_check_exports_file_refuses(given, message):
    with pytest.raises(SaltInvocationError) as caught:
        exports.check_exports_file(given)
    assert message in str(caught.value)


def test_describe_clients():
    assert exports.describe_clients(SEED) == "192.0.2.10(rw,no_root_squash,async,no_subtree_check)"
    assert exports.describe_clients([]) is None
    assert exports.describe_clients(None) is None
