"""`voxcast`, the installed console script, against a service on the real Asterisk.

Each command runs as a child process, as a person would run it; the service runs in this test's
event loop with an API key. A terminal is simulated (TTY_COMPATIBLE) so the live progress bar
is drawn, and what it drew is read back.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from pathlib import Path

import pytest

from app.cli.display import RECORD_FIELDS
from app.settings import Secret
from tests.e2e.conftest import MediaPlane, Service, running_service
from tests.support.ports import free_tcp_port as free_port
from tests.support.processes import run_bounded

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

VOXCAST = str(Path(sys.executable).with_name("voxcast"))
API_KEY = "cli-" + "k" * 40
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BEHAVIOURS = ("answer", "reject_486", "reject_404", "reject_603", "ring", "silent")


async def voxcast(*arguments: str, url: str, key: str = API_KEY,
                  terminal: bool = False, limit: float = 90) -> tuple[int, str, str]:
    """Run `voxcast ARGUMENTS`; exit code, standard output and standard error."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("VOXCAST_")}
    # No config file of the machine's user: the environment alone says where and which key.
    env.update({"VOXCAST_URL": url, "VOXCAST_API_KEY": key, "COLUMNS": "140",
                "XDG_CONFIG_HOME": "/nonexistent"})
    if terminal:
        env["TTY_COMPATIBLE"] = "1"
    return await run_bounded([VOXCAST, *arguments], limit, env)


async def api(service: Service, path: str) -> dict:
    """The API's own answer, to compare the command line's with."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with service.http.get(service.base + path, headers=headers) as response:
        assert response.status == 200
        return await response.json()


@pytest.fixture
def with_key(media_plane: MediaPlane, tmp_path: Path):
    return media_plane.settings.with_overrides(runtime_dir=tmp_path,
                                               api_keys=Secret(f"cli:{API_KEY}"))


async def test_send_watch_shows_progress_to_the_end_and_report_csv_writes_the_records(
        media_plane: MediaPlane, with_key, tmp_path: Path) -> None:
    recipients = tmp_path / "recipients.csv"
    rows = [(media_plane.uri(behaviour, user=f"u{index}"), f"Person {index}")
            for index, behaviour in enumerate(BEHAVIOURS)]
    recipients.write_text("to,name\n" + "".join(f"{to},{name}\n" for to, name in rows))
    async with running_service(with_key) as service:
        code, shown, errors = await voxcast(
            "send", "--csv", str(recipients), "--say", "Hello {name}", "--play",
            media_plane.media_url, "--from", "cli-test", "--watch", "--timeout", "60",
            url=service.base, terminal=True)
        assert code == 0, errors
        screen = ANSI.sub("", shown)
        request_id = re.search(r"request ([0-9a-f-]{36}) accepted: 6 recipient", screen)
        assert request_id, screen
        drawn = [int(done) for done in re.findall(r"\b(\d)/6\b", screen)]
        # The answered call plays for seconds after the others ended: the bar shows that.
        assert drawn[-1] == 6 and any(0 < done < 6 for done in drawn), f"no progress: {drawn}"
        assert drawn == sorted(drawn), drawn
        for to, _ in rows:
            assert to in screen
        assert "486 User Busy" in screen and "200 OK" in screen
        assert "6 calls: 1 answered" in screen

        out_file = tmp_path / "report.csv"
        code, _, errors = await voxcast("report", request_id.group(1), "--csv", str(out_file),
                                        url=service.base)
        assert code == 0, errors
        assert "6 records written" in errors
        records = list(csv.DictReader(io.StringIO(out_file.read_text())))
        report = await api(service, f"/voice/call/status/{request_id.group(1)}")
        answer = await api(service, f"/report/{report['report']['id']}")
        assert len(records) == len(answer["records"]) == 6
        assert list(records[0])[:len(RECORD_FIELDS)] == list(RECORD_FIELDS)
        by_id = {record["id"]: record for record in answer["records"]}
        for record in records:
            expected = by_id[record["id"]]
            assert record["to"] == expected["to"] and record["result"] == expected["result"]
            assert record["disconnect_cause_code"] == (expected["disconnect_cause_code"] or "")
            assert record["answered"] == ("true" if expected["answered"] else "false")
            assert record["from"] == "cli-test"
        answered = next(record for record in records if record["answered"] == "true")
        assert '"engine"' in answered["speech"]  # lists and objects as JSON

        code, table, _ = await voxcast("report", report["report"]["id"], url=service.base)
        assert code == 0 and "486 User Busy" in table and "6 calls: 1 answered" in table
        code, piped, _ = await voxcast("report", request_id.group(1), "--csv", "-",
                                       url=service.base)
        assert code == 0
        assert list(csv.DictReader(io.StringIO(piped))) == records
        code, status, _ = await voxcast("status", request_id.group(1), url=service.base)
        assert code == 0 and "ready" in status and report["report"]["id"] in status


async def test_watch_and_status_of_one_call(media_plane: MediaPlane, with_key) -> None:
    async with running_service(with_key) as service:
        code, shown, errors = await voxcast(
            "send", media_plane.uri("reject_486", user="busy"), "--play",
            media_plane.media_url, url=service.base)
        assert code == 0, errors
        request_id = re.search(r"request ([0-9a-f-]{36})", shown).group(1)
        code, watched, errors = await voxcast("watch", request_id, "--timeout", "30",
                                              url=service.base)
        assert code == 0, errors
        assert "486 User Busy" in watched and "1 calls: 0 answered" in watched
        status = await api(service, f"/voice/call/status/{request_id}")
        report = await api(service, f"/report/{status['report']['id']}")
        call_id = report["records"][0]["id"]
        code, record, _ = await voxcast("status", call_id, url=service.base)
        assert code == 0 and "User Busy" in record and "tech_cause" in record


async def test_errors_are_one_clear_line(media_plane: MediaPlane, with_key) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    code, _, errors = await voxcast("status", "3f0c1e2a-8b4d-4c6e-9f10-2a3b4c5d6e7f",
                                    url=closed)
    assert code == 1 and errors.count("\n") == 1
    assert errors.startswith(f"voxcast: error: cannot reach the Voxcast API at {closed}")
    async with running_service(with_key) as service:
        code, _, errors = await voxcast("status", "3f0c1e2a-8b4d-4c6e-9f10-2a3b4c5d6e7f",
                                        url=service.base, key="wrong-key")
        assert code == 1 and errors.count("\n") == 1
        assert "refused the key (401" in errors and "VOXCAST_API_KEY" in errors
        assert "wrong-key" not in errors
        code, _, errors = await voxcast("send", "sip:a b@127.0.0.1", "--play",
                                        media_plane.media_url, url=service.base)
        assert code == 1 and errors.count("\n") == 1
        assert "HTTP 400 invalid_request: recipients[0].to: must be a SIP URI" in errors
        code, _, errors = await voxcast("status", "3f0c1e2a-8b4d-4c6e-9f10-2a3b4c5d6e7f",
                                        url=service.base)
        assert code == 1 and "no request or call with that id" in errors


async def test_every_command_and_option_has_help() -> None:
    for command in ((), ("send",), ("status",), ("watch",), ("report",), ("keys",),
                    ("keys", "create"), ("keys", "list"), ("keys", "revoke"),
                    ("webhooks",), ("webhooks", "secret"), ("webhooks", "add"),
                    ("webhooks", "list"), ("webhooks", "remove"), ("webhooks", "deliveries"),
                    ("webhooks", "replay")):
        code, shown, _ = await voxcast(*command, "--help", url="http://127.0.0.1:9")
        assert code == 0, command
        options = re.findall(r"^\s+(--[a-z-]+)", shown, re.MULTILINE)
        for option in options:
            line = next(line for line in shown.splitlines() if line.strip().startswith(option))
            rest = line.strip().removeprefix(option).strip()
            assert rest, f"{' '.join(command)} {option} has no help"
