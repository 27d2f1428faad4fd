"""Webhooks end to end through the service (fake ARI far ends, a local receiver): every
event signed and verified with the `standardwebhooks` package, retries with the same id,
Retry-After, 410, stalls, replays and the address policy."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from app.settings import Settings
from tests.support.fake_ari import BUSY, Behaviour, FakeAri
from tests.support.service import Service, poll, running_service
from tests.support.settings import against_fake_ari
from tests.support.webhook_receiver import Received, Reply, WebhookReceiver


def _settings(fake_ari: FakeAri, tmp_path: Path, **overrides: Any) -> Settings:
    return against_fake_ari(fake_ari, tmp_path / "root", tmp_path / "runtime",
                            **{"webhook_allow_loopback": True, "event_poll_seconds": 0.05,
                               **overrides})


async def _secret(service: Service) -> str:
    status, answer = await service.get("/webhooks/secret")
    assert status == 200, answer
    assert answer["secret"].startswith("whsec_")
    return str(answer["secret"])


async def _until_delivered(receiver: WebhookReceiver, count: int, path: str | None = None,
                           limit: float = 20.0) -> list[Received]:
    async def enough() -> tuple[bool, int]:
        unique = {r.webhook_id for r in receiver.delivered(path)}
        return len(unique) >= count, len(unique)

    await poll(enough, limit=limit, what=f"{count} webhooks delivered", interval=0.05)
    return receiver.delivered(path)


async def test_every_event_of_a_broadcast_arrives_signed(fake_ari: FakeAri, tmp_path: Path,
                                                         receiver: WebhookReceiver) -> None:
    calls = 6
    fake_ari.default = Behaviour(ring_after=0.01, answer_after=0.05, playback_seconds=0.05)
    fake_ari.behave("busy0", Behaviour(reject=BUSY))
    async with running_service(_settings(fake_ari, tmp_path)) as service:
        secret = await _secret(service)
        status, added = await service.post("/webhooks", {"url": receiver.url("/all")})
        assert status == 200, added
        request_id = await service.submit({
            "recipients": [{"to": "sip:busy0@127.0.0.1:5099"}] + [
                {"to": f"sip:w{i}@127.0.0.1:5099"} for i in range(1, calls)],
            "from": "me", "playlist": [{"pause": 0.1}],
            "callback_url": receiver.url("/mine"),
            "callback_events": ["call.ended", "broadcast.completed"]})
        report = await service.wait_for_report(request_id, limit=20)
        # Subscription: ringing + answered + ended for 5 answered, ringing? no, the busy one
        # rejects before ringing: ended only; then one broadcast.completed.
        everything = await _until_delivered(receiver, 5 * 3 + 1 + 1, "/all")
        mine = await _until_delivered(receiver, calls + 1, "/mine")

    events = [received.verify(secret) for received in everything]
    kinds = Counter(event["type"] for event in events)
    assert kinds == {"call.ringing": 5, "call.answered": 5, "call.ended": 6,
                     "broadcast.completed": 1}, kinds
    assert Counter(r.verify(secret)["type"] for r in mine) == {"call.ended": 6,
                                                               "broadcast.completed": 1}
    # call.ended carries the report's own record, byte for byte the same fields.
    records = {record["id"]: record for record in report["records"]}
    for event in events:
        assert event["data"]["request_id"] == request_id
        record = event["data"]["record"] if event["type"] != "broadcast.completed" else None
        if event["type"] == "call.ended":
            assert record == records[record["id"]]
        elif event["type"] == "call.ringing":  # the report's own time format and value
            assert record["ring_time"] == records[record["id"]]["ring_time"]
            assert "connect_time" not in record and record["state"] == "ringing"
        elif event["type"] == "call.answered":
            assert record["connect_time"] == records[record["id"]]["connect_time"]
            assert record["state"] == "answered"
    completed = next(e for e in events if e["type"] == "broadcast.completed")
    assert completed["data"]["report"]["id"] == report["request_id"]
    assert completed["data"]["summary"]["calls"] == calls
    assert completed["data"]["summary"]["answered"] == 5
    # Both destinations got the same event under the same webhook-id.
    ended_ids = {r.webhook_id for r in everything if r.event["type"] == "call.ended"}
    assert ended_ids == {r.webhook_id for r in mine if r.event["type"] == "call.ended"}


async def test_a_failing_receiver_gets_everything_later_with_the_same_ids(
        fake_ari: FakeAri, tmp_path: Path, receiver: WebhookReceiver) -> None:
    """500s for a while (retry schedule scaled down: 5 s becomes 0.05 s), then 200."""
    receiver.reply = Reply(status=500)
    fake_ari.default = Behaviour(answer_after=0.02, playback_seconds=0.02)
    settings = _settings(fake_ari, tmp_path, webhook_backoff_scale=0.01)
    async with running_service(settings) as service:
        secret = await _secret(service)
        request_id = await service.submit({
            "recipients": [{"to": f"sip:f{i}@127.0.0.1:5099"} for i in range(3)],
            "from": "me", "playlist": [{"pause": 0.1}],
            "callback_url": receiver.url(), "callback_events": ["call.ended"]})
        await service.wait_for_report(request_id, limit=20)

        async def failed_twice() -> tuple[bool, Counter[str]]:
            tries = Counter(r.webhook_id for r in receiver.received)
            return len(tries) == 3 and min(tries.values()) >= 3, tries

        await poll(failed_twice, limit=20, what="three failed attempts each")
        receiver.reply = Reply(status=204)
        delivered = await _until_delivered(receiver, 3)
        status, listed = await service.get(f"/webhooks/deliveries?request_id={request_id}")
        _, first_page = await service.get("/webhooks/deliveries?limit=2")
        _, second_page = await service.get(
            f"/webhooks/deliveries?limit=2&before={first_page['next']}")
        bad, refused = await service.get("/webhooks/deliveries?state=lost")
    for received in delivered:
        received.verify(secret)
    assert len({r.webhook_id for r in delivered}) == 3
    assert {r.webhook_id for r in receiver.received} == {r.webhook_id for r in delivered}
    assert status == 200
    assert {d["state"] for d in listed["deliveries"]} == {"delivered"}
    pages = [d["id"] for d in first_page["deliveries"] + second_page["deliveries"]]
    assert pages == [d["id"] for d in listed["deliveries"]]  # newest first, no overlap
    assert second_page["next"] is None
    assert bad == 400 and refused["details"][0]["field"] == "state"
    assert min(d["attempts"] for d in listed["deliveries"]) >= 4


async def test_retry_after_is_honoured(fake_ari: FakeAri, tmp_path: Path,
                                       receiver: WebhookReceiver) -> None:
    """The schedule alone would retry after 0.05 s; the receiver asks for 2 s."""
    receiver.reply = Reply(status=503, retry_after="2")
    settings = _settings(fake_ari, tmp_path, webhook_backoff_scale=0.01)
    async with running_service(settings) as service:
        await service.submit({"to": "sip:ra@127.0.0.1:5099", "from": "me",
                              "playlist": [{"pause": 0.1}], "callback_url": receiver.url(),
                              "callback_events": ["call.ended"]})

        async def two_tries() -> tuple[bool, int]:
            return len(receiver.received) >= 2, len(receiver.received)

        await poll(two_tries, limit=20, what="a retry")
    first, second = receiver.received[:2]
    assert first.webhook_id == second.webhook_id
    assert second.at - first.at >= 1.9, second.at - first.at


async def test_410_disables_the_subscription_and_a_stall_is_retried(
        fake_ari: FakeAri, tmp_path: Path, receiver: WebhookReceiver) -> None:
    receiver.by_path["/gone"] = Reply(status=410)
    receiver.by_path["/slow"] = Reply(status=200, stall_seconds=3.0)
    fake_ari.default = Behaviour(answer_after=0.02, playback_seconds=0.02)
    settings = _settings(fake_ari, tmp_path, webhook_backoff_scale=0.01, webhook_timeout=1.0)
    async with running_service(settings) as service:
        _, gone = await service.post("/webhooks", {"url": receiver.url("/gone"),
                                                   "events": ["call.ended"]})
        _, slow = await service.post("/webhooks", {"url": receiver.url("/slow"),
                                                   "events": ["broadcast.completed"]})
        request_id = await service.submit({
            "recipients": [{"to": f"sip:g{i}@127.0.0.1:5099"} for i in range(3)],
            "from": "me", "playlist": [{"pause": 0.1}]})
        await service.wait_for_report(request_id, limit=20)

        async def stalled_twice() -> tuple[bool, int]:
            slow_tries = [r for r in receiver.received if r.path == "/slow"]
            return len(slow_tries) >= 2, len(slow_tries)

        await poll(stalled_twice, limit=20, what="a stalled delivery tried again")
        _, listed = await service.get("/webhooks")
        _, deliveries = await service.get(f"/webhooks/deliveries?request_id={request_id}")
    gone_tries = [r for r in receiver.received if r.path == "/gone"]
    assert len(gone_tries) == 1  # the 410 stops the other two call.ended deliveries
    states = {d["subscription_id"]: d["state"] for d in deliveries["deliveries"]
              if d["subscription_id"] == gone["webhook"]["id"]}
    assert set(states.values()) == {"gone"}
    by_id = {w["id"]: w for w in listed["webhooks"]}
    assert by_id[gone["webhook"]["id"]]["active"] is False
    assert "410" in by_id[gone["webhook"]["id"]]["disabled_reason"]
    assert by_id[slow["webhook"]["id"]]["active"] is True
    slow_tries = [r for r in receiver.received if r.path == "/slow"]
    assert len({r.webhook_id for r in slow_tries}) == 1  # the same event, tried again


async def test_replay_and_rotation(fake_ari: FakeAri, tmp_path: Path,
                                   receiver: WebhookReceiver) -> None:
    fake_ari.default = Behaviour(answer_after=0.02, playback_seconds=0.02)
    async with running_service(_settings(fake_ari, tmp_path)) as service:
        old = await _secret(service)
        request_id = await service.submit({
            "to": "sip:rp@127.0.0.1:5099", "from": "me", "playlist": [{"pause": 0.1}],
            "callback_url": receiver.url(), "callback_events": ["broadcast.completed"]})
        (first,) = await _until_delivered(receiver, 1)
        status, rotated = await service.post("/webhooks/secret/rotate", {})
        assert status == 200
        new = rotated["secret"]
        assert new != old and rotated["previous_valid_until"]
        _, listed = await service.get(f"/webhooks/deliveries?request_id={request_id}")
        (delivery,) = listed["deliveries"]
        status, replayed = await service.post(
            f"/webhooks/deliveries/{delivery['id']}/replay", {})
        assert status == 200, replayed

        async def again() -> tuple[bool, int]:
            return len(receiver.delivered()) == 2, len(receiver.delivered())

        await poll(again, limit=10, what="the replay")
    second = receiver.delivered()[1]
    assert second.webhook_id == first.webhook_id and second.body == first.body
    # During the rotation both secrets sign: a receiver with either one accepts it.
    assert second.verify(new) == second.verify(old) == first.verify(old)
    assert len(second.headers["webhook-signature"].split(" ")) == 2


async def test_refused_destinations(fake_ari: FakeAri, tmp_path: Path) -> None:
    settings = _settings(fake_ari, tmp_path, webhook_allow_loopback=False)
    async with running_service(settings) as service:
        base = {"to": "sip:x@127.0.0.1:5099", "from": "me", "playlist": [{"pause": 0.1}]}
        for url, problem in (("http://127.0.0.1:9/h", "loopback"),
                             ("http://169.254.169.254/latest", "cloud metadata"),
                             ("http://[fe80::1]/h", "link-local")):
            status, answer = await service.post("/voice/call/play",
                                                 {**base, "callback_url": url})
            assert (status, answer["error"]) == (422, "address_refused"), answer
            assert answer["details"] == [{"field": "callback_url",
                                          "message": f"points at a refused address ({problem})"}]
            status, answer = await service.post("/webhooks", {"url": url})
            assert status == 422 and answer["details"][0]["field"] == "url", answer
        status, answer = await service.post("/voice/call/play", {
            **base, "callback_url": "ftp://example.com/x"})
        assert status == 400 and answer["details"][0]["field"] == "callback_url", answer
        status, answer = await service.post("/voice/call/play", {
            **base, "callback_url": "https://hooks.example/x", "callback_events": ["call.x"]})
        assert status == 400 and answer["details"][0]["field"].startswith("callback_events")
        status, answer = await service.post("/voice/call/play", {
            **base, "callback_events": ["call.ended"]})
        assert status == 400, answer
        _, listed = await service.get("/webhooks")
        assert listed["webhooks"] == []
