"""The server's live state as its tools report it: ``exportfs -v`` listings
(the project's specimens), the indexed export table, exportfs's messages,
rmtab and nfsd's client records."""

from tests.support import SPECIMENS as SPECIMENS_DIR
from xen_nfsroot_lib import export_table

# --- exportfs -v listing ------------------------------------------------------------


def test_listing_of_the_kernel_nfsd_specimen():
    text = (SPECIMENS_DIR / "exportfs-v-kernel-nfsd.txt").read_text()
    assert export_table.parse_listing(text) == {
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
    listing = export_table.parse_listing(text)
    assert list(listing) == ["/srv/xentest"]
    assert listing["/srv/xentest"][0]["hosts"] == "192.0.2.10"
    assert "no_root_squash" in listing["/srv/xentest"][0]["options"]


def test_listing_of_long_paths_and_world():
    # Captured with the real exportfs 2.6.2 (Debian 12) in tests/isolate.
    text = (SPECIMENS_DIR / "exportfs-v-long-path-world.txt").read_text()
    listing = export_table.parse_listing(text)
    assert {path: [c["hosts"] for c in clients] for path, clients in listing.items()} == {
        "/xen": ["192.0.2.10"],
        "/srv/xen/guests/a-long-guest-root": ["192.0.2.0/24", "@guests"],
        "/srv/my root": ["*"],
    }
    assert listing["/srv/xen/guests/a-long-guest-root"][1]["options"][0] == "sync"


# --- the indexed table ---------------------------------------------------------------

LISTED = ("/xen          \t192.0.2.10(async,wdelay,hide,no_subtree_check,sec=sys,rw,"
          "no_root_squash,no_all_squash)\n")
SEED = [{"hosts": "192.0.2.10", "options": ["rw", "no_root_squash", "async", "no_subtree_check"]}]


def test_the_table_is_looked_up_by_directory():
    table = export_table.ExportTable.parse(LISTED)
    assert list(table.listing) == ["/xen"]
    assert table.clients("/xen/")[0]["hosts"] == "192.0.2.10"
    assert table.clients("/xen//") is table.clients("/xen")
    assert table.clients("/srv") == []


def test_compare_confirms_or_names_the_difference():
    listed = export_table.parse_listing(LISTED)["/xen"]
    assert export_table.compare("/xen", SEED, listed) == (["/xen for 192.0.2.10"], [])
    other = [{"hosts": "192.0.2.10", "options": ["ro"]}, {"hosts": "192.0.2.11", "options": []}]
    confirmed, problems = export_table.compare("/xen", other, listed)
    assert confirmed == []
    assert problems[0].startswith("exportfs -v lists /xen for 192.0.2.10(async,")
    assert problems[0].endswith(", not 192.0.2.10(ro)")
    assert problems[1] == "exportfs -v does not list /xen for 192.0.2.11"


# --- exportfs's messages ---------------------------------------------------------------

STALE = "exportfs: Failed to stat /srv/gone: No such file or directory"


def test_errors_leave_warnings_and_line_numbers_out():
    stderr = ("exportfs: No options for /srv/a 1.2.3.4: suggest 1.2.3.4(sync) to avoid warning\n"
              "exportfs: /etc/exports:3: unknown keyword \"x\"\n"
              "exportfs: /etc/exports [2]: Neither 'subtree_check' or 'no_subtree_check' "
              "specified for export \"*:/srv\".\n"
              "  Assuming default behaviour ('no_subtree_check').\n")
    assert export_table.errors(stderr) == ['exportfs: /etc/exports: unknown keyword "x"']
    assert export_table.errors(None) == []


def failed(stderr):
    return {"retcode": 1, "stdout": "", "stderr": stderr}


def test_rejection_keeps_the_change_when_the_errors_predate_it():
    assert export_table.rejection(failed(STALE), [STALE], ["/etc/exports"]) is None


def test_rejection_quotes_the_errors_the_run_introduced():
    new = 'exportfs: /etc/exports:2: unknown keyword "x"'
    text = export_table.rejection(failed(f"{STALE}\n{new}"), [STALE], ["/etc/exports"])
    assert text == ('exportfs -ra failed with exit code 1: exportfs: /etc/exports: unknown '
                    'keyword "x"; restored /etc/exports to the contents before this run')
    text = export_table.rejection(failed(STALE), None, [], ["/etc/exports"])
    assert text == (f"exportfs -ra failed with exit code 1: {STALE}; not restored (changed "
                    "by someone else since): /etc/exports")


# --- who has an export mounted ------------------------------------------------------------


def test_rmtab_and_nfsd_client_records():
    rmtab = ("10.99.0.2:/srv/xen/guest:0x00000001\n2001:db8::5:/srv/xen/v6:0x00000001\n"
             "garbage\n")
    assert export_table.parse_rmtab(rmtab) == [
        {"client": "10.99.0.2", "path": "/srv/xen/guest"},
        {"client": "2001:db8::5", "path": "/srv/xen/v6"},
    ]
    assert export_table.nfsd_client_address('clientid: 0xd9\naddress: "10.99.0.3:737"\n') == (
        "10.99.0.3")
    assert export_table.nfsd_client_address('address: "[2001:db8::7]:812"\n') == "2001:db8::7"
    assert export_table.nfsd_client_address("name: x\n") is None


def test_client_matching_and_the_evidence_of_a_mount():
    assert export_table.client_matches("10.99.0.2", "10.99.0.0/24")
    assert export_table.client_matches("10.99.0.2", "10.99.0.*")
    assert export_table.client_matches("10.99.0.2", "*")
    assert not export_table.client_matches("10.99.0.2", "10.99.1.0/24")
    assert not export_table.client_matches("10.99.0.2", "guest.example.com")
    v3 = [{"client": "10.99.0.2", "path": "/srv/xen/guest"}]
    assert export_table.mounted_by("/srv/xen/guest/", ["10.99.0.0/24"], v3, [], rmtab="/rmtab") == [
        "10.99.0.2 (NFSv3, /rmtab)"]
    assert export_table.mounted_by("/srv/other", ["10.99.0.2"], v3, ["10.99.0.2"]) == [
        "10.99.0.2 (an NFSv4 client of this server; NFSv4 does not say which export)"]


def test_a_long_path_is_read_whole_whatever_it_holds():
    """exportfs -v prints a path as it is: a tab, \\v, \\f or \\x1c in a
    long one is part of it, not a separator or a line break."""
    text = ("/srv/hostile/tab\tx\n\t\t192.0.2.10(sync,ro)\n"
            "/srv/hostile/v\x0bf\x0cs\x1c\n\t\t<world>(ro)\n"
            "/xen          \t192.0.2.11(rw)\n")
    assert export_table.parse_listing(text) == {
        "/srv/hostile/tab\tx": [{"hosts": "192.0.2.10", "options": ["sync", "ro"]}],
        "/srv/hostile/v\x0bf\x0cs\x1c": [{"hosts": "*", "options": ["ro"]}],
        "/xen": [{"hosts": "192.0.2.11", "options": ["rw"]}],
    }
