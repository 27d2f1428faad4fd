"""Unknown `VOXCAST_*` names are reported; every name the repository uses is known."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from app.settings import OTHER_NAMES, setting_names, unknown_names

REPO = Path(__file__).resolve().parents[2]


def test_a_misspelt_name_gets_the_likely_one():
    warnings = unknown_names({"VOXCAST_RING_TIMOUT": "3", "VOXCAST_AMI_PROT": "1",
                              "VOXCAST_NOTHING_LIKE_IT": "1", "PATH": "/bin"})
    assert warnings == [
        "VOXCAST_AMI_PROT is not a Voxcast setting and is ignored; did you mean "
        "VOXCAST_AMI_PORT?",
        "VOXCAST_NOTHING_LIKE_IT is not a Voxcast setting and is ignored",
        "VOXCAST_RING_TIMOUT is not a Voxcast setting and is ignored; did you mean "
        "VOXCAST_RING_TIMEOUT?",
    ]


def test_settings_and_names_other_tools_read_are_not_reported():
    known = {name: "x" for name in setting_names() | OTHER_NAMES}
    assert unknown_names(known) == []


def test_every_voxcast_name_in_the_repository_is_known():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True,
                           text=True).stdout.split()
    used: set[str] = set()
    for name in files:
        path = REPO / name
        if path.suffix in {".wav", ".mp3", ".png"} or not path.is_file():
            continue
        used.update(re.findall(r"\bVOXCAST_[A-Z][A-Z0-9_]*[A-Z0-9]\b",
                               path.read_text(encoding="utf-8", errors="replace")))
    assert used, "expected VOXCAST_* names in the repository"
    # Names of the tests' own making (e.g. VOXCAST_PROT) are the misspellings they test.
    unknown = {name for name in used
               if name not in setting_names() | OTHER_NAMES and not _misspelt_on_purpose(name)}
    assert unknown == set()


def _misspelt_on_purpose(name: str) -> bool:
    """Misspellings the tests make, and VOXCAST_CALL_ID, a channel variable, not environment."""
    return name in {"VOXCAST_CALL_ID", "VOXCAST_RING_TIMOUT", "VOXCAST_AMI_PROT",
                    "VOXCAST_NOTHING_LIKE_IT", "VOXCAST_CALLS_PER_SEC", "VOXCAST_PROT",
                    "VOXCAST_APIKEY", "VOXCAST_FOO"}
