"""The parsers on the outputs the QEMU Xen lab captured from a real Xen 4.17
dom0 in its last run (lab/specimens/, saved by `lab/run --save-specimens`).

The other real outputs the tests read (guest consoles, kernel facts, earlier
captures) are test data, kept once, in tests/data/specimens/.
"""

from tests.support import REPO, SPECIMENS
from xen_nfsroot_lib import export_table, toolstack

LAB = REPO / "lab" / "specimens"


def read(name):
    return (LAB / name).read_text()


def test_xl_list_with_a_running_nfs_root_guest():
    domains = toolstack.parse_xl_list(read("xl-list.txt"))
    assert list(domains) == ["Domain-0", "nfsguest"]
    guest = domains["nfsguest"]
    assert guest["id"] == 1
    assert guest["memory_mb"] == 256
    assert guest["vcpus"] == 1
    assert guest["flags"] == "-b----"
    assert guest["state"] == "blocked"
    assert domains["Domain-0"]["state"] == "running"


def test_xl_list_dom0_only():
    assert list(toolstack.parse_xl_list(read("xl-list-dom0-only.txt"))) == ["Domain-0"]


def test_xl_list_long_gives_the_synthesized_command_line():
    domains = toolstack.parse_xl_list_long(read("xl-list-l.json"))
    guest = domains["nfsguest"]
    assert guest["memory_mb"] == 256
    assert guest["ramdisk"] == "/boot/initrd-small.img"
    cmdline = guest["cmdline"].split()
    assert cmdline[0] == "root=/dev/nfs"
    assert "nfsroot=10.99.0.1:/srv/xen/guest,vers=3" in cmdline
    assert "ip=10.99.0.2:10.99.0.1:10.99.0.1:255.255.255.0:nfsguest:eth0:off" in cmdline
    assert "boot=nfs" in cmdline


def test_exportfs_v_with_the_kernel_nfsd_both_layouts():
    before = export_table.parse_listing(read("exportfs-v-before.txt"))
    assert list(before) == ["/srv/unrelated"]
    active = export_table.parse_listing(read("exportfs-v-kernel-nfsd.txt"))
    assert list(active) == ["/srv/unrelated", "/srv/xen/guest", "/srv/xen/guest2"]
    # /srv/xen/guest2 is longer than 14 characters: the client is on the next line.
    (client,) = active["/srv/xen/guest2"]
    assert client["hosts"] == "10.99.0.3"
    assert {"rw", "no_root_squash", "async"} <= set(client["options"])
    (client,) = active["/srv/unrelated"]
    assert {"ro", "root_squash"} <= set(client["options"])


def test_each_capture_is_kept_once():
    """lab/specimens holds the lab's own captures only: no file there is a
    copy of one in tests/data/specimens."""
    kept = {path.read_bytes(): path.name for path in SPECIMENS.iterdir()}
    copies = sorted(path.name for path in LAB.iterdir() if path.read_bytes() in kept)
    assert copies == []
    # What `lab/run --save-specimens` writes (lab/onehost.py): the dom0's
    # domains and exports before, during and after the steps.
    assert {"xl-list-dom0-only.txt", "exportfs-v-before.txt", "xl-list.txt", "xl-list-l.json",
            "exportfs-v-kernel-nfsd.txt", "exportfs-v-after-absent.txt"} <= {
        path.name for path in LAB.iterdir()}
