"""Command line: `python -m app {run,serve,render-asterisk,demo}`.

The only place that reads the process environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys

from app.adapters.db.schema import SchemaMismatch
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
    except (UnsafeBinding, SchemaMismatch) as error:
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


if __name__ == "__main__":
    sys.exit(main())
