"""The ARI client's own small error hierarchy; the API layer never sees aiohttp errors."""


class AriError(Exception):
    """Asterisk refused or failed an ARI request."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AriUnavailable(AriError):
    """Asterisk could not be reached (connection refused, reset or timed out)."""


class AriNotFound(AriError):
    """The channel, playback or application does not exist (HTTP 404)."""


class AriConflict(AriError):
    """The id is already in use by a live object (HTTP 409)."""


class AriUnreachable(AriUnavailable):
    """Asterisk did not take the request (no connection, or 503 while it shuts down)."""
