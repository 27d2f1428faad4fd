"""Config rendering: every hostile value is rejected by name; rendered files are private."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path
from typing import Any

import pytest

from app.media_plane.config import (
    TEMPLATE_DIR,
    AsteriskConfigValues,
    ConfigValueError,
    render_asterisk_config,
)

PASSWORD = "Abcdefghij_0123456789-xyz"  # noqa: S105 - a test value


def good_values(**changes: Any) -> AsteriskConfigValues:
    values = AsteriskConfigValues(
        instance_dir="/srv/voxcast/unit",
        http_port=25088,
        sip_port=25060,
        ami_port=25038,
        rtp_start=26000,
        rtp_end=26999,
        ari_user="voxcast",
        ari_password=PASSWORD,
        ami_user="voxmon",
        ami_password=PASSWORD.upper(),
        sip_endpoint="voxcast-out",
        module_dir="/usr/lib/aarch64-linux-gnu/asterisk/modules",
    )
    return dataclasses.replace(values, **changes)


def test_renders_every_template_privately(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    written = render_asterisk_config(good_values(), out)

    names = {path.name for path in written}
    assert names == {p.name.removesuffix(".j2") for p in TEMPLATE_DIR.glob("*.conf.j2")}
    assert {"asterisk.conf", "modules.conf", "pjsip.conf", "ari.conf"} <= names
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not list(out.glob(".*"))  # no temporary files left behind
    assert "bindport = 25088" in (out / "http.conf").read_text()
    assert f"password = {PASSWORD}" in (out / "ari.conf").read_text()
    assert "astetcdir => /srv/voxcast/unit/etc" in (out / "asterisk.conf").read_text()
    pjsip = (out / "pjsip.conf").read_text()
    assert "bind = 127.0.0.1:25060" in pjsip and "[voxcast-out]" in pjsip


def test_rendering_again_replaces_files(tmp_path: Path) -> None:
    render_asterisk_config(good_values(), tmp_path)
    render_asterisk_config(good_values(http_port=25089), tmp_path)
    assert "bindport = 25089" in (tmp_path / "http.conf").read_text()


HOSTILE_STRINGS = [
    "evil\nnewline",
    "evil\rreturn",
    "evil;comment",
    "evil[section]",
    "evil]",
    "evil=value",
    "evil space",
    "evil\ttab",
    "evil\x00nul",
    "evil\x7fdel",
    "évil-unicode",
    "evil١digit",  # an Arabic-Indic digit: \w and \d would accept it
    "",
]
STRING_FIELDS = ["ari_user", "ami_user", "sip_endpoint", "ari_password", "ami_password"]


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize("bad", HOSTILE_STRINGS)
def test_hostile_strings_are_rejected_by_field(tmp_path: Path, field: str, bad: str) -> None:
    # Long enough to pass the password length rule, so only the bad character can fail it.
    value = bad + "x" * 20 if bad else bad
    with pytest.raises(ConfigValueError) as caught:
        render_asterisk_config(good_values(**{field: value}), tmp_path)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}:")
    if value:
        assert value not in str(caught.value)  # never echo a (possibly secret) value
    assert not list(tmp_path.iterdir())  # nothing rendered


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ari_password", "short_15_chars_"),
        ("ami_password", "x" * 129),
        ("ari_password", PASSWORD + "\n"),  # "$" would have accepted a trailing newline
        ("ari_user", "x" * 65),
        ("ari_user", 42),
        ("instance_dir", "relative/path"),
        ("instance_dir", "/srv/voxcast/../etc"),
        ("instance_dir", "/srv//voxcast"),
        ("instance_dir", "/srv/voxcast/"),
        ("instance_dir", "/"),
        ("instance_dir", "/srv/vox cast"),
        ("instance_dir", "/srv/voxcast;x"),
        ("instance_dir", "/srv/voxcast\n[x]"),
        ("instance_dir", "/" + "a" * 100),
        ("http_port", 0),
        ("sip_port", 65536),
        ("ami_port", -1),
        ("rtp_start", True),
        ("rtp_end", "26999"),
        ("http_port", 25088.0),
    ],
)
def test_bad_values_are_rejected_by_field(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(ConfigValueError) as caught:
        render_asterisk_config(good_values(**{field: value}), tmp_path)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rtp_start": 27000, "rtp_end": 27000}, "rtp_end"),
        ({"rtp_start": 27000, "rtp_end": 26000}, "rtp_end"),
        ({"ami_port": 25088}, "ami_port"),
        ({"sip_port": 26500}, "sip_port"),
    ],
)
def test_inconsistent_ports_are_rejected(
    tmp_path: Path, changes: dict[str, int], field: str
) -> None:
    with pytest.raises(ConfigValueError) as caught:
        render_asterisk_config(good_values(**changes), tmp_path)
    assert caught.value.field == field


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigValueError, ValueError)


def test_repr_hides_passwords() -> None:
    text = repr(good_values())
    assert PASSWORD not in text and PASSWORD.upper() not in text
    assert "voxcast" in text


def _settings_of(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if "=" in line and not line.startswith(";"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_asterisk_metrics_need_a_username_and_a_password(tmp_path: Path) -> None:
    render_asterisk_config(good_values(metrics_password=PASSWORD.lower()), tmp_path)
    served = _settings_of((tmp_path / "prometheus.conf").read_text())
    assert served == {"enabled": "yes", "core_metrics_enabled": "yes", "uri": "metrics",
                      "auth_username": "voxcast-metrics", "auth_password": PASSWORD.lower(),
                      "auth_realm": "Voxcast Asterisk metrics"}
    assert "load => res_prometheus.so" in (tmp_path / "modules.conf").read_text()
    render_asterisk_config(good_values(), tmp_path)  # no password: off, never open
    assert _settings_of((tmp_path / "prometheus.conf").read_text()) == {"enabled": "no"}
    with pytest.raises(ConfigValueError) as refused:
        render_asterisk_config(good_values(metrics_password="short;x"),  # noqa: S106
                               tmp_path)
    assert refused.value.field == "metrics_password"
