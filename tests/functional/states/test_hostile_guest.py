"""The server side against a hostile guest, through the real Salt loader.

A guest's root is exported rw,no_root_squash: its root user owns every entry
of the tree and may change any of them while the server's states run. Each
test plays such a guest against ``domu_fstab.nfs_root`` and checks that
nothing outside the tree changed: stand-ins for the server's ``/etc/fstab``,
``/etc/shadow``, a root-owned binary and ``/usr``, and (in the private mount
namespace of tests/isolate) the namespace's own ``/etc/fstab`` and
``/etc/shadow``, keep their bytes, mode and owner, and no file appears
beside them.

The races are won deterministically: :class:`Race` counts the file-system
calls the state makes (``os.open``, ``os.stat``, ``os.rename``, ``open``,
...) and performs the attack just before the k-th one, for every k from the
first call to the last, so every interleaving of the attack with the
state's steps is tried.
"""

import builtins
import contextlib
import os
import pathlib
import resource
import signal
import stat

import pytest

from tests.support.seed import SEED_FSTAB

SHADOW = b"root:$6$not-a-real-hash:19000:0:99999:7:::\n"
SERVER_FSTAB = b"UUID=0000-server / ext4 errors=remount-ro 0 1\n"
TOOL = b"\x7fELF a root-owned program\n"
SYSTEM_FILES = (pathlib.Path("/etc/fstab"), pathlib.Path("/etc/shadow"))
WATCHED_CALLS = (
    "open", "stat", "lstat", "fstat", "rename", "replace", "chmod", "chown", "fchmod",
    "fchown", "fsync", "unlink", "listdir", "scandir", "mkdir", "link", "symlink", "access",
    "read", "write",
)


class Race:
    """Run an attack just before the k-th file-system call on the guest's tree.

    A call counts when one of its path arguments lies under ``base``, when it
    is relative to a directory descriptor (``dir_fd``), or when it works on a
    descriptor that an earlier counted call opened.
    """

    def __init__(self, monkeypatch, attack, when, base):
        self.attack = attack
        self.when = when
        self.base = str(base)
        self.calls = 0
        self.fired = False
        self.descriptors = set()
        for name in WATCHED_CALLS:
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name), name == "open"))
        monkeypatch.setattr(builtins, "open", self._wrap(builtins.open, False))

    def _concerns_tree(self, args, kwargs):
        if kwargs.get("dir_fd") is not None or kwargs.get("src_dir_fd") is not None:
            return True
        for arg in args:
            if isinstance(arg, (str, os.PathLike)) and os.fspath(arg).startswith(self.base):
                return True
            if isinstance(arg, int) and not isinstance(arg, bool) and arg in self.descriptors:
                return True
        return False

    def _wrap(self, function, opens_descriptor):
        def watched(*args, **kwargs):
            counted = self._concerns_tree(args, kwargs)
            if counted:
                self.calls += 1
                if self.calls == self.when and not self.fired:
                    self.fired = True
                    self.attack()
            result = function(*args, **kwargs)
            if counted and opens_descriptor:
                self.descriptors.add(result)
            return result

        return watched


class Server:
    """Stand-ins for the server's own files, beside the guest's tree."""

    def __init__(self, base):
        self.etc = base / "server" / "etc"
        self.usr = base / "server" / "usr"
        (self.usr / "bin").mkdir(parents=True)
        self.etc.mkdir(parents=True)
        self.files = {
            self.etc / "fstab": (SERVER_FSTAB, 0o644),
            self.etc / "shadow": (SHADOW, 0o640),
            self.usr / "bin" / "tool": (TOOL, 0o755),
        }
        for path, (data, mode) in self.files.items():
            path.write_bytes(data)
            os.chmod(path, mode)
            os.chown(path, 0, 42)
        self.snapshot = self._state()
        self.system = {path: self._describe(path) for path in SYSTEM_FILES if path.exists()}

    @staticmethod
    def _describe(path):
        info = os.lstat(path)
        return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid

    def _state(self):
        found = {}
        for directory in (self.etc, self.usr, self.usr / "bin"):
            for path in directory.iterdir():
                if path.is_file() and not path.is_symlink():
                    found[path] = self._describe(path)
                else:
                    found[path] = os.readlink(path) if path.is_symlink() else "dir"
        return found

    def assert_untouched(self, guest):
        """Nothing outside the guest's tree changed, and nothing of the server's
        own files was copied into it."""
        assert self._state() == self.snapshot
        for path, before in self.system.items():
            assert self._describe(path) == before, f"{path} changed"
        secrets = [data for data, _ in self.files.values()]
        secrets += [before[0] for before in self.system.values()]
        own = {(os.stat(path).st_dev, os.stat(path).st_ino) for path in self.files}
        for path in guest.rglob("*"):
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in own:
                content = path.read_bytes()
                for secret in secrets:
                    assert secret.strip() not in content, f"{path} holds a server file"


@contextlib.contextmanager
def bounded(seconds=30, memory=2 << 30):
    """Fail instead of hanging or exhausting memory: a FIFO opened without
    O_NONBLOCK blocks, a device such as /dev/zero read to its end never ends."""
    hung = []

    def alarm(_signum, _frame):
        hung.append(seconds)
        raise TimeoutError(f"the state hung for {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + memory, limits[1]))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, limits)
        assert not hung, f"the state hung for {seconds} s"


def make_guest(base):
    root = base / "guest"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "fstab").write_bytes(SEED_FSTAB.encode())
    return root


def swap_for_link(path, target):
    """Replace a directory entry of the guest's tree by a symbolic link."""
    if path.is_dir() and not path.is_symlink():
        path.rename(path.with_name(path.name + ".moved"))
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def attacks(guest, server):
    etc = guest / "etc"
    fstab = etc / "fstab"
    relative_etc = os.path.relpath(server.etc, guest)
    relative_shadow = os.path.relpath(server.etc / "shadow", etc)

    def temporaries_to_shadow():
        for entry in list(etc.iterdir()) if etc.is_dir() else []:
            if entry.name.startswith(".fstab") or entry.name.startswith("fstab."):
                swap_for_link(entry, server.etc / "shadow")

    def hard_link():
        fstab.unlink(missing_ok=True)
        os.link(server.etc / "shadow", fstab)

    def fifo():
        fstab.unlink(missing_ok=True)
        os.mkfifo(fstab)

    def device():
        fstab.unlink(missing_ok=True)
        os.mknod(fstab, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero

    return {
        "etc-symlink-absolute": lambda: swap_for_link(etc, server.etc),
        "etc-symlink-relative": lambda: swap_for_link(etc, relative_etc),
        "etc-symlink-to-system-etc": lambda: swap_for_link(etc, "/etc"),
        "fstab-symlink-absolute": lambda: swap_for_link(fstab, server.etc / "shadow"),
        "fstab-symlink-relative": lambda: swap_for_link(fstab, relative_shadow),
        "fstab-symlink-dangling": lambda: swap_for_link(fstab, server.etc / "created"),
        "fstab-symlink-to-system": lambda: swap_for_link(fstab, "/etc/shadow"),
        "fstab-hard-link": hard_link,
        "fstab-fifo": fifo,
        "fstab-device": device,
        "temporary-file-symlink": temporaries_to_shadow,
        "usr-symlink": lambda: swap_for_link(guest / "usr", server.usr),
    }


ATTACKS = (
    "etc-symlink-absolute", "etc-symlink-relative", "etc-symlink-to-system-etc",
    "fstab-symlink-absolute", "fstab-symlink-relative", "fstab-symlink-dangling",
    "fstab-symlink-to-system", "fstab-hard-link", "fstab-fifo", "fstab-device",
    "temporary-file-symlink", "usr-symlink",
)


def test_every_attack_is_played(tmp_path):
    assert sorted(attacks(tmp_path / "g", Server(tmp_path))) == sorted(ATTACKS)


@pytest.fixture
def battlefield(tmp_path, isolated):
    def build(run):
        base = tmp_path / f"run-{run}"
        base.mkdir()
        server = Server(base)
        return make_guest(base), server

    return build


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_before_the_run_changes_nothing_outside(states, battlefield, attack):
    guest, server = battlefield(0)
    attacks(guest, server)[attack]()
    with bounded():
        ret = states.domu_fstab.nfs_root(name=str(guest))
    server.assert_untouched(guest)
    if attack.startswith(("etc-symlink", "fstab-")):
        assert ret.result is False, ret.comment
        assert ret.changes == {}


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_at_every_step_changes_nothing_outside(states, battlefield, monkeypatch, attack):
    when = 1
    while True:
        guest, server = battlefield(when)
        with monkeypatch.context() as patch:
            race = Race(patch, attacks(guest, server)[attack], when, guest.parent)
            with bounded():
                ret = states.domu_fstab.nfs_root(name=str(guest))
        server.assert_untouched(guest)
        assert "Traceback" not in ret.comment and "Error" not in ret.comment.split(":")[0], (
            ret.comment)
        if not race.fired:
            break
        when += 1
    assert when > 5  # the state made enough calls for the race to mean something


def test_predicted_temporary_names_are_refused_or_removed(states, tmp_path, isolated):
    server = Server(tmp_path)
    guest = make_guest(tmp_path)
    for name in (".fstab.tmp", ".fstab.xen-nfsroot-0000000000000000.tmp", "fstab.new",
                 "fstab~", ".fstab.swp"):
        (guest / "etc" / name).symlink_to(server.etc / "shadow")
    ret = states.domu_fstab.nfs_root(name=str(guest))
    assert ret.result is True, ret.comment
    server.assert_untouched(guest)
    assert (guest / "etc" / "fstab").read_text().startswith("#xen-nfsroot# /dev/sda1")
    assert not [p for p in (guest / "etc").iterdir() if ".xen-nfsroot-" in p.name]


REFUSALS = {
    "etc-symlink-absolute": "etc is a symbolic link, not a directory: refusing to follow it",
    "fstab-symlink-absolute": "etc/fstab is a symbolic link: refusing to follow or read it",
    "fstab-hard-link": "etc/fstab has 2 hard links (another name may lie outside the tree): "
                       "refusing to read or replace it",
    "fstab-fifo": "etc/fstab is a FIFO: refusing to follow or read it",
    "fstab-device": "etc/fstab is a character device: refusing to follow or read it",
}


@pytest.mark.parametrize("attack", sorted(REFUSALS))
def test_refusals_say_why(states, battlefield, attack):
    guest, server = battlefield(0)
    attacks(guest, server)[attack]()
    ret = states.domu_fstab.nfs_root(name=str(guest))
    assert ret.result is False
    assert ret.comment == f"name: {str(guest)!r} {guest}/{REFUSALS[attack]}"


def test_a_file_linked_twice_inside_the_tree_is_refused(states, tmp_path, isolated):
    guest = make_guest(tmp_path)
    os.link(guest / "etc" / "fstab", guest / "fstab.copy")
    ret = states.domu_fstab.nfs_root(name=str(guest))
    assert ret.result is False
    assert "hard links" in ret.comment
    assert (guest / "fstab.copy").read_text() == SEED_FSTAB


def test_the_servers_own_root_is_refused(states, isolated):
    ret = states.domu_fstab.nfs_root(name="/")
    assert ret.result is False
    assert "own root" in ret.comment
