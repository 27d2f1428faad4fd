"""Asterisk's channel event log (CEL JSON lines) read back for calls that ended unobserved."""

import json
from datetime import UTC, datetime

from app.adapters.cel.channel_log import ChannelEventLog


def _line(kind: str, at: float, channel: str, extra: str = "") -> str:
    return json.dumps({"eventtype": kind, "eventtime": f"{at:.6f}", "uniqueid": channel,
                       "eventextra": extra}) + "\n"


async def test_a_channel_history_comes_from_its_lines_only(tmp_path):
    path = tmp_path / "cel-custom" / "voxcast-cel.json"
    path.parent.mkdir()
    hangup = json.dumps({"hangupcause": 16, "hangupsource": "", "dialstatus": ""})
    path.write_text(
        _line("CHAN_START", 100.0, "voxcast-a") + _line("CHAN_START", 100.5, "voxcast-b")
        + _line("ANSWER", 101.25, "voxcast-a") + _line("HANGUP", 104.5, "voxcast-a", hangup)
        + _line("CHAN_END", 104.5, "voxcast-a")
        + '{"eventtype":"HANGUP","eventtime":"105.0","uniqueid":"voxcast-b","ev')  # half written
    log = ChannelEventLog(path)
    assert log.available
    found = await log.histories({"voxcast-a", "voxcast-b", "voxcast-never"})
    a = found["voxcast-a"]
    assert a.created_at == datetime.fromtimestamp(100.0, UTC)
    assert a.answered_at == datetime.fromtimestamp(101.25, UTC)
    assert a.hung_up_at == datetime.fromtimestamp(104.5, UTC) and a.hangup_cause == 16
    b = found["voxcast-b"]
    assert b.created_at is not None and not b.ended  # its hang-up line is incomplete
    assert "voxcast-never" not in found  # Asterisk never saw it: it was never placed


async def test_the_rotated_file_is_read_too_and_rotation_bounds_the_log(tmp_path):
    path = tmp_path / "voxcast-cel.json"
    path.write_text(_line("CHAN_START", 1.0, "voxcast-old") + "x" * 100 + "\n")
    log = ChannelEventLog(path)
    log.rotate_if_large(limit=50)
    assert not path.exists()
    path.write_text(_line("HANGUP", 2.0, "voxcast-old", '{"hangupcause": 17}'))
    found = await log.histories({"voxcast-old"})
    assert found["voxcast-old"].created_at is not None
    assert found["voxcast-old"].hangup_cause == 17


async def test_no_folder_means_no_log(tmp_path):
    log = ChannelEventLog(tmp_path / "missing" / "voxcast-cel.json")
    assert not log.available
    assert await log.histories({"voxcast-a"}) == {}
