import logging
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.kimi",
    "tests.fixtures.db",
    "tests.fixtures.redis",
    "tests.fixtures.engine",
    "tests.fixtures.slack",
    "tests.fixtures.slack_bot",
    "tests.fixtures.discord",
    "tests.fixtures.screenshots",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The CLI configures the root logger; a test that runs it must not leave its handler behind.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
