"""Pydantic's validation errors as the API names fields: `recipients[3].to`, `playlist[0].say`."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

# Parts of pydantic's error locations that name its machinery, not the client's fields.
_INTERNAL_LOCATIONS = frozenset({"play-item", "say-item", "pause-item",
                                 "function-after[_sip_uri()]",
                                 "function-after[_caller_id()]"})


def field_of(location: Sequence[int | str]) -> str:
    """The client's name for a location; "" for the whole value."""
    path = ""
    for part in location:
        if isinstance(part, str) and part in _INTERNAL_LOCATIONS:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def problems_of(error: ValidationError) -> list[tuple[str, str]]:
    """(field, message) for every problem, "body" naming the whole value."""
    return [(field_of(problem["loc"]) or "body", problem["msg"].removeprefix("Value error, "))
            for problem in error.errors(include_url=False, include_input=False)]
