"""The trunks file: validation naming trunk and key, INI safety, rendering, number formats,
caller-id policy and routing by prefix."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from app.domain.trunks import TrunkFileError, TrunkHost, TrunkTable, parse_trunks
from app.media_plane.config import ConfigValueError, render_asterisk_config
from app.media_plane.trunk_config import load_trunks_file
from tests.media_plane.test_media_plane_config import good_values

GOOD = """
[trunks.carrier-a]
hosts = [{ host = "192.0.2.20", port = 5060 }]
prefixes = ["+49"]
auth = { username = "acct-1", password = "S3cret_pass!" }
registration = { expiry = 600, contact_user = "4930555" }
from = { domain = "sip.carrier-a.example" }
caller_id = { default = "+4930555000", allowed = ["+4930555*"] }
numbers = { format = "national", country_code = "49" }
max_concurrent = 5
calls_per_second = 2.5

[trunks.carrier-b]
hosts = [{ host = "198.51.100.7", port = 5061, transport = "tcp" }]
prefixes = ["+4930", "+44"]
priority = 50
numbers = { format = "e164", strip = 2, add = "99#" }

[trunks.catch-all]
hosts = [{ host = "203.0.113.5" }]
priority = 200
"""


def table(text: str = GOOD) -> TrunkTable:
    return parse_trunks(tomllib.loads(text))


def test_a_good_file_renders_every_pjsip_object_privately(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    render_asterisk_config(good_values(trunks=table()), out)
    trunks = (out / "pjsip_trunks.conf").read_text()
    auth = (out / "pjsip_trunk_auth.conf").read_text()
    assert stat.S_IMODE((out / "pjsip_trunk_auth.conf").stat().st_mode) == 0o600
    assert "S3cret_pass!" in auth and "S3cret_pass!" not in trunks
    for expected in ("[carrier-a](voxcast-endpoint-defaults)", "outbound_auth = carrier-a-auth",
                     "from_domain = sip.carrier-a.example", "send_pai = yes",
                     "contact = sip:198.51.100.7:5061\\;transport=tcp",
                     "transport = voxcast-tcp", "match = 192.0.2.20:5060",
                     "server_uri = sip:192.0.2.20:5060", "client_uri = sip:acct-1@192.0.2.20:5060",
                     "contact_user = 4930555", "expiration = 600", "qualify_frequency = 30"):
        assert expected in trunks, expected
    assert trunks.count("type = registration") == 1  # only carrier-a registers
    assert "#include pjsip_trunks.conf" in (out / "pjsip.conf").read_text()


def test_no_trunks_renders_empty_includes(tmp_path: Path) -> None:
    render_asterisk_config(good_values(), tmp_path)
    assert "type =" not in (tmp_path / "pjsip_trunks.conf").read_text()


@pytest.mark.parametrize(("change", "named"), [
    (('password = "S3cret_pass!"', 'password = "a;b"'), "trunk 'carrier-a', key 'auth.password'"),
    (('password = "S3cret_pass!"', 'password = "a\\nb"'), "key 'auth.password'"),
    (('username = "acct-1"', 'username = "acct[1]"'), "trunk 'carrier-a', key 'auth.username'"),
    (('host = "203.0.113.5"', 'host = "203.0.113.5\\n[evil]"'),
     "trunk 'catch-all', key 'hosts[0].host'"),
    (('transport = "tcp"', 'transport = "sctp"'), "trunk 'carrier-b', key 'hosts[0].transport'"),
    (("max_concurrent = 5", "max_concurrent = 0"), "trunk 'carrier-a', key 'max_concurrent'"),
    (("calls_per_second = 2.5", "calls_per_second = -1"), "key 'calls_per_second'"),
    (('prefixes = ["+49"]', 'prefixes = ["+49x"]'), "trunk 'carrier-a', key 'prefixes[0]'"),
    (('allowed = ["+4930555*"]', 'allowed = ["+49 30"]'), "key 'caller_id.allowed[0]'"),
    (('country_code = "49"', 'country_code = "049"'), "key 'numbers.country_code'"),
    (("priority = 50", "priority = 50\ncolour = 1"), "trunk 'carrier-b', key 'colour'"),
    (("[trunks.catch-all]", '[trunks."catch;all"]'), "trunk 'catch;all'"),
    (('auth = { username = "acct-1", password = "S3cret_pass!" }\n', ""),
     "trunk 'carrier-a': registration needs [auth]"),
])
def test_a_bad_value_is_refused_naming_the_trunk_and_key(change: tuple[str, str],
                                                         named: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(TrunkFileError) as refused:
        table(text)
    assert named in str(refused.value)
    assert "S3cret" not in str(refused.value)  # never a value: it could be a password


def test_tls_trunks_need_the_tls_transport() -> None:
    text = GOOD.replace('transport = "tcp"', 'transport = "tls"')
    with pytest.raises(TrunkFileError, match="trunk 'carrier-b', key 'hosts'"):
        parse_trunks(tomllib.loads(text), transports=("udp", "tcp"))


def test_the_file_is_read_as_toml_and_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "trunks.toml"
    path.write_text("[trunks.a\nhosts = 1")
    with pytest.raises(TrunkFileError, match="not valid TOML"):
        load_trunks_file(path, ("udp",))
    assert load_trunks_file(None, ("udp",)) == TrunkTable()


@pytest.mark.parametrize(("trunk", "number", "uri"), [
    ("carrier-a", "+493012345678", "sip:03012345678@192.0.2.20:5060"),  # national
    ("carrier-a", "+442071234567", "sip:00442071234567@192.0.2.20:5060"),  # abroad
    ("carrier-b", "tel:+442071234567", "sip:99#2071234567@198.51.100.7:5061;transport=tcp"),
    ("catch-all", "+15551234567", "sip:+15551234567@203.0.113.5:5060"),  # the default
])
def test_numbers_in_each_trunks_format(trunk: str, number: str, uri: str) -> None:
    found = table().get(trunk)
    assert found is not None
    assert found.dial_uri(number, found.spec.hosts[0]) == uri


def test_caller_ids_in_the_trunks_format_and_its_default_for_names() -> None:
    carrier_a, carrier_b = table().get("carrier-a"), table().get("carrier-b")
    assert carrier_a is not None and carrier_b is not None
    assert carrier_a.caller_for("+4930555123") == "030555123"
    assert carrier_a.caller_for("billing") == "030555000"  # a name: the trunk's default
    assert carrier_b.caller_for("+4930555123") == "4930555123"  # without strip/add
    assert carrier_b.caller_for("billing") == "billing"


def test_longest_prefix_then_priority_then_the_rest() -> None:
    trunks = table()
    names = [t.name for t in trunks.candidates("+493012345")]
    assert names == ["carrier-b", "carrier-a", "catch-all"]  # +4930 beats +49 beats +
    assert [t.name for t in trunks.candidates("+4989123")] == ["carrier-a", "catch-all"]
    assert [t.name for t in trunks.candidates("+1555", named="carrier-a")] == ["carrier-a"]


@pytest.mark.parametrize(("number", "named", "caller", "problem"), [
    ("+4989123456", None, "+4930555001", None),
    ("+4989123456", None, "+4989000000", None),  # catch-all allows any caller id
    ("+4989123456", "carrier-a", "+4989000000", "from"),
    ("+4989123456", "nosuch", "+4930555001", "trunk"),
])
def test_route_problems_name_the_field(number: str, named: str | None, caller: str,
                                       problem: str | None) -> None:
    found = table().route_problem(number, named, caller)
    assert (found[0] if found else None) == problem
    without_catch_all = parse_trunks(tomllib.loads(GOOD.split("[trunks.catch-all]")[0]))
    assert without_catch_all.route_problem("+15551234", None, "x") == \
        ("to", "no trunk serves this number")


def test_host_uri() -> None:
    assert TrunkHost(host="192.0.2.1").uri == "sip:192.0.2.1:5060"


def test_behind_nat_every_ipv4_transport_announces_the_public_address(tmp_path: Path) -> None:
    render_asterisk_config(good_values(external_address="203.0.113.9",
                                       local_nets=("10.0.0.0/8", "172.16.0.0/12")), tmp_path)
    pjsip = (tmp_path / "pjsip.conf").read_text()
    transports = pjsip.count("type = transport")
    assert pjsip.count("external_signaling_address = 203.0.113.9") == transports
    assert pjsip.count("external_media_address = 203.0.113.9") == transports
    assert pjsip.count("local_net = 172.16.0.0/12") == transports
    render_asterisk_config(good_values(), tmp_path)
    assert "external_" not in (tmp_path / "pjsip.conf").read_text()


@pytest.mark.parametrize(("field", "value"), [("external_address", "203.0.113.9\n[x]"),
                                               ("local_nets", ("10.0.0.0/8;",))])
def test_nat_values_are_checked(tmp_path: Path, field: str, value: object) -> None:
    with pytest.raises(ConfigValueError, match=field):
        render_asterisk_config(good_values(**{field: value}), tmp_path)
