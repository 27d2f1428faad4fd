"""Command line: `python -m app {run,serve,render-asterisk,demo,keys,db}`.

The only place that reads the process environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys

from app.adapters.db.engine import create_engines
from app.adapters.db.schema import (
    UPGRADE_COMMAND,
    SchemaError,
    bring_to_head,
    current_state,
)
from app.adapters.db.store import Store
from app.runtime import (
    UnsafeBinding,
    render_media_plane,
    run_all,
    serve_only,
    with_generated_secrets,
)
from app.settings import Settings, SettingsError, settings_from_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start Asterisk and the service in the foreground")
    commands.add_parser("serve", help="start the service against a running Asterisk")
    commands.add_parser("render-asterisk", help="write this instance's Asterisk config")
    commands.add_parser("demo", help="call SIPp far ends on 127.0.0.1 and print the report")
    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    create = key_commands.add_parser("create", help="make a key for a tenant (shown once)")
    create.add_argument("--tenant", required=True, type=_tenant_name)
    create.add_argument("--label", default="")
    key_commands.add_parser("list", help="list keys (never the keys themselves)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    database = commands.add_parser("db", help="the database schema: upgrade, current")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="bring the schema to this version's newest revision")
    db_commands.add_parser("current", help="show the schema's revision (changes nothing)")
    arguments = parser.parse_args(argv)

    logging.basicConfig(level=os.environ.get("VOXCAST_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = with_generated_secrets(settings_from_environment(os.environ))
    except SettingsError as error:
        print(f"bad settings: {error}", file=sys.stderr)
        return 2

    if arguments.command == "keys":
        return asyncio.run(manage_keys(settings, arguments))
    if arguments.command == "db":
        return asyncio.run(manage_schema(settings, upgrade=arguments.db_command == "upgrade"))
    if arguments.command == "render-asterisk":
        layout = render_media_plane(settings)
        print(layout.config_file)
        return 0
    if arguments.command == "demo":
        from app.demo import run_demo  # the demo pulls in SIPp handling only when asked

        return asyncio.run(run_demo(settings))
    runner = run_all if arguments.command == "run" else serve_only
    try:
        asyncio.run(runner(settings))
    except (UnsafeBinding, SchemaError) as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    return 0


def _tenant_name(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text) is None:
        raise argparse.ArgumentTypeError("1-64 letters, digits, _ . or -")
    return text


async def manage_keys(settings: Settings, arguments: argparse.Namespace) -> int:
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.resolved_database_url)
    try:
        keys = store.keys
        if arguments.key_command == "create":
            key_id, key = await keys.create(arguments.tenant, arguments.label)
            print(f"key id {key_id} for tenant {arguments.tenant} (shown once, keep it):\n{key}")
        elif arguments.key_command == "list":
            for info in await keys.list():
                state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
                print(f"{info.id}  {info.tenant:<20} {state:<24} {info.label}")
        elif not await keys.revoke(arguments.key_id):
            print(f"no active key with id {arguments.key_id}", file=sys.stderr)
            return 1
        return 0
    finally:
        await store.close()


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
