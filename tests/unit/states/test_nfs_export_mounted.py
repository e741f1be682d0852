"""Who has an export mounted, as the NFS server records it (exportfs.mounts,
exportfs.mounted_by) and the state that confirms a guest's boot from there."""

import pytest

from tests.support.loader import functions
from xen_nfsroot.modules import exportfs
from xen_nfsroot.states import nfs_export
from xen_nfsroot_lib import export_table

RMTAB = ("10.99.0.2:/srv/xen/guest:0x00000001\n"
         "2001:db8::5:/srv/xen/v6:0x00000001\n"
         "10.99.0.9:/srv/other:0x00000002\n")
V4_INFO = 'clientid: 0xd9f9d09e65b29b5e\naddress: "10.99.0.3:737"\nname: "Linux NFSv4.2 g"\n'


@pytest.fixture
def server(tmp_path, monkeypatch):
    rmtab = tmp_path / "rmtab"
    clients = tmp_path / "clients"
    monkeypatch.setattr(export_table, "RMTAB", str(rmtab))
    monkeypatch.setattr(export_table, "NFSD_CLIENTS", str(clients))
    return rmtab, clients


@pytest.fixture
def configure_loader_modules():
    salt = functions(exportfs)
    return {nfs_export: {"__salt__": salt, "__opts__": {"test": False}, "__context__": {}},
            exportfs: {"__salt__": salt, "__context__": {}}}


def test_mounts_reads_rmtab_and_the_nfsv4_clients(server):
    rmtab, clients = server
    rmtab.write_text(RMTAB)
    (clients / "4").mkdir(parents=True)
    (clients / "4" / "info").write_text(V4_INFO)
    assert exportfs.mounts() == {
        "v3": [{"client": "10.99.0.2", "path": "/srv/xen/guest"},
               {"client": "2001:db8::5", "path": "/srv/xen/v6"},
               {"client": "10.99.0.9", "path": "/srv/other"}],
        "v4": ["10.99.0.3"],
        "sources": [str(rmtab), str(clients)],
    }


@pytest.mark.parametrize(("path", "clients", "mounted"), [
    ("/srv/xen/guest", ["10.99.0.2"], True),
    ("/srv/xen/guest/", ["10.99.0.0/24"], True),
    ("/srv/xen/guest", ["10.99.0.*"], True),
    ("/srv/xen/guest", ["10.99.0.5"], False),
    ("/srv/xen/v6", ["2001:db8::/64"], True),
    ("/srv/xen/other", ["10.99.0.3"], True),  # an NFSv4 client: no export named
])
def test_mounted_by(server, path, clients, mounted):
    rmtab, directory = server
    rmtab.write_text(RMTAB)
    (directory / "1").mkdir(parents=True)
    (directory / "1" / "info").write_text(V4_INFO)
    assert exportfs.mounted_by(path, clients)["mounted"] is mounted


def test_a_server_that_cannot_tell(server):
    assert exportfs.mounted_by("/xen", ["192.0.2.10"]) == {"mounted": None, "by": [],
                                                           "sources": []}
    ret = nfs_export.mounted("/xen", ["192.0.2.10"], timeout=0)
    assert ret["result"] is True
    assert ret["comment"] == "Not confirmed: this server cannot tell who has /xen mounted"
    assert ret["warnings"]


def test_the_state_confirms_or_fails(server):
    rmtab, _ = server
    rmtab.write_text(RMTAB)
    ret = nfs_export.mounted("/srv/xen/guest", ["10.99.0.2"], timeout=0)
    assert ret["result"] is True
    assert ret["comment"] == ("/srv/xen/guest is mounted by 10.99.0.2 (NFSv3, "
                              f"{rmtab})")
    ret = nfs_export.mounted("/srv/xen/guest2", ["10.99.0.3"], timeout=0)
    assert ret["result"] is False
    assert ret["comment"] == (f"No client of /srv/xen/guest2 (10.99.0.3) has it mounted after "
                              f"0 s (asked: {rmtab})")


def test_test_mode_asks_once_and_predicts(server, monkeypatch):
    rmtab, _ = server
    rmtab.write_text(RMTAB)
    monkeypatch.setitem(nfs_export.__opts__, "test", True)
    monkeypatch.setattr(nfs_export.time, "sleep", lambda seconds: pytest.fail("waited"))
    ret = nfs_export.mounted("/srv/xen/guest2", ["10.99.0.3"], timeout=60)
    assert ret["result"] is None
    assert ret["changes"] == {}
    assert ret["comment"] == ("Would wait up to 60 s for a client of /srv/xen/guest2 "
                              f"(10.99.0.3) to mount it (not mounted now; asked: {rmtab})")
    ret = nfs_export.mounted("/srv/xen/guest", ["10.99.0.2"], timeout=60)
    assert ret["result"] is True
    assert ret["comment"].startswith("/srv/xen/guest is mounted by 10.99.0.2")
