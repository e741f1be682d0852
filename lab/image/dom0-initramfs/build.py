"""Build the dom0's own initramfs: busybox, /init and the modules its root needs.

    build.py ROOT KERNEL_RELEASE OUT

ROOT is the dom0 tree (its /bin/busybox is static, its /lib/modules has the
kernel's modules).  OUT gets an uncompressed newc cpio archive (nothing to
decompress under emulation).  Python only: no cpio on the host.
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
# The root is an ext4 filesystem on a virtio disk (ext4 checksums need crc32c).
WANTED = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]


def load_order(modules_dir, wanted):
    """Module paths (relative to modules_dir), each after its dependencies."""
    deps = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, needs = line.partition(":")
        deps[path] = needs.split()
    by_name = {pathlib.Path(p).name.removesuffix(".ko").replace("-", "_"): p for p in deps}
    order = []

    def add(path):
        if path in order:
            return
        # modules.dep lists the dependencies the module needs directly first.
        for need in reversed(deps[path]):
            add(need)
        order.append(path)

    for name in wanted:
        add(by_name[name])
    return order


class Cpio:
    def __init__(self):
        self.data = bytearray()
        self.ino = 0

    def add(self, name, mode, body=b"", rdev=(0, 0)):
        self.ino += 1
        fields = [self.ino, mode, 0, 0, 1, 0, len(body), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        self.data += b"070701" + b"".join(b"%08X" % f for f in fields)
        self.data += name.encode() + b"\0"
        self._pad()
        self.data += body
        self._pad()

    def _pad(self):
        self.data += b"\0" * (-len(self.data) % 4)

    def finish(self):
        self.add("TRAILER!!!", 0)
        return bytes(self.data)


def main():
    root, release, out = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
    modules_dir = root / "lib" / "modules" / release
    order = load_order(modules_dir, WANTED)
    archive = Cpio()
    for folder in ("bin", "dev", "proc", "sys", "root", "lib", "lib/modules"):
        archive.add(folder, 0o40755)
    # The kernel opens /dev/console before /init runs.
    archive.add("dev/console", 0o20600, rdev=(5, 1))
    archive.add("bin/busybox", 0o100755, (root / "bin" / "busybox").read_bytes())
    archive.add("init", 0o100755, (HERE / "init").read_bytes())
    names = []
    for path in order:
        name = pathlib.Path(path).name
        names.append(name)
        archive.add(f"lib/modules/{name}", 0o100644, (modules_dir / path).read_bytes())
    archive.add("modules", 0o100644, "".join(f"{n}\n" for n in names).encode())
    out.write_bytes(archive.finish())
    print(f"{out.name}: {len(names)} modules ({' '.join(names)}), {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
