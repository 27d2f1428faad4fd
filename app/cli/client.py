"""The HTTP API seen from the command line: one method per call, errors as one clear line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from app.cli.config import ClientConfig


class CliError(Exception):
    """A failure the person can act on; the message is the whole explanation, on one line."""


class ApiClient:
    def __init__(self, config: ClientConfig, http: aiohttp.ClientSession) -> None:
        self._config = config
        self._http = http

    async def submit(self, body: dict[str, Any]) -> str:
        answer = await self._call("POST", "/voice/call/play", body)
        return str(answer["request_id"])

    async def status(self, item_id: str) -> dict[str, Any]:
        """A request's report reference (`report`), or one call's record (`record`)."""
        return await self._call("GET", f"/voice/call/status/{item_id}")

    async def trunks(self) -> list[dict[str, Any]]:
        """GET /trunks (operator tenants): every trunk's state and load."""
        answer = await self._call("GET", "/trunks")
        return list(answer["trunks"])

    async def report(self, report_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/report/{report_id}")

    async def report_id_of(self, request_or_report_id: str) -> str:
        """The report id for a request id; a report id is returned as it is."""
        try:
            status = await self.status(request_or_report_id)
        except NotFound:
            return request_or_report_id  # not a request: perhaps a report id itself
        if "report" not in status:
            raise CliError(f"{request_or_report_id} is a call, not a request: "
                           "use `voxcast status` for one call")
        return str(status["report"]["id"])

    async def _call(self, method: str, path: str,
                    body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._config.api_key}"} if self._config.api_key \
            else {}
        url = self._config.url + path
        try:
            async with self._http.request(method, url, json=body, headers=headers) as response:
                text = await response.text()
                status = response.status
        except aiohttp.ClientConnectorError as error:
            raise CliError(f"cannot reach the Voxcast API at {self._config.url} ({error.os_error}"
                           "): is it running? Set VOXCAST_URL or --url") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise CliError(f"the Voxcast API at {self._config.url} did not answer properly: "
                           f"{error or type(error).__name__}") from error
        try:
            answer = json.loads(text)
        except ValueError as error:
            raise CliError(f"{method} {path}: HTTP {status}, not a Voxcast answer "
                           "(is VOXCAST_URL the API's address?)") from error
        if status == 401:
            raise CliError(f"the API refused the key (401 {answer.get('message', '')}): set "
                           "VOXCAST_API_KEY or --api-key to a valid key")
        if status == 404:
            raise NotFound(answer.get("message") or f"{path}: not found")
        if status >= 400 or not isinstance(answer, dict):
            raise CliError(f"{method} {path}: HTTP {status} "
                           f"{answer.get('error', '')}: {answer.get('message', text[:200])}")
        return answer


class NotFound(CliError):
    """The API answered 404: no such id (or another tenant's)."""


REQUEST_SECONDS = 30.0  # one request; following a broadcast is many


@asynccontextmanager
async def api_client(config: ClientConfig) -> AsyncIterator[ApiClient]:
    """A client with its own connection pool, closed on the way out."""
    limit = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
    async with aiohttp.ClientSession(timeout=limit) as http:
        yield ApiClient(config, http)
