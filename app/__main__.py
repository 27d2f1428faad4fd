"""Command line: `python -m app {run,serve,render-asterisk,demo,keys,db,trunks,healthcheck,
asterisk-cli}`.

The only place that reads the process environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
from typing import Any

import uvloop

from app.adapters.db.engine import create_engines
from app.adapters.db.schema import (
    UPGRADE_COMMAND,
    SchemaError,
    bring_to_head,
    current_state,
)
from app.domain.trunks import TrunkFileError
from app.media_plane.asterisk_process import (
    CONSOLE_LOG_NAME,
    AsteriskStartError,
    asterisk_console_command,
)
from app.media_plane.rendering import trunks_of
from app.media_plane.server_list import media_servers
from app.runtime import (
    UnsafeBinding,
    layout_of,
    render_media_plane,
    run_all,
    serve_only,
    with_generated_secrets,
)
from app.settings import Settings, SettingsError, settings_from_environment, unknown_names
from app.startup_checks import StartupProblem, bind_failures, media_plane_ports


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:  # the same commands as `voxcast keys`, help included
        from app.cli.main import keys_app

        return _exit_code(keys_app, argv[1:])
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start Asterisk and the service in the foreground")
    commands.add_parser("serve", help="start the service against a running Asterisk")
    commands.add_parser("render-asterisk", help="write this instance's Asterisk config")
    commands.add_parser("demo", help="call SIPp far ends on 127.0.0.1 and print the report")
    commands.add_parser("keys", help="API keys: create, list, revoke (as `voxcast keys`)")
    health = commands.add_parser("healthcheck", help="exit 0 when Asterisk's ARI (asterisk) or "
                                                     "the API's /ready (service) answers")
    health.add_argument("what", choices=("asterisk", "service"))
    trunk_command = commands.add_parser("trunks", help="SIP trunks: reload the trunks file")
    trunk_commands = trunk_command.add_subparsers(dest="trunks_command", required=True)
    trunk_commands.add_parser("reload", help="check VOXCAST_TRUNKS_FILE, then have the running "
                                             "service reload it without a restart")
    commands.add_parser("asterisk-cli",
                        help="open the CLI of this instance's running Asterisk (asterisk -r)")
    database = commands.add_parser("db", help="the database schema: upgrade, current")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="bring the schema to this version's newest revision")
    db_commands.add_parser("current", help="show the schema's revision (changes nothing)")
    arguments = parser.parse_args(argv)

    if arguments.command == "healthcheck":  # every few seconds in a container: stay quiet
        from app.healthcheck import check

        try:
            return check(arguments.what, settings_from_environment(os.environ))
        except SettingsError as error:
            print(f"bad settings: {error}", file=sys.stderr)
            return 2
    logging.basicConfig(level=os.environ.get("VOXCAST_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for warning in unknown_names(os.environ):
        logging.getLogger("app.settings").warning("%s", warning)
    try:
        settings = with_generated_secrets(settings_from_environment(os.environ))
        media_servers(settings)  # a bad servers file stops here, not at the first call
    except SettingsError as error:
        print(f"bad settings: {error}", file=sys.stderr)
        return 2

    if arguments.command == "asterisk-cli":
        command = asterisk_console_command(layout_of(settings))
        print(shlex.join(command), file=sys.stderr, flush=True)
        os.execv(command[0], command)  # noqa: S606 - this command's whole job is that program
    if arguments.command == "trunks":
        from app.trunk_admin import reload_trunks

        return reload_trunks(settings)
    try:
        trunks_of(settings)  # a bad trunks file stops here, naming trunk and key
    except TrunkFileError as error:
        print(f"bad trunks file: {error}", file=sys.stderr)
        return 2
    if arguments.command == "db":
        return asyncio.run(manage_schema(settings, upgrade=arguments.db_command == "upgrade"))
    if arguments.command == "render-asterisk":
        layout = render_media_plane(settings)
        for folder in layout.asterisk_dirs:  # for an Asterisk started by someone else
            folder.mkdir(parents=True, exist_ok=True)
        print(layout.config_file)
        return 0
    if arguments.command == "demo":
        from app.demo import run_demo  # the demo pulls in SIPp handling only when asked

        return asyncio.run(run_demo(settings))
    runner = run_all if arguments.command == "run" else serve_only
    try:
        uvloop.run(runner(settings))  # a faster event loop for the service itself
    except (UnsafeBinding, SchemaError, StartupProblem) as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    except AsteriskStartError as error:
        print(asterisk_failure(settings, error), file=sys.stderr)
        return 2
    return 0


def asterisk_failure(settings: Settings, error: AsteriskStartError) -> str:
    """One line: why Asterisk did not start, the port it could not bind if that was it, and
    where its own log is."""
    console_log = layout_of(settings).log_dir / CONSOLE_LOG_NAME
    # The error carries the end of the console log: this run's lines, not older ones.
    reason, _, log_tail = str(error).partition(";")
    problems = bind_failures(log_tail, media_plane_ports(settings))
    fix = f": {problems[0]}" if problems else ""
    return f"Asterisk did not start ({reason}){fix}; its console log: {console_log}"


def _exit_code(command: Any, arguments: list[str]) -> int:
    """Run a typer command group with `arguments`; its exit status as a number."""
    try:
        command(args=arguments, prog_name="python -m app keys")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0


async def manage_schema(settings: Settings, *, upgrade: bool) -> int:
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    engines = create_engines(settings.resolved_database_url)
    try:
        if upgrade:
            before = await bring_to_head(engines.writer)
            print(f"database already at revision {before.head}" if before.up_to_date else
                  f"database was {before.describe()}; now at revision {before.head}")
            return 0
        state = await current_state(engines.writer)
        print(f"database {state.describe()}; this version's newest revision is {state.head}"
              + ("" if state.up_to_date else
                 f"\n`{UPGRADE_COMMAND}` (or starting the service) brings it there"))
        return 0
    except SchemaError as error:
        print(f"cannot use the database: {error}", file=sys.stderr)
        return 2
    finally:
        await engines.dispose()



if __name__ == "__main__":
    sys.exit(main())
