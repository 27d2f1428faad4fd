"""Request models: what a client may send, with limits, checked before anything is stored."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.domain.dial_target import (
    CALLER_ID_PATTERN,
    HOST,
    MAX_TARGET_LENGTH,
    PORT,
    TARGET_PATTERN,
    normalise_target,
    validate_caller_id,
)
from app.domain.text_template import TEXT_PATTERN, TemplateError, placeholders
from app.domain.trunks import NAME_PATTERN as TRUNK_NAME_PATTERN


def _sip_uri(value: str) -> str:
    return normalise_target(value)


def _caller_id(value: str) -> str:
    return validate_caller_id(value)


# The schema of each checked string is the very pattern the check uses (see dial_target).
SipUri = Annotated[str, AfterValidator(_sip_uri), WithJsonSchema(
    {"type": "string", "maxLength": MAX_TARGET_LENGTH, "pattern": TARGET_PATTERN,
     "description": "a SIP URI (sip:alice@192.0.2.10:5060) or an E.164 number (+15551234567)"})]
CallerId = Annotated[str, AfterValidator(_caller_id), WithJsonSchema(
    {"type": "string", "pattern": CALLER_ID_PATTERN,
     "description": "the caller id: 1-64 letters, digits or _.+-"})]


def _whole_number(value: Any) -> Any:
    # JSON has one number type: 2.0 is an integer to JSON Schema, so it is one here too.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Bounds go before the validator, or the JSON Schema loses its minimum and maximum.
WHOLE_NUMBER = BeforeValidator(_whole_number)
ItemLoop = Annotated[int, Field(ge=1, le=20), WHOLE_NUMBER]
VariableName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
VariableValue = Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
# additionalProperties false: a name outside the pattern is refused, as the model does.
Variables = Annotated[dict[VariableName, VariableValue],
                      Field(max_length=50, json_schema_extra={"additionalProperties": False})]
MEDIA_ID = r"^media:[0-9a-f]{64}$"
# An http(s) URL of RFC 3986 characters, without user info or fragment: nothing a fetcher,
# a log line or Asterisk could read two ways.
PLAY_URL = (rf"https?://{HOST}(?::{PORT})?"
            r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?")
PLAY_SOURCE_PATTERN = rf"^(?:{PLAY_URL}|media:[0-9a-f]{{64}})$"
# Each limit breach has its own stable error name (the envelope's `error`).
LIMIT_ERRORS = {"recipients": "too_many_recipients", "playlist": "too_many_items"}
LIMIT_ERROR_NAMES = frozenset({*LIMIT_ERRORS.values(), "text_too_long"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# A trunk's name in VOXCAST_TRUNKS_FILE (app/domain/trunks.py: NAME_PATTERN).
TrunkName = Annotated[str, Field(pattern=TRUNK_NAME_PATTERN, description=(
    "the trunk to call this number through (its name in the trunks file); absent: the trunk "
    "serving the number's longest prefix, failing over to the next"))]


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    to: SipUri
    variables: Variables | None = None
    trunk: TrunkName | None = None


class PlayItem(BaseModel):
    """Audio from an http(s) URL or an uploaded `media:<id>`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    play: Annotated[str, Field(max_length=2048, json_schema_extra={
        "pattern": PLAY_SOURCE_PATTERN,
        "description": "an http(s) URL of the audio, or media:<id> from POST /media"})]
    loop: ItemLoop = 1

    @field_validator("play")
    @classmethod
    def _http_url_or_media_id(cls, value: str) -> str:
        if value.startswith("media:"):
            if re.fullmatch(MEDIA_ID, value) is None:
                raise ValueError("must be media:<id> with the id POST /media returned")
        elif re.fullmatch(PLAY_SOURCE_PATTERN, value) is None:
            raise ValueError("must be an http or https URL (no user info, no fragment, "
                             "spaces percent-encoded), or media:<id>")
        return value


class SayItem(BaseModel):
    """Text to speech; `{name}` placeholders are filled from each recipient's variables."""

    model_config = ConfigDict(extra="forbid", strict=True)

    say: Annotated[str, Field(min_length=1, json_schema_extra={"pattern": TEXT_PATTERN})]
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")] = "en"
    voice: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]{1,64}$")] | None = None
    engine: Literal["piper", "flite", "espeak", "gtts"] | None = None
    loop: ItemLoop = 1

    @field_validator("say")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_text_chars")
        if limit is not None and len(value) > limit:
            raise PydanticCustomError("text_too_long", "must be at most {limit} characters",
                                      {"limit": limit})
        if not value.strip():
            raise ValueError("must contain something to say")
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters (newlines and tabs are fine)")
        try:
            placeholders(value)
        except TemplateError as error:
            raise ValueError(str(error)) from error
        return value


class PauseItem(BaseModel):
    """Silence, in seconds."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pause: Annotated[float, Field(gt=0, le=60)]
    loop: ItemLoop = 1

    @field_validator("pause", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # Strict mode refuses ints for floats; a whole number of seconds is natural to send.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class RetryPolicyModel(BaseModel):
    """Try a recipient again after some outcomes; every attempt is kept in the report."""

    model_config = ConfigDict(extra="forbid", strict=True)

    on: Annotated[list[Literal["busy", "no_answer", "congestion"]],
                  Field(min_length=1, max_length=3)]
    attempts: Annotated[int, Field(ge=2, le=5), WHOLE_NUMBER]  # in total, the first included
    delay: Annotated[int, Field(ge=0, le=86400), WHOLE_NUMBER] = 60  # after the previous one


WEBHOOK_URL_PATTERN = rf"^{PLAY_URL}$"
WebhookUrl = Annotated[str, Field(max_length=2048, pattern=WEBHOOK_URL_PATTERN, json_schema_extra={
    "description": "an http(s) URL (no user info, no fragment); events are POSTed to it, "
                   "signed as Standard Webhooks"})]
EventType = Literal["call.ringing", "call.answered", "call.ended", "broadcast.completed"]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=4)]


class WebhookSubscriptionRequest(BaseModel):
    """`POST /webhooks`: every event of the tenant's broadcasts (or the listed types)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: WebhookUrl
    events: EventTypes | None = None


def _item_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("play", "say", "pause"):
            if kind in value:
                return f"{kind}-item"
    return None


PlaylistItem = Annotated[
    Annotated[PlayItem, Tag("play-item")] | Annotated[SayItem, Tag("say-item")]
    | Annotated[PauseItem, Tag("pause-item")],
    Discriminator(_item_kind, custom_error_type="playlist_item",
                  custom_error_message="must be an object with play, say or pause"),
]


def _within_limit(value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
    limits = info.context or {}
    limit = limits.get(f"max_{info.field_name}")
    # Checked before the items, so a million recipients is refused without parsing them.
    if isinstance(value, list) and limit is not None and len(value) > limit:
        kind = LIMIT_ERRORS[str(info.field_name)]
        raise PydanticCustomError(kind, "at most {limit} {what} are allowed",
                                  {"limit": limit, "what": info.field_name})
    return value


class BroadcastSettings(BaseModel):
    """What a broadcast plays and how, without its recipients: the first line of a bulk
    upload (`POST /voice/call/play/bulk`)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    caller: CallerId = Field(validation_alias=AliasChoices("from"), serialization_alias="from")
    playlist: Annotated[list[PlaylistItem], Field(min_length=1)]
    retry: RetryPolicyModel | None = None
    # This request's own webhook: its events are signed with the tenant's secret.
    callback_url: WebhookUrl | None = None
    callback_events: EventTypes | None = None  # default: every event type

    _playlist_limit = field_validator("playlist", mode="before")(_within_limit)

    def needed_variables(self) -> dict[int, frozenset[str]]:
        """playlist index -> the variables its `say` text uses."""
        return {index: frozenset(placeholders(item.say))
                for index, item in enumerate(self.playlist) if isinstance(item, SayItem)}


def missing_of(recipient: Recipient, needed: dict[int, frozenset[str]]) -> list[str]:
    """What this recipient lacks of the variables `needed` (from `needed_variables`)."""
    given = recipient.variables or {}
    return [f"misses {name!r}, used by playlist[{index}].say"
            for index, names in needed.items() for name in sorted(names - given.keys())]


class PlayRequest(BroadcastSettings):
    """`POST /voice/call/play`: many recipients, or the one-recipient form with `to`."""

    recipients: list[Recipient] | None = None
    to: SipUri | None = None
    variables: Variables | None = None  # the one-recipient form's variables
    trunk: TrunkName | None = None  # the one-recipient form's trunk

    _recipients_limit = field_validator("recipients", mode="before")(_within_limit)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.callback_events is not None and self.callback_url is None:
            raise ValueError("`callback_events` needs a `callback_url`")
        if (self.recipients is None) == (self.to is None):
            raise ValueError("give either `recipients` (a list) or `to` (one recipient)")
        if self.recipients is not None and not self.recipients:
            raise ValueError("`recipients` must not be empty")
        return self

    def all_recipients(self) -> list[Recipient]:
        if self.recipients is not None:
            return self.recipients
        assert self.to is not None  # noqa: S101 - guaranteed by _one_form
        return [Recipient(to=self.to, variables=self.variables, trunk=self.trunk)]

    def targets(self) -> list[str]:
        return [recipient.to for recipient in self.all_recipients()]

    def missing_variables(self) -> list[tuple[str, str]]:
        """(field, message) for every recipient lacking a variable a `say` text uses."""
        needed = self.needed_variables()
        problems: list[tuple[str, str]] = []
        prefix = "recipients[{}].variables" if self.recipients is not None else "variables"
        for position, recipient in enumerate(self.all_recipients()):
            problems.extend((prefix.format(position), message)
                            for message in missing_of(recipient, needed))
            if len(problems) >= 20:
                break
        return problems
