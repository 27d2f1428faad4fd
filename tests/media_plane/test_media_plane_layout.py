"""Instance layout and command lines: host paths versus the paths Asterisk sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.media_plane.asterisk_process import asterisk_cli_command, asterisk_command
from app.media_plane.layout import (
    AsteriskLayout,
    NoAsteriskModules,
    default_instance_dir,
    find_module_dir,
)
from app.media_plane.sipp import SippFarEnd
from tests.support.asterisk_root import asterisk_root

CHROOT = Path("/cache/sid-root")


def test_paths_inside_a_chroot() -> None:
    layout = AsteriskLayout(CHROOT, default_instance_dir(CHROOT, "dev"))
    assert layout.instance_dir == Path("/cache/sid-root/srv/voxcast/dev")
    assert layout.inside(layout.config_file) == "/srv/voxcast/dev/etc/asterisk.conf"
    assert layout.instance_dir_inside == "/srv/voxcast/dev"
    assert layout.inside(CHROOT) == "/"
    assert layout.sound_dir == layout.instance_dir / "sounds"
    assert layout.log_dir.parent == layout.sipp_dir.parent == layout.instance_dir
    assert all(path.is_relative_to(layout.instance_dir) for path in layout.asterisk_dirs)


def test_paths_with_a_native_asterisk_are_unchanged() -> None:
    layout = AsteriskLayout(Path("/"), Path("/var/lib/voxcast/run1"))
    assert layout.inside(layout.sound_dir) == "/var/lib/voxcast/run1/sounds"


@pytest.mark.parametrize("outside", [Path("/etc/passwd"), CHROOT / "../escape", Path("/cache")])
def test_paths_outside_the_root_are_refused(outside: Path) -> None:
    layout = AsteriskLayout(CHROOT, CHROOT / "srv/x")
    with pytest.raises(ValueError):
        layout.inside(outside)


@pytest.mark.parametrize(
    "instance_dir", [Path("/elsewhere"), CHROOT, CHROOT / "srv/../../out", Path("rel")]
)
def test_instance_dir_must_be_inside_root(instance_dir: Path) -> None:
    with pytest.raises(ValueError):
        AsteriskLayout(CHROOT, instance_dir)


@pytest.mark.parametrize("name", ["", "../up", "a/b", "a b"])
def test_instance_names_are_plain(name: str) -> None:
    with pytest.raises(ValueError):
        default_instance_dir(CHROOT, name)


def test_asterisk_command_chroot_and_native() -> None:
    chrooted = asterisk_command(AsteriskLayout(CHROOT, CHROOT / "srv/voxcast/a"))
    assert chrooted[0].endswith("chroot") and chrooted[1] == str(CHROOT)
    assert chrooted[2:] == [
        "/usr/sbin/asterisk",
        "-f",
        "-n",
        "-C",
        "/srv/voxcast/a/etc/asterisk.conf",
    ]
    assert "-U" not in chrooted
    native = asterisk_command(AsteriskLayout(Path("/"), Path("/srv/voxcast/a")))
    assert native[0].endswith("asterisk") and "chroot" not in native[0]
    assert native[-2:] == ["-C", "/srv/voxcast/a/etc/asterisk.conf"]
    stop = asterisk_cli_command(AsteriskLayout(CHROOT, CHROOT / "srv/a"), "core stop now")
    assert stop[-4:] == ["-C", "/srv/a/etc/asterisk.conf", "-rx", "core stop now"]


def test_sipp_command_uses_paths_inside_the_root(tmp_path: Path) -> None:
    far_end = SippFarEnd(
        tmp_path, "reject_486.xml", 25071, tmp_path / "sipp", ["-d", "10"], media_port=25500
    )
    command = far_end.command()
    assert command[1] == str(tmp_path) and command[2] == "/usr/bin/sipp"
    assert command[command.index("-sf") + 1] == "/sipp/reject_486-25071.xml"
    assert command[command.index("-p") + 1] == "25071"
    assert command[command.index("-mp") + 1] == "25500"
    assert command[-2:] == ["-d", "10"]


@pytest.mark.parametrize("scenario", ["missing", "../answer", "answer.xml/"])
def test_sipp_rejects_unknown_scenarios(tmp_path: Path, scenario: str) -> None:
    with pytest.raises(ValueError):
        SippFarEnd(tmp_path, scenario, 25071, tmp_path / "sipp")


def test_received_invites_counts_distinct_complete_lines(tmp_path: Path) -> None:
    far_end = SippFarEnd(tmp_path, "answer", 25071, tmp_path)
    assert far_end.received_invites() == 0
    far_end.invite_log.write_text("INVITE a@x\nINVITE b@x\nINVITE a@x\nINVITE c@")
    assert far_end.received_invites() == 2


def test_the_modules_folder_is_found_for_any_architecture(tmp_path):
    for folder in ("usr/lib/aarch64-linux-gnu/asterisk/modules", "usr/lib/asterisk/modules"):
        root = tmp_path / folder.split("/")[2]
        (root / folder).mkdir(parents=True)
        (root / folder / "chan_pjsip.so").touch()
        assert find_module_dir(root) == "/" + folder


def test_a_root_without_asterisk_says_so(tmp_path):
    (tmp_path / "usr/lib/x86_64-linux-gnu/asterisk/modules").mkdir(parents=True)  # empty
    with pytest.raises(NoAsteriskModules, match="is Asterisk installed in VOXCAST_ASTERISK_ROOT"):
        find_module_dir(tmp_path)


@pytest.mark.e2e
def test_the_provisioned_root_has_its_modules_found():
    root = asterisk_root()
    found = find_module_dir(root)
    assert (root / found.lstrip("/") / "res_ari.so").is_file()
