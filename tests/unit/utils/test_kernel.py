"""The kernel configuration format and the NFS-root verdict from facts
already read (the check on files: tests/unit/modules/test_guest_kernel.py)."""

import pytest
from salt.exceptions import SaltInvocationError

from tests.support import REPO
from tests.support import kernel_images as images
from xen_nfsroot_lib import kernel

DATA = REPO / "tests" / "data" / "kernel"
DEBIAN = "6.1.0-50-amd64"


def config_text(name):
    return (DATA / f"{name}.config").read_text()


def test_parse_config_every_kind_of_line():
    text = (
        "#\n# Automatically generated file; DO NOT EDIT.\n#\n"
        "CONFIG_NFS_FS=m\n"
        "CONFIG_ROOT_NFS=y\n"
        "# CONFIG_IP_PNP is not set\n"
        'CONFIG_LOCALVERSION=""\n'
        'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) \\"quoted\\" 12.2.0"\n'
        "CONFIG_LOG_BUF_SHIFT=17\n"
        "CONFIG_PHYSICAL_START=0x1000000\n"
        "CONFIG_NEGATIVE=-1\n"
        "  CONFIG_INDENTED=y  \n"
        "# end of Networking options\n"
        "not a config line\n"
    )
    assert kernel.parse_config(text) == {
        "CONFIG_NFS_FS": "m",
        "CONFIG_ROOT_NFS": "y",
        "CONFIG_IP_PNP": "n",
        "CONFIG_LOCALVERSION": "",
        "CONFIG_CC_VERSION_TEXT": 'gcc-12 (Debian 12.2.0-14) "quoted" 12.2.0',
        "CONFIG_LOG_BUF_SHIFT": 17,
        "CONFIG_PHYSICAL_START": 0x1000000,
        "CONFIG_NEGATIVE": -1,
        "CONFIG_INDENTED": "y",
    }


def test_parse_the_debian_config_excerpt():
    options = kernel.parse_config(config_text(f"debian-{DEBIAN}"))
    assert options["CONFIG_NFS_FS"] == "m"
    assert options["CONFIG_IP_PNP"] == "n"
    assert "CONFIG_ROOT_NFS" not in options
    assert options["CONFIG_XEN_NETDEV_FRONTEND"] == "m"
    assert options["CONFIG_XEN_PV"] == "y"
    assert options["CONFIG_CC_VERSION_TEXT"] == "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"


def test_verdict_from_facts():
    options = kernel.parse_config(config_text(f"debian-{DEBIAN}"))
    facts = {"path": "/boot/vmlinuz", "version": DEBIAN, "config": "C", "options": options}
    ramdisk = {"path": "R", "files": list(images.initramfs_tools_files())}
    assert kernel.verdict(facts, ramdisk)["ok"] is True
    assert kernel.verdict(facts)["ok"] is False
    unread = {"path": "R", "files": None, "reason": "it is lzo-compressed"}
    assert kernel.verdict(facts, unread) == {
        "ok": None, "problems": [], "evidence": ["CONFIG_XEN_PV=y in C"],
        "unknowns": ["R was not checked: it is lzo-compressed"],
    }
    unknown = {"path": "/boot/vmlinuz", "options": None, "reason": "no config"}
    assert kernel.verdict(unknown)["unknowns"] == ["/boot/vmlinuz was not checked: no config"]


def test_the_guest_type_is_pv_or_pvh():
    assert kernel.check_guest_type("pvh") == "pvh"
    with pytest.raises(SaltInvocationError, match="^guest_type: 'hvm' is not one of pv, pvh$"):
        kernel.verdict({"options": None}, guest_type="hvm")
