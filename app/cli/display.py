"""What a person sees of a broadcast: a live progress bar, a table of outcomes, a CSV file.

Shared by `voxcast` and `make demo`, so both show a broadcast the same way.
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.api.report_output import CSV_FIELDS, csv_cell

POLL_SECONDS = 0.5
# The report's field names in the order the API documents them; extra fields follow.
RECORD_FIELDS = CSV_FIELDS


async def follow_progress(status_of: Callable[[], Awaitable[dict[str, Any]]],
                          console: Console) -> dict[str, Any]:
    """Poll a request's status with a live bar until its report is ready; the last status.

    Unbounded by itself: callers put it under `asyncio.timeout` when they want a limit.
    """
    with Progress(TextColumn("[bold]calls ended"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[live]} live, {task.fields[queued]} queued"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("calls", total=None, live=0, queued=0)
        while True:
            status = await status_of()
            report = status["report"]
            counts = report["progress"]
            progress.update(task, total=counts["total"], completed=counts["completed"],
                            live=counts["in_progress"], queued=counts["queued"])
            if report["status"] == "ready":
                return status
            await asyncio.sleep(POLL_SECONDS)


def _sip(record: dict[str, Any]) -> str:
    code, text = record.get("disconnect_cause_code"), record.get("disconnect_cause_text")
    return " ".join(str(part) for part in (code, text) if part) or "-"


def outcome_table(records: Iterable[dict[str, Any]], title: str = "Outcomes") -> Table:
    """One row per call: to, result, SIP code and text, answered, duration (and attempt)."""
    rows = list(records)
    retried = any((record.get("attempt") or 1) > 1 for record in rows)
    table = Table(title=title, title_justify="left")
    table.add_column("to", overflow="fold")
    table.add_column("result")
    table.add_column("SIP")
    table.add_column("answered")
    table.add_column("duration", justify="right")
    if retried:
        table.add_column("attempt", justify="right")
    for record in rows:
        cells = [str(record.get("to", "")), str(record.get("result", "")), _sip(record),
                 "yes" if record.get("answered") else "no", f"{record.get('duration', 0)} s"]
        if retried:
            cells.append(str(record.get("attempt") or 1))
        table.add_row(*cells)
    return table


def outcome_summary(records: Iterable[dict[str, Any]]) -> str:
    """`6 calls: 1 answered; SIP 486 ×1, 404 ×1, …` in one line."""
    rows = list(records)
    answered = sum(1 for record in rows if record.get("answered"))
    codes = Counter(str(record.get("disconnect_cause_code") or record.get("result"))
                    for record in rows if not record.get("answered"))
    others = ", ".join(f"{code} ×{count}" for code, count in sorted(codes.items()))
    return f"{len(rows)} calls: {answered} answered" + (f"; not answered: {others}"
                                                          if others else "")


def status_table(status: dict[str, Any]) -> Table:
    """A request's progress, or one call's record as field / value rows."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    if "report" in status:
        report = status["report"]
        table.add_row("request", str(status["request_id"]))
        table.add_row("report", f"{report['id']} ({report['status']})")
        for name, value in report.get("progress", {}).items():
            table.add_row(name, str(value))
        return table
    for name, value in status["record"].items():
        table.add_row(name, csv_cell(value))
    return table


def trunk_table(trunks: Iterable[dict[str, Any]]) -> Table:
    """One row per trunk: state, registration, reachability, load against its limits."""
    table = Table(title="Trunks", title_justify="left")
    for column in ("trunk", "state", "registration", "contacts (rtt)", "live/max",
                   "calls/s (max)", "calls", "outcomes"):
        table.add_column(column, overflow="fold")
    for trunk in trunks:
        contacts = ", ".join(
            f"{c['status']}" + (f" {c['rtt_ms']:.1f} ms" if c.get("rtt_ms") is not None else "")
            for c in trunk.get("contacts", []))
        table.add_row(
            trunk["name"], trunk["state"], trunk.get("registration") or "-", contacts or "-",
            f"{trunk['live_calls']}/{trunk['max_concurrent']}",
            f"{trunk['calls_per_second']:g} ({trunk['max_calls_per_second']:g})",
            str(trunk["calls"]),
            " ".join(f"{code}:{count}" for code, count in sorted(trunk["outcomes"].items())))
    return table


def write_csv(records: list[dict[str, Any]], out: TextIO) -> None:
    """Every field of every record: the documented ones first, lists and objects as JSON."""
    extra = sorted({name for record in records for name in record} - set(RECORD_FIELDS))
    writer = csv.DictWriter(out, fieldnames=[*RECORD_FIELDS, *extra], lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({name: csv_cell(value) for name, value in record.items()})
