"""exports(5) model, option normalisation, validation and ``exportfs -v`` parsing.

Pure functions of the exportfs execution module: no Salt loader; the files read are
the project's own (tests/data) and, with ``--corpus``, the real-world ones.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support import SPECIMENS as SPECIMENS_DIR
from tests.support.exports_cases import EXPORTS_CASES, EXPORTS_FILES
from tests.support.seed import SEED_EXPORT as SEED
from tests.support.seed import SEED_EXPORT_LINE
from xen_nfsroot.modules import exportfs

ExportsFile = exportfs.ExportsFile
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
    spelled = exportfs._render_path(path) if draw(st.booleans()) else f'"{path}"'
    if spelled.startswith("#"):
        spelled = exportfs._render_path(path)
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
        fast, slow = exportfs._Scanner(text), exportfs._Scanner(text)
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


# --- options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "normalised"),
    [
        ([], ["ro", "root_squash", "sync"]),
        (["rw", "no_root_squash", "async", "no_subtree_check"], ["async", "no_root_squash", "rw"]),
        (["no_subtree_check", "async", "rw", "no_root_squash"], ["async", "no_root_squash", "rw"]),
        (["rw", "ro"], ["ro", "root_squash", "sync"]),
        (["wdelay", "hide", "secure", "sec=sys", "acl", "no_pnfs", "anonuid=65534"],
         ["ro", "root_squash", "sync"]),
        (["auth_nlm"], ["ro", "root_squash", "sync"]),
        (["no_auth_nlm", "mp", "fsid=root"],
         ["fsid=0", "insecure_locks", "mountpoint", "ro", "root_squash", "sync"]),
        (["fsid=0x10"], ["fsid=16", "ro", "root_squash", "sync"]),
        (["fsid=010"], ["fsid=8", "ro", "root_squash", "sync"]),
        (["subtree_check", "insecure", "crossmnt", "nohide"],
         ["crossmnt", "insecure", "nohide", "ro", "root_squash", "subtree_check", "sync"]),
        (["sec=unix"], ["ro", "root_squash", "sync"]),
        ("rw,async", ["async", "root_squash", "rw"]),
    ],
)
def test_normalize_options(options, normalised):
    assert exportfs.normalize_options(options) == normalised


def test_security_flavour_groups_keep_their_own_flags():
    one = exportfs.normalize_options(["sec=krb5p", "rw", "sec=sys", "ro"])
    other = exportfs.normalize_options(["sec=krb5p", "ro", "sec=sys", "rw"])
    assert one != other
    assert "sec=krb5p:sys" in one
    assert "krb5p:rw" in one
    assert "sys:ro" in one


def test_listing_options_compare_with_configured_ones():
    listed = "async,wdelay,hide,no_subtree_check,sec=sys,rw,no_root_squash,no_all_squash"
    tokens = exportfs._option_tokens(listed.split(","), exportfs._LISTING_DEFAULTS)
    assert tokens == exportfs._option_tokens(SEED[0]["options"])
    listed = "sync,wdelay,hide,sec=sys,rw,root_squash,no_all_squash"
    tokens = exportfs._option_tokens(listed.split(","), exportfs._LISTING_DEFAULTS)
    assert tokens == exportfs._option_tokens(["rw", "subtree_check"])


# --- validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "hosts",
    [
        "192.0.2.10", "*", "server.example.com", "host_1", "node-1.lan.", "10.0.0.0/8",
        "10.0.0.0/255.0.0.0", "2001:db8::1", "2001:db8::/32", "*.example.com", "host?.ex",
        "[ab]x.example.com", "10.177.*.*", "@guests", "gss/krb5i", "0.0.0.0/0",
    ],
)
def test_valid_client_syntax(hosts):
    assert exportfs.validate("/xen", hosts=hosts, options=["ro"]) == [
        {"hosts": hosts, "options": ["ro"]}
    ]


def test_every_known_option_is_accepted():
    options = [
        "ro", "rw", "sync", "async", "secure", "insecure", "wdelay", "no_wdelay", "hide",
        "nohide", "crossmnt", "nocrossmnt", "subtree_check", "no_subtree_check",
        "root_squash", "no_root_squash", "all_squash", "no_all_squash", "secure_locks",
        "insecure_locks", "auth_nlm", "no_auth_nlm", "acl", "no_acl", "pnfs", "no_pnfs",
        "nordirplus", "security_label", "mountpoint", "mp", "mountpoint=/srv", "mp=/srv",
        "fsid=0", "fsid=root", "fsid=0x1f", "fsid=12345678-1234-1234-1234-123456789abc",
        "anonuid=1000", "anongid=-2", "sec=krb5:krb5i:krb5p:sys:unix:null:none",
        "refer=/a@h1+h2", "replicas=/b@h3", "squash_uids=0-15,20",
    ]
    for option in options:
        assert exportfs.validate("/xen", hosts="h", options=[option])


def test_comma_separated_hosts_are_several_clients():
    assert exportfs.validate("/srv", hosts="10.0.0.0/8,192.0.2.1", options=["ro"]) == [
        {"hosts": "10.0.0.0/8", "options": ["ro"]},
        {"hosts": "192.0.2.1", "options": ["ro"]},
    ]


BAD_INPUT = [
    ({"clients": [{"hosts": "192.0.2.10", "options": ["rwx"]}]},
     "clients[0].options[0]: unknown export option 'rwx' (did you mean 'rw'?)"),
    ({"hosts": "192.0.2.10", "options": ["rw", "no_root_sqash"]},
     "options[1]: unknown export option 'no_root_sqash' (did you mean 'no_root_squash'?)"),
    ({"hosts": "192.0.2.10 (rw)"}, "hosts: '192.0.2.10 (rw)' has whitespace before '('"),
    ({"hosts": "192.0.2.10(rw)"}, "hosts: '192.0.2.10(rw)' contains '(' or ')'"),
    ({"hosts": "a b"}, "hosts: 'a b' contains whitespace"),
    ({"hosts": ""}, "Either 'clients' or 'hosts' must be defined"),
    ({}, "Either 'clients' or 'hosts' must be defined"),
    ({"hosts": "300.1.2.3"}, "hosts: '300.1.2.3' is not a valid IPv4 address"),
    ({"hosts": "10.0.0.0/33"}, "hosts: '10.0.0.0/33' prefix length '33' must be 0 to 32"),
    ({"hosts": "2001:db8::/129"}, "IPv6 prefix length '129' must be a number from 0 to 128"),
    ({"hosts": "10.0.0.0/255.0.0"}, "netmask '255.0.0' is neither"),
    ({"hosts": "bad!host"}, "hosts: 'bad!host' is not a valid host name"),
    ({"hosts": "-bad.example.com"}, "is not a valid host name"),
    ({"hosts": "a,,b"}, "hosts: '' in 'a,,b'"),
    ({"hosts": "*", "options": ["rw", "no_root_squash"]},
     "options: refusing to export /xen to '*' with no_root_squash"),
    ({"clients": [{"hosts": "*.example.com", "options": ["no_root_squash"]}]},
     "clients[0].options: refusing to export /xen to '*.example.com' with no_root_squash"),
    ({"hosts": "0.0.0.0/0", "options": ["sec=krb5", "no_root_squash"]},
     "refusing to export /xen to '0.0.0.0/0'"),
    ({"clients": "192.0.2.10"}, "clients: expected a list of {hosts, options} mappings, got str"),
    ({"clients": {"hosts": "192.0.2.10"}}, "clients: expected a list of {hosts, options}"),
    ({"clients": ["192.0.2.10"]}, "clients[0]: expected a mapping with 'hosts' and 'options'"),
    ({"clients": [{"host": "192.0.2.10"}]}, "clients[0]: unknown key 'host'"),
    ({"clients": [{"options": ["rw"]}]}, "clients[0].hosts: missing"),
    ({"clients": [{"hosts": 10}]}, "clients[0].hosts: expected a host string, got int 10"),
    ({"hosts": "a", "options": "rw, async,"}, None),
    ({"hosts": "a", "options": 5}, "options: expected a list of options, got int 5"),
    ({"hosts": "a", "options": ["rw", 5]}, "options[1]: expected an option string, got int 5"),
    ({"hosts": "a", "options": ["rw", "ro"]}, "options[1]: conflicting options 'rw' and 'ro'"),
    ({"hosts": "a", "options": ["anonuid=x"]}, "options[0]: bad anonuid 'anonuid=x'"),
    ({"hosts": "a", "options": ["fsid=08"]}, "options[0]: bad fsid 'fsid=08'"),
    ({"hosts": "a", "options": ["sec=krb6"]}, "unknown security flavour 'krb6' in 'sec=krb6'"),
    ({"hosts": "a", "options": ["rw,,sync"]}, "options[0]: empty option"),
    ({"hosts": "a", "options": ["no root_squash"]}, "contains whitespace"),
    ({"clients": [{"hosts": "a"}, {"hosts": "b,a"}]},
     "clients[1].hosts: 'a' is listed twice (also in clients[0].hosts)"),
    ({"clients": [{"hosts": "a"}], "hosts": "b"}, "give either 'clients' or 'hosts'"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_names_field_and_value(arguments, message):
    if message is None:  # accepted: spaces around commas in a string are harmless
        assert exportfs.validate("/xen", **arguments)[0]["options"] == ["rw", "async"]
        return
    with pytest.raises(SaltInvocationError) as caught:
        exportfs.validate("/xen", **arguments)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/xen\n/etc", "name: '/xen\\n/etc' contains a newline or NUL character"),
        ("/xen\0", "contains a newline or NUL"),
        ("xen", "name: 'xen' is not an absolute path"),
        ("", "name: '' is not an absolute path"),
        (None, "name: expected an absolute path string, got NoneType None"),
    ],
)
def test_bad_paths(path, message):
    with pytest.raises(SaltInvocationError) as caught:
        exportfs.validate(path, hosts="192.0.2.10")
    assert message in str(caught.value)


def test_world_root_allowed_when_asked():
    wanted = exportfs.validate("/xen", hosts="*", options=["no_root_squash"], allow_world_root=True)
    assert wanted == [{"hosts": "*", "options": ["no_root_squash"]}]


# --- exportfs -v listing ------------------------------------------------------------


def test_listing_of_the_kernel_nfsd_specimen():
    text = (SPECIMENS_DIR / "exportfs-v-kernel-nfsd.txt").read_text()
    assert exportfs._parse_listing(text) == {
        "/srv/xen/guest": [
            {
                "hosts": "10.99.0.0/24",
                "options": "sync,wdelay,hide,no_subtree_check,sec=sys,rw,insecure,"
                "no_root_squash,no_all_squash".split(","),
            }
        ]
    }


def test_listing_of_the_padded_specimen():
    text = (SPECIMENS_DIR / "exportfs-v-no-nfsd.txt").read_text()
    listing = exportfs._parse_listing(text)
    assert list(listing) == ["/srv/xentest"]
    assert listing["/srv/xentest"][0]["hosts"] == "192.0.2.10"
    assert "no_root_squash" in listing["/srv/xentest"][0]["options"]


def test_listing_of_long_paths_and_world():
    # Captured with the real exportfs 2.6.2 (Debian 12) in tests/isolate.
    text = (SPECIMENS_DIR / "exportfs-v-long-path-world.txt").read_text()
    listing = exportfs._parse_listing(text)
    assert {path: [c["hosts"] for c in clients] for path, clients in listing.items()} == {
        "/xen": ["192.0.2.10"],
        "/srv/xen/guests/a-long-guest-root": ["192.0.2.0/24", "@guests"],
        "/srv/my root": ["*"],
    }
    assert listing["/srv/xen/guests/a-long-guest-root"][1]["options"][0] == "sync"
