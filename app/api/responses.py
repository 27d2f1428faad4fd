"""Response models: what the service answers, for the OpenAPI document only.

The handlers build their answers as dicts (see `envelope.ok` and `records.call_record`); these
models describe them. Envelopes allow extra fields, since the service may add some.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TIME_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"  # records.TIME_FORMAT, in UTC

Time = Annotated[str, Field(pattern=TIME_PATTERN, description="YYYY-MM-DD HH:MM:SS, in UTC")]
Count = Annotated[int, Field(ge=0)]


class Envelope(BaseModel):
    """The success envelope every 200 answer carries."""

    model_config = ConfigDict(extra="allow")

    code: Literal[0] = Field(description="0 on success")
    status: Literal[200] = Field(description="the HTTP status, repeated")
    data: Literal["accepted"]
    request_id: str = Field(description="the id the answer is about; empty for /health, /ready")


class Progress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total: Count
    queued: Count
    in_progress: Count
    completed: Count


class ReportLink(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(description="the report id, for GET /report/{report_id}")
    location: str


class ReportReference(ReportLink):
    status: Literal["pending", "ready"]
    progress: Progress


class CallRecord(BaseModel):
    """One call as the report shows it (app/api/records.py)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: Literal["voice"]
    id: str
    result: str = Field(description="`pending`, `completed`, `failed` or `cancelled`")
    request_time: Time
    to: str
    from_: str = Field(alias="from")
    setup_time: Time | None = Field(description="null when no call was placed")
    ring_time: Time | None = Field(default=None, description="only when the far end rang")
    connect_time: Time | None = Field(default=None, description="only when answered")
    disconnect_time: Time | None
    disconnect_cause_code: str | None = Field(description="the SIP code, as a string")
    disconnect_cause_text: str | None
    duration: Count = Field(description="whole seconds from connect to disconnect")
    answered: bool
    sip_code_source: str | None
    q850_cause: int | None
    q850_text: str | None
    hangup_by: str | None
    playback: list[str] = Field(
        description="`done`, `failed` or `unknown` (ended while unobserved) per playlist item")
    speech: list[Any]
    state: str
    attempt: int
    media_server: str | None = Field(
        default=None, description="the media server (Asterisk) that placed the call")
    trunk: str | None = Field(default=None, description="the SIP trunk that carried the call")
    failed_over_from: list[str] | None = Field(
        default=None,
        description="trunks tried before `trunk` in this attempt, each as `name: why` "
                    "(`503`, `rejected`, ...); null when no trunk carried the call")


class Accepted(Envelope):
    """The broadcast is stored; `request_id` names it."""


class BulkAccepted(Envelope):
    """The upload is stored, every recipient of it; `request_id` names the broadcast."""

    recipients: Count = Field(description="recipients stored")


class RequestStatus(Envelope):
    """A request's progress and where its report is."""

    report: ReportReference


class CallStatus(Envelope):
    """One call's record."""

    record: CallRecord


class Report(Envelope):
    """Records appear once every call has ended (`report_status` is `ready`)."""

    report_status: Literal["pending", "ready"]
    progress: Progress
    next: str | None = Field(default=None, description=(
        "only with `limit`: the path of the next page, or null at the end"))
    records: list[CallRecord]
    report_request_id: str = Field(description="the request this report is for")


class ListedBroadcast(BaseModel):
    """One broadcast in `GET /voice/calls` (app/api/broadcast_list.py)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    request_id: str
    created_time: Time
    from_: str = Field(alias="from")
    status: Literal["queued", "running", "ready"] = Field(
        description="`queued`: no call dialled yet; `running`; `ready`: every call ended")
    cancelled: bool
    progress: Progress
    answered: Count = Field(description="calls that were answered")
    report: ReportLink


class BroadcastList(Envelope):
    """The caller's broadcasts, newest first."""

    broadcasts: list[ListedBroadcast]
    next: str | None = Field(description="the next page's path and query; null on the last page")


class SummaryCounts(BaseModel):
    model_config = ConfigDict(extra="allow")

    records: Count = Field(description="records counted (every attempt is one)")
    by_result: dict[str, Count] = Field(
        description="records by `result`: completed, failed, cancelled, pending")
    by_sip_code: dict[str, Count] = Field(
        description="records by `disconnect_cause_code`; `none` for no SIP code")
    answered: Count
    ended: Count = Field(description="records whose call has ended")
    answer_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        description="answered / ended, 4 decimals; null before any call ended")
    mean_duration: Annotated[float, Field(ge=0)] | None = Field(
        description="mean `duration` of the answered records, in seconds; null if none")


class ReportSummary(Envelope):
    """Totals over the report's records (or those the filters select), counted in SQL."""

    report_status: Literal["pending", "ready"]
    progress: Progress
    summary: SummaryCounts


class Cancelled(Envelope):
    """A cancelled request: queued calls will not be dialled, live ones are hung up."""

    cancelled: Count = Field(description="queued calls that will not be dialled")
    hung_up: Count = Field(description="live calls that were hung up")
    report: ReportLink


class MediaUploaded(Envelope):
    """An upload, converted; play it with `{"play": media}`."""

    media: Annotated[str, Field(pattern=r"^media:[0-9a-f]{64}$")]
    duration: Annotated[float, Field(ge=0, description="seconds")]


class Health(Envelope):
    health: str


class Ready(Envelope):
    ready: bool


class MonitorSnapshot(Envelope):
    monitor: dict[str, Any]


class TrunkStates(Envelope):
    trunks: list[dict[str, Any]] = Field(description=(
        "per trunk: `state` (`ready`, or why not: `registering`, `rejected`, `unregistered`, "
        "`failed`, `unreachable`), registration and contacts as Asterisk reports them over "
        "AMI (with the last qualify's round-trip time), live calls, calls per second over the "
        "last 10 s, the limits, and outcomes by SIP code"))


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: a stable name, the HTTP status, a message naming the fields."""

    model_config = ConfigDict(extra="allow")

    code: Annotated[int, Field(ge=1, description="never 0")]
    status: Annotated[int, Field(ge=400, le=599)]
    data: str = Field(description="the error name, as in `error`")
    error: str = Field(description="a stable name such as `invalid_request` or `not_found`")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Accepted, BulkAccepted, RequestStatus, CallStatus, Report, ReportSummary, BroadcastList,
    Cancelled, MediaUploaded, Health, Ready, MonitorSnapshot, TrunkStates,
    ErrorBody,
)
