"""Command line: `python -m app {run,serve,render-asterisk,demo}`.

The only place that reads the process environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from app.runtime import render_media_plane, run_all, serve_only, with_generated_secrets
from app.settings import SettingsError, settings_from_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start Asterisk and the service in the foreground")
    commands.add_parser("serve", help="start the service against a running Asterisk")
    commands.add_parser("render-asterisk", help="write this instance's Asterisk config")
    commands.add_parser("demo", help="call SIPp far ends on 127.0.0.1 and print the report")
    arguments = parser.parse_args(argv)

    logging.basicConfig(level=os.environ.get("VOXCAST_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = with_generated_secrets(settings_from_environment(os.environ))
    except SettingsError as error:
        print(f"bad settings: {error}", file=sys.stderr)
        return 2

    if arguments.command == "render-asterisk":
        layout = render_media_plane(settings)
        print(layout.config_file)
        return 0
    if arguments.command == "demo":
        from app.demo import run_demo  # the demo pulls in SIPp handling only when asked

        return asyncio.run(run_demo(settings))
    runner = run_all if arguments.command == "run" else serve_only
    asyncio.run(runner(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
