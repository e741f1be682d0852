"""xen_console.logging: the settings file and the running xenconsoled."""

from unittest.mock import MagicMock

import pytest

from tests.support.loader import functions
from xen_nfsroot.modules import guest_console
from xen_nfsroot.states import xen_console


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "default-xen"
    path.write_text("XENSTORED_ARGS=\n")
    return path


@pytest.fixture
def salt_mods():
    salt = functions(guest_console)
    salt["guest_console.daemon_logging"] = MagicMock(return_value=None)
    salt["guest_console.restart_daemon"] = MagicMock(return_value=True)
    return salt


@pytest.fixture
def configure_loader_modules(salt_mods):
    return {xen_console: {"__salt__": salt_mods, "__opts__": {"test": False}},
            guest_console: {"__salt__": salt_mods}}


def test_the_settings_are_written_once(salt_mods, settings):
    ret = xen_console.logging("/var/log/xen/console", settings_file=str(settings))
    assert ret["result"] is True
    assert ret["changes"] == {"settings": {
        "file": str(settings), "old": None,
        "new": 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"'}}
    assert ret["comment"] == (f'Set XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"'
                              f" in {settings}")
    again = xen_console.logging("/var/log/xen/console", settings_file=str(settings))
    assert again["changes"] == {}
    assert again["comment"] == ("xenconsoled logs guest consoles to /var/log/xen/console "
                                "(xenconsoled is not running: it will at its start)")
    salt_mods["guest_console.restart_daemon"].assert_not_called()


@pytest.mark.parametrize("running", ["", "/srv/other"])
def test_a_daemon_logging_elsewhere_is_restarted(salt_mods, settings, running):
    salt_mods["guest_console.daemon_logging"].return_value = running
    xen_console.logging("/var/log/xen/console", settings_file=str(settings))
    salt_mods["guest_console.restart_daemon"].reset_mock()
    ret = xen_console.logging("/var/log/xen/console", settings_file=str(settings))
    assert ret["changes"] == {"xenconsoled": {"old": running or "no guest logging",
                                              "new": "/var/log/xen/console"}}
    assert ret["comment"] == "Restarted xenconsoled"
    salt_mods["guest_console.restart_daemon"].assert_called_once_with("/var/log/xen/console")


def test_a_daemon_already_logging_there_is_left_alone(salt_mods, settings):
    salt_mods["guest_console.daemon_logging"].return_value = "/var/log/xen/console"
    ret = xen_console.logging("/var/log/xen/console", settings_file=str(settings))
    assert "xenconsoled" not in ret["changes"]
    salt_mods["guest_console.restart_daemon"].assert_not_called()


def test_test_mode_predicts(salt_mods, settings):
    salt_mods["guest_console.daemon_logging"].return_value = ""
    xen_console.__opts__["test"] = True
    ret = xen_console.logging("/var/log/xen/console", settings_file=str(settings))
    assert ret["result"] is None
    assert ret["comment"] == ('Would set XENCONSOLED_ARGS="--log=guest '
                              f'--log-dir=/var/log/xen/console" in {settings} and restart '
                              "xenconsoled")
    assert settings.read_text() == "XENSTORED_ARGS=\n"
    salt_mods["guest_console.restart_daemon"].assert_not_called()


def test_a_directory_sh_would_not_read_as_one_word_changes_nothing(tmp_path):
    settings = tmp_path / "xen"
    settings.write_text("XENSTORED_ARGS=\n")
    ret = xen_console.logging("/var/log/$(touch MARK)", settings_file=str(settings))
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith("console_dir: '/var/log/$(touch MARK)' cannot travel as one "
                                     "word of XENCONSOLED_ARGS")
    assert settings.read_text() == "XENSTORED_ARGS=\n"
