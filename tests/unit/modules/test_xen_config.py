"""xen_config: a guest's config file on the dom0, read, written and removed."""

import os
import stat

import pytest
from salt.exceptions import CommandExecutionError

from xen_nfsroot.modules import xen_config


def test_write_config_is_atomic_and_keeps_mode(tmp_path):
    path = tmp_path / "xen" / "g.cfg"
    assert xen_config.write_config(str(path), "a = 1\n") is True
    assert path.read_text() == "a = 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # as Xen's own example configs
    os.chmod(path, 0o600)
    assert xen_config.write_config(str(path), "a = 1\n") is False
    assert xen_config.write_config(str(path), "a = 2\n") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["g.cfg"]
    assert xen_config.read_config(str(path)) == {"a": 2}
    assert xen_config.remove_config(str(path)) is True
    assert xen_config.remove_config(str(path)) is False


def test_read_config_names_file_and_line(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text('name = "x"\nmemory = 256 * 2\n')
    with pytest.raises(CommandExecutionError) as info:
        xen_config.read_config(str(path))
    assert f"{path}:2:" in str(info.value)
