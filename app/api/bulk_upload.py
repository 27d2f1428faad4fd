"""Reading a bulk upload: NDJSON lines, the broadcast's settings first, then one recipient each.

Lines are read a block at a time and checked a chunk at a time, so a million recipients never
exist in memory together. Every problem names its line (1 is the settings line) and field.
One bad line refuses the whole upload: after the first, nothing more is stored (and what was is
removed by the intake), but reading goes on to list up to MAX_LISTED problems at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import StreamReader
from pydantic import TypeAdapter, ValidationError

from app.api.envelope import ApiError
from app.api.models import BroadcastSettings, Recipient, missing_of
from app.api.validation import field_of, problems_of

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson"})
CHUNK_LINES = 5000
READ_BYTES = 256 * 1024
MAX_LINE_BYTES = 64 * 1024
MAX_LISTED = 20
DRAIN_BYTES = 1 << 30  # after a refusal, read at most this much more so the answer arrives

_RECIPIENTS = TypeAdapter(list[Recipient])
Target = tuple[str, dict[str, str] | None, str | None]  # to, variables, trunk
# (caller, recipient) -> (field, why) the deployment cannot dial it, or None
RouteCheck = Callable[[str, Recipient], tuple[str, str] | None]


def refused(details: list[dict[str, str]]) -> ApiError:
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return ApiError(422, "invalid_upload", summary + more, details)


def _problem(line: int, field: str, message: str) -> dict[str, str]:
    return {"field": f"line {line}: {field}" if field else f"line {line}", "message": message}


class BulkUpload:
    """One upload's lines: `settings()` reads line 1, then `recipients()` the rest."""

    def __init__(self, content: StreamReader, *, max_recipients: int,
                 unreachable: RouteCheck) -> None:
        self._content = content
        self._max = max_recipients
        self._unreachable = unreachable
        self._caller = ""
        self._pending: list[bytes] = []  # complete lines read but not taken yet
        self._carry = b""
        self._line = 0  # number of the last line taken
        self._ended = False
        self._needed: dict[int, frozenset[str]] = {}

    async def _more(self) -> bool:
        """Read the next block into complete lines; False at the end of the body."""
        if self._ended:
            return False
        block = await self._content.read(READ_BYTES)
        if not block:
            self._ended = True
            if self._carry:
                self._pending.append(self._carry)
                self._carry = b""
            return bool(self._pending)
        *complete, self._carry = (self._carry + block).split(b"\n")
        self._pending.extend(complete)
        if len(self._carry) > MAX_LINE_BYTES:
            raise refused([_problem(self._line + len(self._pending) + 1, "",
                                    f"longer than {MAX_LINE_BYTES} bytes")])
        return True

    async def _take(self, count: int) -> list[tuple[int, bytes]]:
        while len(self._pending) < count and await self._more():
            pass
        taken, self._pending = self._pending[:count], self._pending[count:]
        first = self._line + 1
        self._line += len(taken)
        return [(first + offset, line) for offset, line in enumerate(taken)]

    async def settings(self) -> BroadcastSettings:
        taken = await self._take(1)
        if not taken:
            raise refused([_problem(1, "", "the upload is empty: line 1 must hold the "
                                           "broadcast's from, playlist and retry")])
        try:
            parsed = json.loads(taken[0][1])
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise refused([_problem(1, "", "not a JSON object")]) from error
        if not isinstance(parsed, dict):
            raise refused([_problem(1, "", "not a JSON object")])
        if "recipients" in parsed or "to" in parsed:
            raise refused([_problem(1, "recipients", "recipients come one a line after "
                                                     "line 1, not in it")])
        try:
            settings = BroadcastSettings.model_validate(parsed)
        except ValidationError as error:
            raise refused([_problem(1, "" if field == "body" else field, message)
                           for field, message in problems_of(error)]) from error
        self._needed = settings.needed_variables()
        self._caller = settings.caller
        return settings

    async def recipients(self) -> AsyncIterator[list[Target]]:
        """Checked chunks of (target, variables); raises ApiError listing the problems."""
        problems: list[dict[str, str]] = []
        count = 0
        while taken := await self._take(CHUNK_LINES):
            lines = [(number, line) for number, line in taken if line.strip()]
            count += len(lines)
            if count > self._max:
                await self._drain()
                raise ApiError(400, "too_many_recipients",
                               f"line {lines[-1][0]}: at most {self._max} recipients are "
                               "allowed in one upload")
            if len(problems) >= MAX_LISTED:
                continue  # enough to show; read on only to count
            chunk = self._checked(lines, problems)
            if not problems:
                yield chunk
        if problems:
            raise refused(problems[:MAX_LISTED])
        if count == 0:
            raise refused([_problem(2, "", "no recipients: give one a line after line 1")])

    def _checked(self, lines: list[tuple[int, bytes]],
                 problems: list[dict[str, str]]) -> list[Target]:
        """The chunk's recipients; its problems are added to `problems` in line order."""
        found: list[tuple[int, dict[str, str]]] = []
        chunk = self._recipients_of(lines, found)
        problems.extend(problem for _, problem in sorted(found, key=lambda item: item[0]))
        return chunk

    def _recipients_of(self, lines: list[tuple[int, bytes]],
                       problems: list[tuple[int, dict[str, str]]]) -> list[Target]:
        parsed: list[Any] = []
        numbers: list[int] = []
        for number, line in lines:
            try:
                parsed.append(json.loads(line))
                numbers.append(number)
            except (UnicodeDecodeError, ValueError, RecursionError):
                problems.append((number, _problem(number, "", "not a JSON object")))
        try:
            recipients = _RECIPIENTS.validate_python(parsed)
        except ValidationError as error:
            for problem in error.errors(include_url=False, include_input=False):
                index, *rest = problem["loc"]
                number = numbers[int(index)]
                problems.append((number, _problem(number, field_of(rest),
                                                  problem["msg"].removeprefix("Value error, "))))
            return []
        chunk: list[Target] = []
        for number, recipient in zip(numbers, recipients, strict=True):
            for message in missing_of(recipient, self._needed):
                problems.append((number, _problem(number, "variables", message)))
            route = self._unreachable(self._caller, recipient)
            if route is not None:
                problems.append((number, _problem(number, *route)))
            chunk.append((recipient.to, recipient.variables, recipient.trunk))
        return chunk

    async def _drain(self) -> None:
        """Read what the client still sends, so it can read the refusal."""
        read = 0
        while read < DRAIN_BYTES and (block := await self._content.read(READ_BYTES)):
            read += len(block)

    async def finish(self) -> None:
        """After a refusal: let the client finish sending."""
        await self._drain()
