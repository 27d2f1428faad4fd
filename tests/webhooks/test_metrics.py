"""`/metrics`: Prometheus's own parser reads it, its counters agree with the report, and only
operators may read it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from app.settings import Secret
from tests.support.fake_ari import BUSY, NOT_FOUND, Behaviour, FakeAri
from tests.support.service import Service, poll, running_service
from tests.support.settings import against_fake_ari

OPERATOR_KEY = "operator-key-0123456789"
TENANT_KEY = "tenant-key-0123456789ab"


async def _scrape(service: Service) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with service.http.get(f"{service.base}/metrics",
                                headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = await answer.text()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


async def test_metrics_agree_with_the_report(fake_ari: FakeAri, tmp_path: Path) -> None:
    fake_ari.default = Behaviour(ring_after=0.05, answer_after=0.15, playback_seconds=1.2)
    for user in ("busy0", "busy1"):
        fake_ari.behave(user, Behaviour(reject=BUSY, reject_after=0.1))
    fake_ari.behave("gone0", Behaviour(reject=NOT_FOUND))
    users = ["busy0", "busy1", "gone0"] + [f"ok{i}" for i in range(7)]
    settings = against_fake_ari(
        fake_ari, tmp_path / "root", tmp_path / "runtime", event_poll_seconds=0.05,
        operator_tenants="ops",
        api_keys=Secret(f"ops:{OPERATOR_KEY},acme:{TENANT_KEY}"))
    async with running_service(settings) as service:
        service.headers = {"Authorization": f"Bearer {TENANT_KEY}"}
        status, _ = await service.get("/metrics")
        assert status == 404  # not an operator
        request_id = await service.submit({
            "recipients": [{"to": f"sip:{user}@127.0.0.1:5099"} for user in users],
            "from": "me", "playlist": [{"pause": 1.0}]})
        report = await service.wait_for_report(request_id, limit=30)

        async def all_counted() -> tuple[bool, Any]:
            scraped = await _scrape(service)
            ended = sum(v for _, v in scraped.get("voxcast_calls_total", []))
            outbox = sum(v for _, v in scraped["voxcast_webhook_outbox_depth"])
            # broadcast.completed is sealed a pass after the last call.ended
            return ended == len(users) and outbox == 0, (ended, outbox)

        await poll(all_counted, limit=10, what="every call counted")
        samples = await _scrape(service)

    records = report["records"]
    expected = Counter((r["result"], f"{r['disconnect_cause_code'][0]}xx"
                        if r["disconnect_cause_code"] else "none") for r in records)
    counted: Counter[tuple[str, str]] = Counter()
    for labels, value in samples["voxcast_calls_total"]:  # summed over media servers
        counted[labels["result"], labels["sip_class"]] += value
    assert counted == expected, (counted, expected)
    answered = sum(1 for r in records if r["answered"])
    assert sum(v for _, v in samples["voxcast_calls_answered_total"]) == answered == 7
    (ratio,) = samples["voxcast_answer_ratio"]
    assert ratio[1] == answered / len(users)
    duration_count = dict((k, v) for k, v in [
        (labels.get("le"), value) for labels, value
        in samples["voxcast_call_duration_seconds_bucket"]])
    assert duration_count["+Inf"] == answered
    # Every answered call played 1 s of silence: none is shorter than 1 s by the report.
    assert duration_count["1.0"] == sum(1 for r in records if r["answered"] and
                                         r["duration"] < 1)
    (pdd,) = [v for labels, v in samples["voxcast_post_dial_delay_seconds_count"]]
    # Post-dial delay: every call that rang or was answered (the rejected ones did neither).
    assert pdd == sum(1 for r in records if "ring_time" in r or "connect_time" in r) == 7
    assert samples["voxcast_calls_dialled_total"][0][1] == len(users)
    assert samples["voxcast_queue_depth"][0][1] == 0
    assert {labels["stage"]: v for labels, v in samples["voxcast_webhook_outbox_depth"]} == {
        "unsealed_events": 0, "pending_deliveries": 0}
    assert [v for _, v in samples["voxcast_ari_connected"]] == [1]
