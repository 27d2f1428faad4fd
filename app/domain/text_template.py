"""Per-recipient text: `{name}` placeholders filled with plain string replacement.

Nothing is evaluated: no attribute or index access, no format specs, no conversions. `{{` and
`}}` stand for literal braces. Every placeholder must be a plain identifier, checked when the
request arrives, so a missing variable is an error at submit time, never at call time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

# A whole acceptable text as one pattern, for the OpenAPI document: no control character but
# tab and newline, braces only as `{{`, `}}` or `{identifier}`, and something to say (leading
# white space, then a visible character or a placeholder).
_PIECE = r"\{\{|\}\}|\{[A-Za-z_][A-Za-z0-9_]{0,63}\}"
TEXT_PATTERN = (r"^[^\S\x0b-\x0d\x1c-\x1f]*"
                rf"(?:[^{{}}\s\x00-\x08\x0b-\x1f\x7f]|{_PIECE})"
                rf"(?:[^{{}}\x00-\x08\x0b-\x1f\x7f]|{_PIECE})*$")


class TemplateError(ValueError):
    """The text has a malformed placeholder, or a variable it needs is missing."""


def placeholders(text: str) -> frozenset[str]:
    """The variable names a text uses; raise TemplateError on anything but `{identifier}`."""
    names = set()
    for match in _TOKEN.finditer(text):
        piece = match.group(0)
        if piece in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None or _IDENTIFIER.fullmatch(name) is None:
            raise TemplateError(
                f"has a malformed placeholder {piece!r}: use {{name}} with a plain name, "
                "or {{ and }} for literal braces")
        names.add(name)
    return frozenset(names)


def fill(text: str, variables: Mapping[str, str]) -> str:
    """The text with every `{name}` replaced by its value, as plain text."""
    def replace(match: re.Match[str]) -> str:
        piece = match.group(0)
        if piece == "{{":
            return "{"
        if piece == "}}":
            return "}"
        name = match.group(1)
        if name is None or name not in variables:
            raise TemplateError(f"needs the variable {piece!r}")
        return variables[name]

    return _TOKEN.sub(replace, text)
