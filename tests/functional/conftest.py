"""The real Salt loader (execution modules and states) on this machine."""

import os

import pytest
from saltfactories.utils.functional import Loaders

from tests.support import REPO
from tests.support.xen_double import DOUBLES, path_without_doubles


@pytest.fixture(scope="package")
def minion_opts(salt_factories):
    factory = salt_factories.salt_minion_daemon(
        "functional-minion",
        overrides={"file_client": "local", "master": "127.0.0.1"},
    )
    return factory.config.copy()


@pytest.fixture(scope="package")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture
def states(loaders):
    loaders.reset_state()
    return loaders.states


@pytest.fixture
def modules(loaders):
    loaders.reset_state()
    return loaders.modules


@pytest.fixture
def formula(minion_opts):
    """A loader whose state tree is the repository's salt/ directory."""
    loaders = Loaders(dict(minion_opts, file_roots={"base": [str(REPO / "salt")]}))
    yield loaders
    loaders.reset_state()


@pytest.fixture(scope="module")
def xen_loaders(minion_opts):
    """A loader built while the xl/xm double is on PATH.

    The xm module's ``__virtual__`` looks for xl/xm once, when the loader first
    loads it; this loader is created with the double's bin directory on PATH
    so it does. Each test then points PATH/XEN_DOUBLE_DIR at its own double
    (``xen_double``/``make_xen_double(apply=True)``): every process spawned
    reads them afresh.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", os.pathsep.join([str(DOUBLES / "bin"), *path_without_doubles()]))
        yield Loaders(minion_opts, loaded_base_name="xen_nfsroot_xen_tests")
