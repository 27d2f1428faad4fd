"""Request models: what a client may send, with limits, checked before anything is stored."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.domain.dial_target import normalise_sip_uri, validate_caller_id


def _sip_uri(value: str) -> str:
    return normalise_sip_uri(value)


def _caller_id(value: str) -> str:
    return validate_caller_id(value)


SipUri = Annotated[str, AfterValidator(_sip_uri)]
CallerId = Annotated[str, AfterValidator(_caller_id)]


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    to: SipUri


class PlayItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    play: Annotated[str, Field(max_length=2048)]

    @field_validator("play")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = HttpUrl(value)
        if url.scheme not in ("http", "https"):
            raise ValueError("must be an http or https URL")
        return value


class PlayRequest(BaseModel):
    """`POST /voice/call/play`: many recipients, or the one-recipient form with `to`."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    recipients: list[Recipient] | None = None
    to: SipUri | None = None
    caller: CallerId = Field(validation_alias=AliasChoices("from"), serialization_alias="from")
    playlist: Annotated[list[PlayItem], Field(min_length=1)]

    @field_validator("recipients", "playlist", mode="before")
    @classmethod
    def _within_limit(cls, value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        limits = info.context or {}
        limit = limits.get(f"max_{info.field_name}")
        # Checked before the items, so a million recipients is refused without parsing them.
        if isinstance(value, list) and limit is not None and len(value) > limit:
            raise ValueError(f"at most {limit} items are allowed")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.recipients is None) == (self.to is None):
            raise ValueError("give either `recipients` (a list) or `to` (one recipient)")
        if self.recipients is not None and not self.recipients:
            raise ValueError("`recipients` must not be empty")
        return self

    def targets(self) -> list[str]:
        if self.recipients is not None:
            return [recipient.to for recipient in self.recipients]
        assert self.to is not None  # noqa: S101 - guaranteed by _one_form
        return [self.to]
