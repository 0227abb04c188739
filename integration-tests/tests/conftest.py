"""Session-wide rules of the end-to-end suites.

In CI (CI=true or REQUIRE_DOCKER=1) a skipped test is a failed suite: the container suite
must really run there, and a skip would otherwise be counted as green.
"""

from __future__ import annotations

import os

import pytest


def skips_fail() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("REQUIRE_DOCKER") == "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not skips_fail():
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        reporter.write_line(
            f"{len(skipped)} test(s) skipped under CI/REQUIRE_DOCKER: counted as a failure",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
