"""The kernel image reader: the x86 setup header (the release and the
payload's place); the rest of the reader is tested through guest_kernel."""


from tests.support import kernel_images as images
from tests.support.kernel_images import write
from xen_nfsroot_lib import kernel_image

DEBIAN = "6.1.0-50-amd64"


def test_setup_header_of_a_bzimage(boot):
    kernel = write(boot / f"vmlinuz-{DEBIAN}", images.bzimage(setup_sects=27))
    header = kernel_image.setup_header(kernel)
    assert header["protocol"] == "2.15"
    assert header["setup_sects"] == 27
    assert header["protected_mode_offset"] == 28 * 512
    assert header["version_offset"] == 0x400
    assert header["version_string"] == images.DEBIAN_VERSION_STRING
    assert header["release"] == DEBIAN
    assert header["payload_offset"] == 28 * 512 + 0x2CC
    with open(kernel, "rb") as handle:
        handle.seek(header["payload_offset"])
        assert handle.read(6) == b"\xfd7zXZ\x00"


def test_setup_sects_zero_means_four(boot):
    image = bytearray(images.bzimage(setup_sects=4))
    image[0x1F1] = 0
    header = kernel_image.setup_header(write(boot / "vmlinuz", bytes(image)))
    assert header["setup_sects"] == 4
    assert header["payload_offset"] == 5 * 512 + 0x2CC


def test_setup_header_of_something_else_is_none(boot):
    assert kernel_image.setup_header(write(boot / "vmlinux", images.vmlinux(DEBIAN))) is None
    assert kernel_image.setup_header(write(boot / "short", b"HdrS")) is None


def test_old_boot_protocol_has_no_payload_fields(boot):
    header = kernel_image.setup_header(write(boot / "vmlinuz", images.bzimage(protocol=0x0206)))
    assert header["protocol"] == "2.06"
    assert header["payload_offset"] is None
    assert header["release"] == DEBIAN


def test_a_release_from_a_file_name():
    assert kernel_image.release_from_name("/boot/vmlinuz-6.1.0-50-amd64") == DEBIAN
    assert kernel_image.release_from_name("/boot/vmlinux-2.6.18-53.1.14.el5.myxen.gz") == (
        "2.6.18-53.1.14.el5.myxen")
    assert kernel_image.release_from_name("/boot/kernel.img") is None
