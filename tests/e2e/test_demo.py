"""`make demo` as a person sees it: a progress bar and an outcome table, no log lines between."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.asterisk_root import asterisk_root
from tests.support.processes import run_bounded

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


async def test_the_demo_prints_a_bar_then_one_row_per_recipient() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("VOXCAST_")}
    env.update({"VOXCAST_ASTERISK_ROOT": str(asterisk_root()), "COLUMNS": "120"})
    code, shown, errors = await run_bounded([sys.executable, "-m", "app", "demo"], 120, env,
                                            cwd=REPO)
    assert code == 0, errors
    lines = shown.splitlines()
    assert any(line.startswith("calls ended") and "6/6" in line for line in lines), shown
    rows = [line for line in lines if line.startswith("│ sip:")]
    outcomes = sorted(line.split("│")[3].strip() for line in rows)
    # Ringing until the timeout reads 480, nobody there at all 408 (both the ring timeout's).
    assert outcomes == ["200 OK", "404 Not Found", "408 No response before the ring timeout",
                        "480 No answer before the ring timeout", "486 User Busy", "603 Decline"]
    assert lines[-1] == ("6 calls: 1 answered; not answered: 404 ×1, 408 ×1, 480 ×1, 486 ×1, "
                         "603 ×1")
    assert "{" not in shown  # no raw JSON
    # Warnings may go to stderr; access-log and INFO lines go nowhere.
    assert " INFO " not in shown + errors and "HTTP/1.1" not in shown + errors
