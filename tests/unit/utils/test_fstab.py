"""The guest fstab line model (parse/render), its validation and its pure edits."""

import re
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

from tests.support import DATA
from tests.support.fstab_cases import (
    CORPUS_FSTAB_EXPECTED,
    FSTAB_CASES,
    FSTAB_FILES,
    MARKER,
    NFS_ROOT_LINE,
    commented_out,
    fates,
    lines_of,
    read,
)
from tests.support.seed import SEED_FSTAB as SEED
from tests.support.seed import SEED_FSTAB_RESULT as SEED_RESULT
from xen_nfsroot_lib import fstab

KINDS = {"entry": "e", "disabled": "d", "comment": "c", "blank": "b", "other": "o"}


# --------------------------------------------------------------------------- parse/render


def check_round_trip(path):
    data = path.read_bytes()
    text = data.decode("utf-8", "surrogateescape")
    lines = fstab.parse(text)
    assert fstab.render(lines).encode("utf-8", "surrogateescape") == data
    assert [line["raw"] for line in lines] == lines_of(text)


def test_every_data_file_has_an_expectation():
    assert sorted(FSTAB_CASES) == [path.name for path in FSTAB_FILES]


@pytest.mark.parametrize("path", FSTAB_FILES, ids=lambda p: p.name)
def test_data_file_round_trip_byte_for_byte(path):
    check_round_trip(path)


@pytest.mark.parametrize("path", FSTAB_FILES, ids=lambda p: p.name)
def test_data_file_line_kinds(path):
    lines = fstab.parse(read(path))
    assert "".join(KINDS[line["kind"]] for line in lines) == FSTAB_CASES[path.name].kinds


def test_corpus_round_trip_byte_for_byte(corpus_fstab):
    check_round_trip(corpus_fstab)


def test_octal_escapes_in_mount_points_are_decoded():
    lines = fstab.parse(read(DATA / "fstab" / "octal-escapes.fstab"))
    assert [line["name"] for line in lines if line["kind"] == "entry"] == [
        "/", "/srv/my data", "/mnt/media library", "/mnt/scratch\tarea"]


@given(st.binary(max_size=400))
def test_any_bytes_round_trip(data):
    text = data.decode("utf-8", "surrogateescape")
    assert fstab.render(fstab.parse(text)).encode("utf-8", "surrogateescape") == data


@given(st.text(alphabet=" \t\r\n\x0b\x0c\x1c#/=:,\\0123abcdef", max_size=200))
def test_lines_end_at_newline_only(text):
    lines = fstab.parse(text)
    assert "".join(line["raw"] for line in lines) == text
    for line in lines[:-1]:
        assert line["raw"].endswith("\n") and "\n" not in line["raw"][:-1]


def test_parse_kinds_and_fields():
    text = (
        "# comment\n"
        "   \t\n"
        "/dev/sda1\t/mnt/my\\040disk ext4 noatime 0 2\r\n"
        "#xen-nfsroot# /dev/sdb2 swap swap defaults 0 0\n"
        "#xen-nfsroot# not an entry at all because it has far too many words\n"
        "lonely\n"
        "a b c d x y\n"
        "srv:/home /home"
    )
    lines = fstab.parse(text)
    assert [line["kind"] for line in lines] == [
        "comment", "blank", "entry", "disabled", "comment", "other", "other", "entry",
    ]
    assert lines[2] == {
        "kind": "entry",
        "raw": "/dev/sda1\t/mnt/my\\040disk ext4 noatime 0 2\r\n",
        "device": "/dev/sda1",
        "name": "/mnt/my disk",
        "fstype": "ext4",
        "opts": "noatime",
        "dump": 0,
        "pass_num": 2,
    }
    assert lines[3]["device"] == "/dev/sdb2" and lines[3]["name"] == "swap"
    assert lines[7]["fstype"] is None and lines[7]["dump"] is None


def test_render_formats_records_without_raw():
    lines = fstab.parse("proc /proc proc defaults 0 0\n")
    lines.append({"kind": "entry", "device": "/dev/nfs", "name": "/", "fstype": "nfs"})
    assert fstab.render(lines) == (
        "proc /proc proc defaults 0 0\n"
        "/dev/nfs                /                       nfs     defaults        0 0\n"
    )


FIELD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=12,
).filter(lambda value: value.strip() and not value.startswith("#"))
WORD = st.text(alphabet="abcdefxyz0123,=_.", min_size=1, max_size=10)


ENTRY = st.fixed_dictionaries(
    {
        "device": FIELD_TEXT,
        "name": FIELD_TEXT,
        "fstype": WORD,
        "opts": WORD,
        "dump": st.integers(0, 9),
        "pass_num": st.integers(0, 9),
    }
)


@given(
    entry=ENTRY,
    template=st.sampled_from(
        [None, SEED.splitlines()[0], "a\tb\tc\td\t0\t0", "a b c d 0 0", "  x   y z", "a\t\tb c"]
    ),
)
def test_format_then_parse_gives_the_entry_back(entry, template):
    (line,) = fstab.parse(fstab.format_entry(entry, template) + "\n")
    assert line["kind"] == "entry"
    assert {key: line[key] for key in entry} == entry


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (SEED.splitlines()[0], SEED_RESULT.splitlines()[1]),
        ("/dev/xvda1 / ext4 defaults 1 1", "/dev/nfs / nfs defaults 0 0"),
        ("/dev/sda1\t/\text3\tdefaults\t1\t1", "/dev/nfs\t/\tnfs\tdefaults\t0\t0"),
        (
            "/dev/sda1 /        ext2   defaults,noatime 1 1",
            "/dev/nfs  /        nfs    defaults         0 0",
        ),
        (None, "/dev/nfs                /                       nfs     defaults        0 0"),
    ],
)
def test_format_entry_follows_the_template_layout(template, expected):
    entry = {"device": "/dev/nfs", "name": "/", "fstype": "nfs", "opts": "defaults",
             "dump": 0, "pass_num": 0}
    assert fstab.format_entry(entry, template) == expected


@pytest.mark.parametrize(
    ("line", "local"),
    [
        ("/dev/sdb2 swap swap defaults 0 0", True),
        ("/dev/mapper/dmroot / ext4 defaults 1 1", True),
        ("UUID=1234 /data ext4 defaults 0 2", True),
        ("LABEL=scratch /scratch auto defaults 0 0", True),
        ("PARTUUID=0a-01 /boot vfat defaults 0 2", True),
        ("PARTLABEL=swap1 none swap sw 0 0", True),
        ("/dev/nfs / nfs defaults 0 0", False),
        ("none /dev/shm tmpfs defaults 0 0", False),
        ("devpts /dev/pts devpts gid=5,mode=620 0 0", False),
        ("srv:/home /home nfs defaults 0 0", False),
        ("/dev/disk /mnt/dev none bind 0 0", False),
        ("/dev/sdc1 /mnt/x ext4 bind 0 0", False),
        ("/rw/home /home none noauto,bind,defaults 0 0", False),
    ],
)
def test_is_local_disk(line, local):
    (entry,) = fstab.parse(line)
    assert fstab.is_local_disk(entry) is local


# --------------------------------------------------------------------------- nfs root policy


def test_seed_becomes_the_seed_result():
    text, changes = fstab.plan_nfs_root(SEED)
    assert text == SEED_RESULT
    assert changes == {
        "root": {"old": "/dev/sda1 / ext3 defaults 1 1", "new": "/dev/nfs / nfs defaults 0 0"},
        "disabled": ["/dev/sdb2 swap swap defaults 0 0"],
    }
    assert fstab.plan_nfs_root(SEED_RESULT) == [SEED_RESULT, {}]


def check_through_nfs_root(before):
    """What holds for any fstab; returns nfs_root's [after, changes].

    Every line is kept, commented out or (a /dev/nfs root line) rewritten in
    place; the lines commented out are the old root line and those named in
    ``disabled``; one root line is added unless one was rewritten; and a second
    run changes nothing.
    """
    after, changes = fstab.plan_nfs_root(before)
    line_fates, inserted = fates(before, after)
    if not changes:
        assert after == before
        return after, changes
    old_root = changes.get("root", {}).get("old")
    in_place = old_root is not None and old_root.startswith("/dev/nfs ")
    disabled = [fstab.summary(line) for line in commented_out(before, line_fates)]
    assert sorted(disabled) == sorted(
        ([old_root] if old_root and not in_place else []) + changes.get("disabled", []))
    if "root" not in changes:
        assert "replaced" not in line_fates and not inserted
    elif in_place:
        # an NFS root line with other settings is updated in place, nothing else moves
        assert line_fates.count("replaced") == 1 and not inserted
    else:
        assert changes["root"]["new"] == NFS_ROOT_LINE
        assert "replaced" not in line_fates
        assert [fstab.summary(line) for _, line in inserted] == [NFS_ROOT_LINE]
    assert fstab.plan_nfs_root(after) == [after, {}]
    return after, changes


def check_through_nfs_root_expected(before, old_root, expected_disabled):
    """check_through_nfs_root, and the root line and lines commented out are the expected ones."""
    after, changes = check_through_nfs_root(before)
    if old_root is None:
        assert (after, changes) == (before, {})
        return
    assert changes.get("disabled", []) == expected_disabled
    assert changes["root"] == {"old": old_root or None, "new": NFS_ROOT_LINE}


@pytest.mark.parametrize("path", FSTAB_FILES, ids=lambda p: p.name)
def test_data_file_through_nfs_root(path):
    case = FSTAB_CASES[path.name]
    check_through_nfs_root_expected(read(path), case.old_root, case.disabled)


def test_corpus_through_nfs_root(corpus_fstab):
    expected = CORPUS_FSTAB_EXPECTED.get(corpus_fstab.name)
    if expected is None:  # a file the table does not know: what holds for any fstab
        check_through_nfs_root(read(corpus_fstab))
    else:
        check_through_nfs_root_expected(read(corpus_fstab), *expected)


def test_old_root_line_stays_above_the_new_one():
    after, _ = fstab.plan_nfs_root(read(DATA / "fstab" / "nfs-server-root-line.fstab"))
    lines = after.splitlines()
    index = lines.index("#xen-nfsroot# 192.0.2.1:/srv/xen/base\t/\tnfs\ttcp,nolock\t0\t0")
    assert lines[index - 1] == "# NFS root"
    assert lines[index + 1] == "/dev/nfs\t/\tnfs\tdefaults\t0\t0"


def test_crlf_data_file_keeps_its_line_endings():
    after, _ = fstab.plan_nfs_root(read(DATA / "fstab" / "crlf-line-endings.fstab"))
    assert after.count("\n") == after.count("\r\n") == 6
    assert "\n/dev/nfs\t/\tnfs\tdefaults\t0 0\r\n" in after


def test_root_line_goes_before_the_first_entry_when_there_is_none():
    before = "# header\n\nproc /proc proc defaults 0 0\n"
    assert fstab.plan_nfs_root(before)[0] == (
        "# header\n\n/dev/nfs / nfs defaults 0 0\nproc /proc proc defaults 0 0\n"
    )


def test_empty_file_gets_only_the_root_line():
    assert fstab.plan_nfs_root("") == [
        "/dev/nfs                /                       nfs     defaults        0 0\n",
        {"root": {"old": None, "new": "/dev/nfs / nfs defaults 0 0"}},
    ]


def test_missing_final_newline_is_kept():
    before = "proc /proc proc defaults 0 0\n/dev/sda1 / ext3 defaults 1 1"
    after, _ = fstab.plan_nfs_root(before)
    assert after == (
        "proc /proc proc defaults 0 0\n#xen-nfsroot# /dev/sda1 / ext3 defaults 1 1\n"
        "/dev/nfs / nfs defaults 0 0"
    )
    before = "/dev/sda1 / ext3 defaults 1 1\n/dev/sdb2 swap swap defaults 0 0"
    after, _ = fstab.plan_nfs_root(before)
    assert after.endswith("\n#xen-nfsroot# /dev/sdb2 swap swap defaults 0 0")


def test_crlf_endings_are_kept():
    before = "/dev/sda1 / ext3 defaults 1 1\r\nproc /proc proc defaults 0 0\r\n"
    assert fstab.plan_nfs_root(before)[0] == (
        "#xen-nfsroot# /dev/sda1 / ext3 defaults 1 1\r\n/dev/nfs / nfs defaults 0 0\r\n"
        "proc /proc proc defaults 0 0\r\n"
    )


def test_nfs_root_line_with_other_settings_is_updated_in_place():
    before = "/dev/nfs / nfs defaults 0 0\nproc /proc proc defaults 0 0\n"
    after, changes = fstab.plan_nfs_root(before, opts="vers=3,tcp")
    assert after == "/dev/nfs / nfs vers=3,tcp 0 0\nproc /proc proc defaults 0 0\n"
    assert changes == {
        "root": {"old": "/dev/nfs / nfs defaults 0 0", "new": "/dev/nfs / nfs vers=3,tcp 0 0"}
    }


def test_opts_list_is_joined():
    after, _ = fstab.plan_nfs_root("", opts=["vers=3", "tcp"])
    assert after.split()[3] == "vers=3,tcp"


def test_second_disk_root_line_is_commented_out_too():
    before = (
        "/dev/sda1 / ext3 defaults 1 1\n/dev/nfs / nfs defaults 0 0\nLABEL=r / ext4 defaults 0 0\n"
    )
    after, changes = fstab.plan_nfs_root(before)
    assert after == (
        "#xen-nfsroot# /dev/sda1 / ext3 defaults 1 1\n/dev/nfs / nfs defaults 0 0\n"
        "#xen-nfsroot# LABEL=r / ext4 defaults 0 0\n"
    )
    assert changes == {
        "disabled": ["/dev/sda1 / ext3 defaults 1 1", "LABEL=r / ext4 defaults 0 0"]
    }


def test_root_line_removed_later_returns_below_the_commented_old_one():
    before = "proc /proc proc defaults 0 0\n#xen-nfsroot# /dev/sda1 / ext3 defaults 1 1\n"
    assert fstab.plan_nfs_root(before)[0] == before + "/dev/nfs / nfs defaults 0 0\n"


def test_disable_list_selects_exactly_the_listed_lines():
    after, changes = fstab.plan_nfs_root(
        SEED + "srv:/home /home nfs defaults 0 0\n/dev/sdc1 /data ext4 defaults 0 2\n",
        disable=["/dev/sdb2", "/home/"],
    )
    assert changes["disabled"] == [
        "/dev/sdb2 swap swap defaults 0 0", "srv:/home /home nfs defaults 0 0"
    ]
    assert after.endswith(
        "#xen-nfsroot# srv:/home /home nfs defaults 0 0\n/dev/sdc1 /data ext4 defaults 0 2\n"
    )


def test_empty_disable_list_disables_nothing():
    after, changes = fstab.plan_nfs_root(SEED, disable=[])
    assert "disabled" not in changes
    assert after.endswith(
        "\n/dev/sdb2               swap                    swap    defaults        0 0\n"
    )


def test_user_comments_that_look_like_entries_are_left_alone():
    before = "/dev/nfs / nfs defaults 0 0\n#/dev/sdb2 swap swap defaults 0 0\n"
    assert fstab.plan_nfs_root(before) == [before, {}]


# Generated fstabs: every line's category is known, so its fate is predictable.
SEP = st.sampled_from([" ", "\t", "  ", "\t\t", "      ", " \t"])
DISK_DEVICE = st.sampled_from(
    ["/dev/sda1", "/dev/xvdb", "/dev/mapper/vg-data", "UUID=0a1b-2c3d", "LABEL=data",
     "PARTUUID=0a-01", "PARTLABEL=swap1", "/dev/disk/by-id/ata-x"]
)
CATEGORIES = {
    "disk": st.tuples(DISK_DEVICE, st.sampled_from(["swap", "/data", "/var", "none", "/mnt/x"]),
                      st.sampled_from(["ext4", "xfs", "swap", "auto", "btrfs"])),
    "disk_root": st.tuples(DISK_DEVICE, st.just("/"), st.sampled_from(["ext3", "ext4"])),
    "pseudo": st.tuples(st.sampled_from(["none", "proc", "tmpfs", "sysfs", "devpts"]),
                        st.sampled_from(["/proc", "/dev/pts", "/tmp", "/dev/shm", "/sys"]),
                        st.sampled_from(["proc", "tmpfs", "sysfs", "devpts", "devtmpfs"])),
    "network": st.tuples(st.sampled_from(["srv:/home", "192.0.2.1:/x", "//srv/share"]),
                         st.sampled_from(["/home", "/srv"]),
                         st.sampled_from(["nfs", "nfs4", "cifs"])),
    "bind": st.tuples(st.sampled_from(["/dev", "/srv/a", "/dev/sdz9"]),
                      st.sampled_from(["/mnt/dev", "/b"]), st.just("none")),
}


@st.composite
def fstab_line(draw):
    category = draw(st.sampled_from(
        ["disk", "disk_root", "pseudo", "network", "bind", "comment", "blank", "junk"]
    ))
    ending = draw(st.sampled_from(["\n", "\n", "\n", "\r\n"]))
    if category == "comment":
        return category, draw(st.sampled_from(
            ["#", "# /dev/sda1 / ext3 defaults 1 1", "  # indented", "##", "#LABEL=x /y ext4"]
        )) + ending, None
    if category == "blank":
        return category, draw(st.sampled_from(["", " ", "\t \t"])) + ending, None
    if category == "junk":
        return category, draw(st.sampled_from(
            ["lonely", "a b c d e f g h", "/dev/sdb1 /x ext4 defaults zero 0"]
        )) + ending, None
    device, name, fstype = draw(CATEGORIES[category])
    fields = [device, name, fstype, "bind" if category == "bind" else "defaults", "0", "0"]
    count = draw(st.integers(3 if category in ("bind", "pseudo", "network") else 2, 6))
    fields = fields[:count]
    lead = draw(st.sampled_from(["", "", " ", "\t"]))
    text = lead + "".join(field + draw(SEP) for field in fields[:-1]) + fields[-1]
    text += draw(st.sampled_from(["", "", " ", "\t"]))
    return category, text + ending, (device, name)


@st.composite
def fstab_file(draw):
    lines = draw(st.lists(fstab_line(), max_size=12))
    if lines and lines[-1][1].rstrip("\r\n") and draw(st.booleans()):
        category, raw, key = lines[-1]
        lines[-1] = (category, raw.rstrip("\r\n"), key)  # no final newline
    return lines


def expected_fates(lines, selected):
    """Fate of each generated line, and the index the root line follows (None: none)."""
    roots = [i for i, (category, _, _) in enumerate(lines) if category == "disk_root"]
    result = []
    for category, _, key in lines:
        if category == "disk_root":
            result.append("disabled")
        elif key is not None and selected(category, key):
            result.append("disabled")
        else:
            result.append("kept")
    return result, (roots[0] if roots else None)


def check_nfs_root(lines, disable):
    before = "".join(raw for _, raw, _ in lines)
    after, changes = fstab.plan_nfs_root(before, disable=disable)
    if disable is None:
        def selected(category, _key):
            return category == "disk"
    else:
        def selected(_category, key):
            return bool(set(key) & set(disable))
    want, first_root = expected_fates(lines, selected)
    got, inserted = fates(before, after)
    assert got == want
    # exactly one root line added, right below the first disk root line, or
    # before the first entry when there is no root line at all
    assert [fstab.summary(line) for _, line in inserted] == ["/dev/nfs / nfs defaults 0 0"]
    index = inserted[0][0]
    after_lines = lines_of(after)
    if first_root is not None:
        assert after_lines[index - 1].startswith(MARKER)
        old_root = lines[first_root][1]
        assert after_lines[index - 1][len(MARKER) :].rstrip("\n") == old_root.rstrip("\n")
    else:
        entries = [i for i, (c, _, key) in enumerate(lines) if key is not None]
        assert index == (entries[0] if entries else len(lines))
    assert len(changes.get("disabled", [])) == want.count("disabled") - (first_root is not None)
    assert fstab.plan_nfs_root(after, disable=disable) == [after, {}]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(fstab_file())
def test_generated_fstabs_default_policy(lines):
    check_nfs_root(lines, None)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(fstab_file(), st.data())
def test_generated_fstabs_disable_list(lines, data):
    keys = sorted({part for _, _, key in lines if key for part in key if part != "/"})
    disable = data.draw(st.lists(st.sampled_from(keys), unique=True) if keys else st.just([]))
    check_nfs_root(lines, disable)


# --------------------------------------------------------------------------- one entry


def test_entry_appended_in_the_layout_of_the_last_entry():
    after, changes = fstab.plan_entry(SEED_RESULT, "/home", "192.0.2.1:/home", "nfs",
                                           opts="vers=3")
    assert after == SEED_RESULT + (
        "192.0.2.1:/home         /home                   nfs     vers=3          0 0\n"
    )
    assert changes == {"entry": {"old": None, "new": "192.0.2.1:/home /home nfs vers=3 0 0"}}
    assert fstab.plan_entry(after, "/home", "192.0.2.1:/home", "nfs", opts="vers=3") == [
        after, {}
    ]


def test_entry_appended_after_a_line_without_newline():
    after, _ = fstab.plan_entry("proc /proc proc defaults 0 0", "/tmp", "tmpfs", "tmpfs")
    assert after == "proc /proc proc defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\n"


def test_entry_with_other_settings_rewritten_in_place():
    before = "# x\nsrv:/home\t/home\tnfs\tdefaults\t0\t0\nproc /proc proc defaults 0 0\n"
    after, changes = fstab.plan_entry(before, "/home/", "srv:/home", "nfs4", opts="rw")
    assert after == "# x\nsrv:/home\t/home/\tnfs4\trw\t0\t0\nproc /proc proc defaults 0 0\n"
    assert changes == {"entry": {"old": "srv:/home /home nfs defaults 0 0",
                                 "new": "srv:/home /home/ nfs4 rw 0 0"}}


def test_entry_duplicates_are_commented_out():
    before = "a /x ext4 defaults 0 0\nb /x ext4 defaults 0 0\n"
    after, changes = fstab.plan_entry(before, "/x", "b", "ext4")
    assert after == "#xen-nfsroot# a /x ext4 defaults 0 0\nb /x ext4 defaults 0 0\n"
    assert changes == {"disabled": ["a /x ext4 defaults 0 0"]}


def test_swap_entries_are_matched_by_device_too():
    before = "/dev/sda3 swap swap defaults 0 0\n"
    after, changes = fstab.plan_entry(before, "swap", "/dev/sdb2", "swap")
    assert after == before + "/dev/sdb2 swap swap defaults 0 0\n"
    assert "disabled" not in changes


def test_entry_commented_out_by_nfs_root_is_restored_byte_for_byte():
    after, changes = fstab.plan_entry(SEED_RESULT, "swap", "/dev/sdb2", "swap")
    assert after == SEED_RESULT.replace(
        "#xen-nfsroot# /dev/sdb2", "/dev/sdb2"
    )
    assert changes == {"entry": {"old": "#xen-nfsroot# /dev/sdb2 swap swap defaults 0 0",
                                 "new": "/dev/sdb2 swap swap defaults 0 0"}}


def test_absent_comments_out_and_is_idempotent():
    after, changes = fstab.plan_absent(SEED, "/proc")
    assert after == SEED.replace("none                    /proc",
                                 "#xen-nfsroot# none                    /proc")
    assert changes == {"disabled": ["none /proc proc defaults 0 0"]}
    assert fstab.plan_absent(after, "/proc") == [after, {}]
    assert fstab.plan_absent(SEED, "swap", device="/dev/sdz9") == [SEED, {}]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"fstype": ""}, "fstype", ""),
        ({"fstype": "nfs 4"}, "fstype", "nfs 4"),
        ({"fstype": None}, "fstype", None),
        ({"opts": ""}, "opts", ""),
        ({"opts": "rw, tcp"}, "opts", "rw, tcp"),
        ({"opts": "rw\n"}, "opts", "rw\n"),
        ({"opts": []}, "opts", []),
        ({"opts": ["rw", "a,b"]}, "opts", "a,b"),
        ({"dump": -1}, "dump", -1),
        ({"dump": "0"}, "dump", "0"),
        ({"dump": True}, "dump", True),
        ({"pass_num": 1.5}, "pass_num", 1.5),
        ({"disable": "/dev/sdb2"}, "disable", "/dev/sdb2"),
        ({"disable": ["/dev/sdb2", 3]}, "disable", 3),
        ({"disable": [""]}, "disable", ""),
    ],
)
def test_nfs_root_validation_names_field_and_value(kwargs, field, value):
    with pytest.raises(SaltInvocationError) as err:
        fstab.plan_nfs_root(SEED, **kwargs)
    assert str(err.value).startswith(f"{field}: {value!r} ")


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [
        (("x", "dev", "ext4"), "name", "x"),
        (("/x\ny", "dev", "ext4"), "name", "/x\ny"),
        (("/x", "", "ext4"), "device", ""),
        (("/x", "a\nb", "ext4"), "device", "a\nb"),
        (("/x", "dev", "ext 4"), "fstype", "ext 4"),
    ],
)
def test_entry_validation_names_field_and_value(args, field, value):
    with pytest.raises(SaltInvocationError) as err:
        fstab.plan_entry(SEED, *args)
    assert str(err.value).startswith(f"{field}: {value!r} ")


def test_check_nfs_root_completes_the_defaults():
    assert fstab.check_nfs_root() == fstab.check_nfs_root({}) == {
        "fstype": "nfs", "opts": "defaults", "dump": 0, "pass_num": 0, "disable": None}
    assert fstab.check_nfs_root({"name": "/xen", "opts": ["vers=3", "tcp"],
                                 "disable": ("/dev/sdb2",)}) == {
        "fstype": "nfs", "opts": "vers=3,tcp", "dump": 0, "pass_num": 0,
        "disable": ["/dev/sdb2"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("vers=3", "fstab: 'vers=3' must be a mapping of fstype, opts, dump, pass_num, disable"),
        ({"fstyp": "nfs"}, "fstab.fstyp: 'nfs' is not an NFS root line setting "
                           "(fstype, opts, dump, pass_num, disable)"),
        ({"disable": "/dev/sdb2"},
         "disable: '/dev/sdb2' must be a list of devices or mount points"),
        ({"opts": ["rw", "a,b"]}, "opts: 'a,b' must be a single option (one per list item)"),
        ({"dump": "0"}, "dump: '0' must be an integer >= 0"),
    ],
)
def test_check_nfs_root_errors_name_field_and_value(args, message):
    with pytest.raises(SaltInvocationError) as err:
        fstab.check_nfs_root(args)
    assert str(err.value) == message


def test_check_nfs_root_names_the_pillar_field():
    with pytest.raises(SaltInvocationError, match=r"^guests\.g\.fstab\.x: 1 is not"):
        fstab.check_nfs_root({"x": 1}, "guests.g.fstab")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fstab.plan_absent(SEED, "home"),
         "name: 'home' must be an absolute path, 'swap' or 'none'"),
        (lambda: fstab.plan_absent(SEED, "swap", device=" "),
         "device: ' ' must be a non-empty string"),
        (lambda: fstab.parse(b"x"), "text: b'x' must be a string"),
    ],
)
def test_other_errors_have_the_one_format(call, message):
    with pytest.raises(SaltInvocationError) as err:
        call()
    assert str(err.value) == message


# --------------------------------------------------------------------------- the real reader

FINDMNT = shutil.which("findmnt")
# Characters libmount might read otherwise: blanks, controls, comments,
# escapes (``\040``), option syntax, quotes, non-ASCII.
HOSTILE = ' \t\r\x0b\x0c\\#"\',=04179ax\u00e9\u2603'
# Mostly without the blanks a field of a type or an option refuses.
WORDS = st.one_of(st.text(HOSTILE.replace(" ", "").replace("\t", ""), min_size=1, max_size=6),
                  st.text(HOSTILE, min_size=1, max_size=6))


def findmnt_fields(path):
    """[[SOURCE, TARGET, FSTYPE, OPTIONS]] as libmount reads the fstab at
    path (findmnt's raw output, its ``\\xHH`` escapes decoded)."""
    out = subprocess.run(
        [FINDMNT, "--fstab", "-F", str(path), "--raw", "-n", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS"],
        capture_output=True, check=True).stdout
    return [
        [re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), field)
         .decode("utf-8", "surrogateescape") for field in line.split(b" ")]
        for line in out.split(b"\n") if line
    ]


@pytest.mark.skipif(FINDMNT is None, reason="findmnt (util-linux) is not installed")
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    device=st.text(HOSTILE, min_size=1, max_size=10),
    name=st.one_of(st.just("swap"), st.text(HOSTILE, max_size=10).map(lambda tail: "/" + tail)),
    fstype=WORDS,
    opts=st.lists(WORDS, min_size=1, max_size=3),
    existing=st.sampled_from(["", "/dev/sda1\t/boot\text4\tdefaults\t0\t2\n",
                              "proc /proc proc defaults 0 0"]),
)
def test_libmount_reads_exactly_the_entry_written_or_it_is_refused(  # noqa: PLR0913,PLR0917
    tmp_path, device, name, fstype, opts, existing
):
    """Whatever the fields: a refusal naming the field, or libmount
    (``findmnt --fstab -F``) reads exactly them, and the next plan changes
    nothing (a line libmount reads as a comment would be appended every run)."""
    try:
        text, changes = fstab.plan_entry(existing, name, device, fstype, opts)
    except SaltInvocationError as err:
        assert str(err).split(":")[0] in ("name", "device", "fstype", "opts")
        event("refused")
        return
    event("written")
    assert changes
    path = tmp_path / "fstab"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    before = findmnt_fields(path)[:-1] if existing else []
    assert findmnt_fields(path) == [*before, [device, name, fstype, ",".join(opts)]]
    assert fstab.plan_entry(text, name, device, fstype, opts) == [text, {}]


@pytest.mark.parametrize("device", ["#dev", "#", "#xen-nfsroot# /dev/sda1"])
def test_a_device_libmount_would_read_as_a_comment_is_refused(device):
    with pytest.raises(SaltInvocationError, match="^device: .* starts with '#'"):
        fstab.plan_entry("", "/mnt", device, "nfs")
