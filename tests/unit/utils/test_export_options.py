"""exports(5) options (normalisation, the listing's defaults) and the
validation of an export's path, clients and options."""

import pytest
from salt.exceptions import SaltInvocationError

from tests.support.seed import SEED_EXPORT as SEED
from xen_nfsroot_lib import export_options

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
    assert export_options.normalize_options(options) == normalised


def test_security_flavour_groups_keep_their_own_flags():
    one = export_options.normalize_options(["sec=krb5p", "rw", "sec=sys", "ro"])
    other = export_options.normalize_options(["sec=krb5p", "ro", "sec=sys", "rw"])
    assert one != other
    assert "sec=krb5p:sys" in one
    assert "krb5p:rw" in one
    assert "sys:ro" in one


def test_listing_options_compare_with_configured_ones():
    listed = "async,wdelay,hide,no_subtree_check,sec=sys,rw,no_root_squash,no_all_squash"
    tokens = export_options.option_tokens(listed.split(","), export_options.LISTING_DEFAULTS)
    assert tokens == export_options.option_tokens(SEED[0]["options"])
    listed = "sync,wdelay,hide,sec=sys,rw,root_squash,no_all_squash"
    tokens = export_options.option_tokens(listed.split(","), export_options.LISTING_DEFAULTS)
    assert tokens == export_options.option_tokens(["rw", "subtree_check"])


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
    assert export_options.validate("/xen", hosts=hosts, options=["ro"]) == [
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
        assert export_options.validate("/xen", hosts="h", options=[option])


def test_comma_separated_hosts_are_several_clients():
    assert export_options.validate("/srv", hosts="10.0.0.0/8,192.0.2.1", options=["ro"]) == [
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
        assert export_options.validate("/xen", **arguments)[0]["options"] == ["rw", "async"]
        return
    with pytest.raises(SaltInvocationError) as caught:
        export_options.validate("/xen", **arguments)
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
        export_options.validate(path, hosts="192.0.2.10")
    assert message in str(caught.value)


def test_world_root_allowed_when_asked():
    wanted = export_options.validate("/xen", hosts="*", options=["no_root_squash"],
                                     allow_world_root=True)
    assert wanted == [{"hosts": "*", "options": ["no_root_squash"]}]


@pytest.mark.parametrize("path", ["/srv/a\\040b", "/srv/a\\\\040b", "/srv/x\\134", "/\\011"])
def test_a_path_nfs_utils_would_read_back_as_another_is_refused(path):
    """exportfs writes a backslash to etab as ``\\134`` and reads
    ``\\134040`` back as a space: ``/srv/a\\040b`` would export ``/srv/a b``."""
    with pytest.raises(SaltInvocationError, match="three octal digits"):
        export_options.check_path(path)


@pytest.mark.parametrize("path", ["/srv/a\\b", "/srv/tail\\", "/srv/a\\04", "/srv/a\\089",
                                  "/srv/sp ace", '/srv/"q"', "/srv/#h", "/srv/t\tb"])
def test_other_backslashes_and_blanks_are_accepted(path):
    assert export_options.check_path(path) == path
