"""Session-wide rules: every process a test starts is gone when the run ends.

Helpers live in tests/support; this file only holds the hooks.
"""

from __future__ import annotations

import pytest

from tests.support import processes


@pytest.fixture(scope="session", autouse=True)
def _mark_this_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Children of this run carry its temporary folder (runtime dirs) in their environment."""
    processes.add_marker(f"{tmp_path_factory.getbasetemp()}/")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when anything it started still runs; stop it either way."""
    left = processes.leftovers()
    if not left:
        return
    for leftover in left:
        processes.kill_leftover(leftover.pid)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {leftover.pid}: {leftover.what}" for leftover in left]
    message = "processes this run started were still running at its end (now stopped):"
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "leftover processes", red=True)
        reporter.write_line(message)
        for line in lines:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
