"""`voxcast`: send a broadcast, follow it, read its report, manage API keys.

Every command but `keys` is a client of the HTTP API (VOXCAST_URL, VOXCAST_API_KEY, or the
config file); `keys` works on the service's database directly, like `python -m app keys`.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from app.cli.client import ApiClient, CliError, api_client
from app.cli.config import ConfigError, default_config_path, resolve
from app.cli.display import (
    follow_progress,
    outcome_summary,
    outcome_table,
    status_table,
    trunk_table,
    write_csv,
)

app = typer.Typer(name="voxcast", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="API keys in the service's database (run where the service runs; "
                            "it reads the service's VOXCAST_* settings).")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)
TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
T = TypeVar("T")


@app.callback()
def connection(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        envvar="VOXCAST_URL", show_default=False,
        help="The API's base URL [default: from the config file, else "
             "http://127.0.0.1:8080].")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="VOXCAST_API_KEY", show_default=False, show_envvar=True,
        help="The API key sent as `Authorization: Bearer` [default: from the config "
             "file].")] = None,
    config: Annotated[Path | None, typer.Option(
        envvar="VOXCAST_CONFIG", show_default=False, dir_okay=False,
        help=f"A TOML file with `url` and `api_key` [default: {default_config_path()}].")
    ] = None,
) -> None:
    ctx.obj = (url, api_key, config)


def _client_config(ctx: typer.Context) -> Any:
    url, api_key, config = ctx.obj
    return resolve(url, api_key, config)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run one command's work; a failure the person can act on is one line on stderr."""
    try:
        return asyncio.run(work)
    except (CliError, ConfigError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _fail(message: str) -> NoReturn:
    err.print(f"voxcast: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _recipients(targets: list[str], csv_file: Path | None) -> list[dict[str, Any]]:
    recipients: list[dict[str, Any]] = [{"to": target} for target in targets]
    if csv_file is None:
        return recipients
    try:
        with csv_file.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CliError(f"cannot read {csv_file}: {error}") from error
    if not rows or "to" not in rows[0]:
        raise CliError(f"{csv_file}: needs a header row with a `to` column "
                       "(other columns become each recipient's variables)")
    for line, row in enumerate(rows, start=2):
        target = (row.pop("to") or "").strip()
        if not target:
            raise CliError(f"{csv_file}, line {line}: the `to` cell is empty")
        variables = {name: value for name, value in row.items() if name and value is not None}
        recipients.append({"to": target, **({"variables": variables} if variables else {})})
    return recipients


@app.command()
def send(
    ctx: typer.Context,
    targets: Annotated[list[str] | None, typer.Argument(
        show_default=False,
        help="SIP URIs (sip:alice@192.0.2.10:5060) or E.164 numbers to call.")] = None,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", dir_okay=False, show_default=False,
        help="A CSV file with a `to` column; its other columns become each recipient's "
             "variables, for {name} in --say.")] = None,
    play: Annotated[list[str] | None, typer.Option(
        "--play", metavar="URL", show_default=False,
        help="Audio to play: an http(s) URL or media:<id>. Repeatable.")] = None,
    say: Annotated[list[str] | None, typer.Option(
        "--say", metavar="TEXT", show_default=False,
        help="Text to speak; {name} is filled from the recipient's variables. Repeatable; "
             "--say items play before --play items.")] = None,
    caller: Annotated[str, typer.Option(
        "--from", help="The caller id: 1-64 letters, digits or _.+-.")] = "voxcast",
    language: Annotated[str | None, typer.Option(
        show_default=False, help="The language of --say texts [default: en].")] = None,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Show a live progress bar until the report is ready, then the "
                        "outcomes.")] = False,
    timeout: Annotated[float | None, typer.Option(
        show_default=False, help="With --watch: give up after this many seconds.")] = None,
) -> None:
    """Start a broadcast: call every recipient and play the playlist."""
    config = _client_config(ctx)

    async def work() -> None:
        recipients = _recipients(list(targets or []), csv_file)
        if not recipients:
            raise CliError("no recipients: give SIP URIs or numbers as arguments, or --csv")
        language_field = {"language": language} if language else {}
        playlist = [{"say": text, **language_field} for text in say or []]
        playlist += [{"play": source} for source in play or []]
        if not playlist:
            raise CliError("nothing to play: give --play URL or --say TEXT")
        async with api_client(config) as client:
            request_id = await client.submit(
                {"recipients": recipients, "from": caller, "playlist": playlist})
            out.print(f"request {request_id} accepted: {len(recipients)} recipient(s)",
                      highlight=False)
            if watch:
                await _watch(client, request_id, timeout)

    _run(work())


async def _watch(client: ApiClient, request_id: str, limit: float | None) -> None:
    try:
        async with asyncio.timeout(limit):
            status = await follow_progress(lambda: client.status(request_id), out)
    except TimeoutError:
        raise CliError(f"the report was not ready within {limit:g} s; "
                       f"`voxcast watch {request_id}` goes on following it") from None
    report = await client.report(status["report"]["id"])
    out.print(outcome_table(report["records"], title=f"Report {status['report']['id']}"))
    out.print(outcome_summary(report["records"]), highlight=False)


@app.command()
def status(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID", help="A request id or a call id.")],
) -> None:
    """A request's progress and report id, or one call's record."""
    config = _client_config(ctx)

    async def work() -> None:
        async with api_client(config) as client:
            out.print(status_table(await client.status(item_id)))

    _run(work())


@app.command()
def trunks(ctx: typer.Context) -> None:
    """Every SIP trunk's state, live calls, calls per second and outcomes (GET /trunks; an
    operator tenant's key)."""
    config = _client_config(ctx)

    async def work() -> None:
        async with api_client(config) as client:
            out.print(trunk_table(await client.trunks()))

    _run(work())


@app.command()
def watch(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="ID", help="A request id.")],
    timeout: Annotated[float | None, typer.Option(
        show_default=False, help="Give up after this many seconds.")] = None,
) -> None:
    """A live progress bar until the request's report is ready, then the outcomes."""
    config = _client_config(ctx)

    async def work() -> None:
        async with api_client(config) as client:
            if "report" not in await client.status(request_id):
                raise CliError(f"{request_id} is a call, not a request: use `voxcast status`")
            await _watch(client, request_id, timeout)

    _run(work())


@app.command()
def report(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID",
                                           help="A request id or a report id.")],
    csv_path: Annotated[str | None, typer.Option(
        "--csv", metavar="FILE|-", show_default=False,
        help="Write every record's fields as CSV to FILE, or to standard output with -.")
    ] = None,
) -> None:
    """The report: a table of outcomes, or every field as CSV."""
    config = _client_config(ctx)

    async def fetch() -> dict[str, Any]:
        async with api_client(config) as client:
            return await client.report(await client.report_id_of(item_id))

    answer = _run(fetch())
    progress = answer["progress"]
    if answer["report_status"] != "ready":
        _fail(f"the report is not ready yet ({progress['completed']} of {progress['total']} "
              f"calls ended): `voxcast watch {item_id}`")
    records = answer["records"]
    if csv_path == "-":
        write_csv(records, sys.stdout)
    elif csv_path is not None:
        try:
            with open(csv_path, "w", newline="", encoding="utf-8") as handle:
                write_csv(records, handle)
        except OSError as error:
            _fail(f"cannot write {csv_path}: {error}")
        err.print(f"{len(records)} records written to {csv_path}", highlight=False)
    else:
        out.print(outcome_table(records, title=f"Report {answer['request_id']}"))
        out.print(outcome_summary(records), highlight=False)


def _tenant(value: str) -> str:
    if TENANT.fullmatch(value) is None:
        raise typer.BadParameter("1-64 letters, digits, _ . or -")
    return value


@keys_app.command("create")
def create_key(
    tenant: Annotated[str, typer.Option(callback=_tenant, show_default=False,
                                        help="The tenant the key acts for.")],
    label: Annotated[str, typer.Option(help="A note for people, e.g. who uses it.")] = "",
) -> None:
    """Make a key for a tenant; it is shown once and stored only as its SHA-256."""
    from app.key_admin import create_key as create  # the database layer only when asked

    async def work() -> None:
        key_id, key = await create(_service_settings(), tenant, label)
        out.print(f"key id {key_id} for tenant {tenant} (shown once, keep it):",
                  highlight=False)
        print(key)

    _run(work())


@keys_app.command("list")
def list_keys() -> None:
    """List keys: ids, tenants, states and labels, never the keys."""
    from app.key_admin import list_keys as listed

    async def work() -> None:
        for info in await listed(_service_settings()):
            state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
            print(f"{info.id}  {info.tenant:<20} {state:<24} {info.label}")

    _run(work())


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The id `keys list` shows.")],
) -> None:
    """Revoke a key by its id; requests with it answer 401 from then on."""
    from app.key_admin import revoke_key as revoke

    async def work() -> None:
        if not await revoke(_service_settings(), key_id):
            raise CliError(f"no active key with id {key_id}")
        out.print(f"key {key_id} revoked", highlight=False)

    _run(work())


def _service_settings() -> Any:
    from app.settings import SettingsError, settings_from_environment

    try:
        return settings_from_environment(os.environ)
    except SettingsError as error:
        raise CliError(f"bad settings: {error}") from error


def run() -> None:
    """The `voxcast` console script."""
    app()
