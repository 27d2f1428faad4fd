"""A real broadcast's report as CSV, NDJSON, pages and summary agrees with its JSON, and with
what the far ends themselves logged."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest

from tests.e2e.conftest import MediaPlane
from tests.support.service import Service

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

BEHAVIOURS = ["answer", "reject_486", "reject_603", "answer", "reject_404"]


async def test_exports_pages_and_summary_agree_with_the_json_report_and_the_wire(
        media_plane: MediaPlane, service: Service) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"x{tag}{n}" for n in range(len(BEHAVIOURS))]
    body = {"recipients": [{"to": media_plane.uri(behaviour, user=user)}
                           for behaviour, user in zip(BEHAVIOURS, users, strict=True)],
            "from": "me", "playlist": [{"pause": 0.5}]}
    request_id = await service.submit(body)
    report = await service.wait_for_report(request_id, limit=45)
    records = report["records"]
    assert [r["to"].split("@")[0].removeprefix("sip:") for r in records] == users
    _, status = await service.get(f"/voice/call/status/{request_id}")
    path = f"/report/{status['report']['id']}"

    code, kind, text = await service.text(f"{path}?format=ndjson")
    assert code == 200 and kind.startswith("application/x-ndjson")
    assert [json.loads(line) for line in text.splitlines()] == records
    code, kind, text = await service.text(path, headers={"Accept": "text/csv"})
    assert code == 200 and kind.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["id"], row["disconnect_cause_code"], row["answered"], row["duration"])
            for row in rows] == [
        (r["id"], r["disconnect_cause_code"] or "", "true" if r["answered"] else "false",
         str(r["duration"])) for r in records]

    pages, link = [], f"{path}?limit=2"
    while link:
        _, page = await service.get(link)
        pages.extend(page["records"])
        link = page["next"]
    assert pages == records
    _, answered = await service.get(f"{path}?answered=true")
    assert [r["id"] for r in answered["records"]] == [r["id"] for r in records if r["answered"]]

    # The far ends' own traces: who answered, and each final response, per recipient.
    finals = {}
    for behaviour in set(BEHAVIOURS):
        for dialog in media_plane.dialogs(behaviour, users):
            finals[dialog.user] = dialog.final_status
    assert [finals[user] for user in users] == [int(r["disconnect_cause_code"])
                                                 for r in records]
    _, summary = await service.get(f"{path}/summary")
    counts = summary["summary"]
    assert counts["by_sip_code"] == {"200": 2, "404": 1, "486": 1, "603": 1}
    assert counts["answered"] == sum(1 for code in finals.values() if code == 200) == 2
    assert counts["answer_rate"] == 0.4
    assert counts["mean_duration"] == sum(r["duration"] for r in records if r["answered"]) / 2
