"""The real Salt loader (execution modules and states) on this machine."""

import pytest
from saltfactories.utils.functional import Loaders


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
