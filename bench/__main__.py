"""`make bench`: issue 8's figures in one side-by-side table, each against its bare baseline.

    python -m bench [--quick] [--only dialing|servers|intake_report] [--json FILE]

Each part runs its own stack (an Asterisk of its own, SIPp, subprocesses for memory), one after
the other so they do not share the machine. `--quick` runs smaller batches: a smoke run, not the
figures the README quotes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PARTS = ("dialing", "servers", "intake_report")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"


def table(rows: list[dict[str, Any]], title: str) -> Table:
    shown = Table(title=title)
    for name, justify in (("figure", "left"), ("bare", "right"), ("voxcast", "right"),
                          ("unit", "left"), ("ratio", "right"), ("goal", "left"),
                          ("met", "center")):
        shown.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        shown.add_row(row["metric"], _number(row["bare"]), _number(row["voxcast"]), row["unit"],
                      _number(row["ratio"]), row["goal"],
                      "[green]yes[/green]" if row["ok"] else "[red]no[/red]")
    return shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller batches: a smoke run")
    parser.add_argument("--only", choices=PARTS, action="append")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    arguments = parser.parse_args()
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    for part in arguments.only or PARTS:
        module = importlib.import_module(f"bench.{part}")
        rows += module.measure(arguments.quick)
    console = Console(width=150)
    console.print(table(rows, f"Voxcast against bare baselines"
                              f"{' (quick)' if arguments.quick else ''}, "
                              f"{time.monotonic() - started:.0f} s"))
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
