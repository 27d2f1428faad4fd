"""AddressPolicy: default refusals, loopback switch, allow/deny precedence, setting parser."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import pytest

from app.adapters.media.address_policy import AddressDenied, AddressPolicy, parse_networks


def _refusal(policy: AddressPolicy, address: str) -> str | None:
    try:
        policy.check(ip_address(address))
    except AddressDenied as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 -- an address to judge, not to bind
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible form
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        # IPv4-mapped IPv6 is judged as the IPv4 address it reaches.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::ffff:169.254.7.7", "link-local"),
    ],
)
def test_default_refusals(address: str, reason: str) -> None:
    assert _refusal(AddressPolicy(), address) == reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "10.1.2.3",
        "192.168.1.10",
        "100.64.0.1",
        "2001:db8::1",
        "fd12::1",
        "::ffff:93.184.215.14",
    ],
)
def test_ordinary_and_private_addresses_pass_by_default(address: str) -> None:
    assert _refusal(AddressPolicy(), address) is None


def test_allow_loopback_permits_loopback_only() -> None:
    policy = AddressPolicy(allow_loopback=True)

    for address in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert _refusal(policy, address) is None, address
    assert _refusal(policy, "169.254.169.254") == "cloud metadata"
    assert _refusal(policy, "0.0.0.0") == "unspecified"  # noqa: S104 -- judged, not bound


def test_allow_wins_over_the_default_refusals() -> None:
    policy = AddressPolicy(allow=parse_networks("169.254.10.0/24, ::1"))

    assert _refusal(policy, "169.254.10.5") is None
    assert _refusal(policy, "::1") is None
    assert _refusal(policy, "169.254.11.5") == "link-local"
    assert _refusal(policy, "127.0.0.1") == "loopback"


def test_explicit_deny_wins_over_everything() -> None:
    policy = AddressPolicy(
        deny=parse_networks("10.0.0.0/8, 127.0.0.5, 2001:db8::/32"),
        allow=parse_networks("10.1.0.0/16"),
        allow_loopback=True,
    )

    assert _refusal(policy, "10.1.2.3") == "explicitly denied"
    assert _refusal(policy, "::ffff:10.9.9.9") == "explicitly denied"
    assert _refusal(policy, "127.0.0.5") == "explicitly denied"
    assert _refusal(policy, "127.0.0.6") is None
    assert _refusal(policy, "2001:db8::7") == "explicitly denied"
    assert _refusal(policy, "11.0.0.1") is None


def test_refusal_names_address_and_reason() -> None:
    with pytest.raises(AddressDenied, match=r"169\.254\.169\.254 is refused \(cloud metadata\)"):
        AddressPolicy().check(ip_address("169.254.169.254"))


def test_parse_networks() -> None:
    assert parse_networks(" 10.0.0.0/8,192.0.2.7 ,, fd00::/8, ") == (
        IPv4Network("10.0.0.0/8"),
        IPv4Network("192.0.2.7/32"),
        IPv6Network("fd00::/8"),
    )
    assert parse_networks("") == ()


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("10.0.0.0/8, nonsense", "nonsense"),
        ("10.0.0.1/8", "10.0.0.1/8"),  # host bits set: probably a typo
        ("192.0.2.0/33", "192.0.2.0/33"),
        ("::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"),  # mapped: would never match
    ],
)
def test_parse_networks_names_the_bad_entry(text: str, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid network") as info:
        parse_networks(text)
    assert repr(bad) in str(info.value)


def test_policy_rejects_entries_that_are_not_networks() -> None:
    with pytest.raises(TypeError):
        AddressPolicy(deny=("10.0.0.0/8",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="IPv4-mapped"):
        AddressPolicy(allow=(ip_network("::ffff:0:0/96"),))
