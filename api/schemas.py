"""Request and response bodies at the API boundary; ormar models never reach OpenAPI."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from core.program.tables import AMOUNT_MAX, AMOUNT_PLACES, POINTS_MAX
from core.referrals.service import Referral
from core.users.models import Account
from core.users.names import check_name
from core.users.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,32}$")]


_AS_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def json_of(value: object, adapter: TypeAdapter[Any] = _AS_JSON) -> Response:
    """Plain values (dicts, lists, dataclasses, datetimes) as JSON, by pydantic's core, with
    no validation: for a hot read whose values the core already typed, the shape the route's
    `response_model` documents (tests/contract.py checks every answer the suite gets against
    its route's model). An `adapter` of
    the value's own type serialises it without looking up each value's type at run time."""
    return Response(adapter.dump_json(value), media_type="application/json")


class ReferralPageBody(TypedDict):
    """What a referrals page answers, as the core's rows give it (see `ReferralPage`)."""

    items: list[Referral]
    total: int
    limit: int
    offset: int
    next_cursor: str | None


REFERRAL_PAGE_JSON: TypeAdapter[ReferralPageBody] = TypeAdapter(ReferralPageBody)


def json_answer(model: BaseModel, status_code: int = 200) -> Response:
    """A response model as its answer, serialised once by pydantic's core.

    For the hot reads: FastAPI would first dump the returned model, validate the dump against
    the route's response model again and encode it, three passes over a value already valid.
    The route still declares `response_model`, so the documented schema is the same.
    """
    body = model.__pydantic_serializer__.to_json(model)
    return Response(body, status_code=status_code, media_type="application/json")


def _storable(value: str) -> str:
    """Refuse what no database stores: NUL and lone surrogates (valid in JSON, not UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
# A person's name, shown to others: no control or text-direction characters.
Name = Annotated[str, AfterValidator(_storable), AfterValidator(check_name)]

_ISO_DATETIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d")


def _iso_text(value: object) -> object:
    """Timestamps are ISO 8601 text: pydantic would also take Unix seconds (or, when large,
    milliseconds) as numbers or digit strings, which the contract does not allow."""
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        return value
    if isinstance(value, dt.datetime):  # built in Python, not parsed from a request
        return value
    raise ValueError("must be an ISO 8601 date and time with a UTC offset")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable machine-readable `code`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "You already have an active referral code; delete it first.",
                    "code": "active_code_exists",
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


class UserCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery",
                    "full_name": "Ada Lovelace",
                    "referral_code": "Xk3_9aQpL2mz",
                }
            ]
        }
    )

    email: EmailStr = Field(max_length=320)
    password: Text = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
    full_name: Name | None = Field(default=None, min_length=1, max_length=100)
    referral_code: Text | None = Field(default=None, max_length=256)


class UserRead(BaseModel):
    id: int = Field(examples=[1])
    email: str | None = Field(examples=["ada@example.com"])
    full_name: str | None = Field(examples=["Ada Lovelace"])
    referrer_id: int | None = Field(examples=[None])
    telegram_id: int | None = Field(examples=[None])
    created_at: dt.datetime = Field(examples=["2026-11-26T10:00:00Z"])
    is_superuser: bool = False
    email_verified: bool = Field(
        default=False, description="Confirmed through the link mailed at sign-up."
    )
    company: str | None = None
    job_title: str | None = None
    location: str | None = None
    avatar_url: str | None = None
    enrichment_status: str | None = Field(
        default=None, description="pending, done, not_found or failed; null when disabled"
    )
    blocked: bool = Field(default=False, description="Blocked by an operator.")

    @classmethod
    def of(cls, user: Account) -> UserRead:
        return cls(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            referrer_id=user.referrer_id,
            telegram_id=user.telegram_id,
            created_at=user.created_at,
            is_superuser=user.is_superuser,
            email_verified=user.email_verified,
            company=user.company,
            job_title=user.job_title,
            location=user.location,
            avatar_url=user.avatar_url,
            enrichment_status=user.enrichment_status,
            blocked=user.blocked_at is not None,
        )


class Token(BaseModel):
    access_token: str = Field(examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.…"])
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Lifetime of the access token, in seconds.", examples=[900])
    refresh_token: str = Field(
        description="Works once: /auth/refresh trades it for a new pair.",
        examples=["kq2Pj1w7yBfz0rX9c4VdE3uN6sLh8TgAa5mQoRiZ_Kc"],
    )


class RefreshRequest(BaseModel):
    refresh_token: Text = Field(max_length=512)


Password = Annotated[
    str,
    AfterValidator(_storable),
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
]


class LogoutRequest(BaseModel):
    refresh_token: Text = Field(max_length=512)


class PasswordChange(BaseModel):
    current_password: Text = Field(max_length=128)
    new_password: Password


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"full_name": "Ada King"}]})

    full_name: Name | None = Field(
        min_length=1, max_length=100, description="The name others see; null removes it."
    )


class AccountErasure(BaseModel):
    password: Text = Field(max_length=128)


class PasswordResetRequest(BaseModel):
    email: Text = Field(min_length=1, max_length=320)


class PasswordResetConfirm(BaseModel):
    token: Text = Field(max_length=512)
    new_password: Password


class EmailVerification(BaseModel):
    token: Text = Field(max_length=512)


class ReferralCodeCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"expires_at": "2026-12-31T23:59:59Z", "max_uses": 10}]}
    )

    expires_at: Timestamp = Field(description="In the future, at most 365 days ahead.")
    code: Code | None = Field(
        default=None, description="A custom value; generated (12 characters) when omitted."
    )
    # Strict: a JSON integer, not `true` (which pydantic would read as 1) nor "1_000".
    max_uses: int | None = Field(default=None, ge=1, le=2_000_000_000, strict=True)
    campaign: str | None = Field(
        default=None, description="The campaign's key; the default campaign when omitted."
    )


class ReferralCodeRead(BaseModel):
    code: str = Field(examples=["Xk3_9aQpL2mz"])
    created_at: dt.datetime = Field(examples=["2026-11-26T10:00:00Z"])
    expires_at: dt.datetime = Field(examples=["2026-12-31T23:59:59Z"])
    max_uses: int | None = Field(examples=[10])
    uses: int = Field(examples=[3])
    telegram_link: str | None = Field(examples=["https://t.me/referral_bot?start=Xk3_9aQpL2mz"])
    campaign: str = Field(description="The key of the code's campaign.", examples=["default"])


class ReferralItem(BaseModel):
    id: int = Field(examples=[2])
    email: str | None = Field(examples=["bob@example.com"])
    full_name: str | None = Field(examples=["Bob"])
    created_at: dt.datetime = Field(examples=["2026-11-27T09:30:00Z"])
    referral_code: str | None = Field(
        description="The code they joined with.", examples=["Xk3_9aQpL2mz"]
    )
    status: Literal["approved", "pending_review", "rejected"] = Field(examples=["approved"])


class ReferralPage(BaseModel):
    items: list[ReferralItem]
    total: int = Field(description="All referrals, across pages.", examples=[1])
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page; null on the last page.",
        examples=[None],
    )


class TelegramLink(BaseModel):
    url: str = Field(
        examples=["https://t.me/referral_bot?start=link_3q2X4mN8pQ1rS5tU7vW9xY0zA2bC4dE6"]
    )
    expires_at: dt.datetime = Field(examples=["2026-11-26T10:15:00Z"])


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class JobBacklog(BaseModel):
    oldest_due_seconds: float = Field(
        description="How long the earliest due job has waited (0: none waits)."
    )


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    cache: Literal["ok", "degraded"]
    jobs: JobBacklog | None = Field(description="Null when the database does not answer.")


# -- operators -------------------------------------------------------------------------


class ApiKeyCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=100, examples=["billing backend"])


class ApiKeyRead(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    key: str = Field(description="Shown only here; stored as a digest.", examples=["rk_…"])
    created_at: dt.datetime


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]


class Actor(BaseModel):
    user_id: int | None
    api_key_id: int | None
    address: str | None = Field(description="The client address the action came from.")
    label: str = Field(
        description="Who, as a person reads it: an email, `key: <name>`, or `the service`."
    )


class AuditItem(BaseModel):
    id: int
    actor: Actor
    action: str = Field(examples=["webhook.created"])
    target: str = Field(examples=["webhook:1"])
    created_at: dt.datetime


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_cursor: str | None


# -- webhooks --------------------------------------------------------------------------

WebhookUrl = Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
EventName = Annotated[Text, StringConstraints(min_length=1, max_length=64)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks/referrals",
                    "events": ["referral.created", "user.created"],
                    "description": "CRM sync",
                }
            ]
        }
    )

    url: WebhookUrl = Field(description="http:// or https://")
    events: list[EventName] = Field(
        min_length=1, max_length=20, description='Event types, or ["*"] for all.'
    )
    description: Text | None = Field(default=None, max_length=500)


class WebhookUpdate(BaseModel):
    url: WebhookUrl | None = None
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=20)
    description: Text | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(default=None, strict=True)


class WebhookRead(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    secret: str = Field(description="whsec_<base64>: verify signatures with it.")
    created_at: dt.datetime
    previous_secret_until: dt.datetime | None = Field(
        description="After a rotation: until when the old secret signs too (a second `v1,`)."
    )
    consecutive_failures: int = Field(
        description="Deliveries that failed for good in a row (reset by a success or by "
        "enabling the endpoint)."
    )
    disabled_reason: str | None = Field(
        description="Why the service switched the endpoint off (null: it did not)."
    )


class WebhookList(BaseModel):
    items: list[WebhookRead]


class DeliveryRead(BaseModel):
    id: int
    message_id: str = Field(description="The webhook-id header, the same on every attempt.")
    event_type: str
    attempt: int = Field(description="Attempts so far.")
    status: Literal["pending", "succeeded", "failed"]
    response_status: int | None
    error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


class RetriedDeliveries(BaseModel):
    retried: int = Field(description="Failed deliveries queued again.")


class JobRead(BaseModel):
    id: int
    kind: str = Field(examples=["webhook.delivery"])
    status: Literal["queued", "running", "succeeded", "failed"]
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: dt.datetime
    run_at: dt.datetime = Field(description="When it is next due (running: its lease's end).")
    finished_at: dt.datetime | None


class JobPage(BaseModel):
    items: list[JobRead]
    next_cursor: str | None


class AdminDeliveryRead(DeliveryRead):
    endpoint_id: int


class AdminDeliveryPage(BaseModel):
    items: list[AdminDeliveryRead]
    next_cursor: str | None


# -- the program -----------------------------------------------------------------------

EventType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]


def _json_number(value: object) -> object:
    """A JSON number as the exact decimal it spells: never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("amount is a JSON number")
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


Amount = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0, lt=AMOUNT_MAX, decimal_places=AMOUNT_PLACES, allow_inf_nan=False),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": AMOUNT_MAX,
            "multipleOf": 10**-AMOUNT_PLACES,
            "description": f"At most {AMOUNT_PLACES} decimals; stored exactly.",
        }
    ),
]


class ConversionCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "bob@example.com",
                    "event": "first_purchase",
                    "external_id": "order-1042",
                    "amount": 49.9,
                    "currency": "EUR",
                }
            ]
        }
    )

    user_id: int | None = Field(default=None, strict=True)
    email: Text | None = Field(default=None, min_length=1, max_length=320)
    event: EventType
    external_id: Text = Field(min_length=1, max_length=128, description="Your own id of it.")
    amount: Amount | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _one_user(self) -> ConversionCreate:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id and email")
        return self


class RewardRead(BaseModel):
    id: int
    user_id: int
    points: int
    reason: Literal[
        "referral_qualified", "referred_signup_bonus", "milestone", "adjustment", "reversal"
    ]
    status: Literal["pending", "available", "revoked"] = Field(
        description="`pending` through the campaign's hold, then `available` (spendable), "
        "unless a refund revoked it first."
    )
    referral_id: int | None
    conversion_id: int | None = Field(description="The conversion whose qualification it pays.")
    campaign: str = Field(description="The key of its campaign.", examples=["default"])
    note: str | None
    created_at: dt.datetime
    available_at: dt.datetime = Field(description="Its grant time plus the campaign's hold.")


class ConversionRead(BaseModel):
    id: int
    user_id: int
    event: str
    external_id: str
    amount: float | None
    currency: str | None
    created_at: dt.datetime
    referral_qualified: bool
    capped: bool = Field(description="It qualified the referral past the campaign's cap.")
    refunded_at: dt.datetime | None
    rewards: list[RewardRead]


class RefundCreate(BaseModel):
    reason: Text | None = Field(default=None, max_length=200)


class RefundRead(BaseModel):
    conversion: ConversionRead
    revoked: list[RewardRead] = Field(description="Its rewards that were in hold: taken back.")
    kept: list[RewardRead] = Field(description="Its rewards already available: they stay.")


class RewardPage(BaseModel):
    balance: int = Field(description="Available points: what may be spent.")
    pending: int = Field(description="Points in hold.")
    items: list[RewardRead]
    next_cursor: str | None


CampaignKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")]
CampaignName = Annotated[Text, StringConstraints(min_length=1, max_length=100)]


class MilestoneRule(BaseModel):
    qualified: int = Field(description="The referrer's qualified referrals in the campaign.")
    points: int


class CapRule(BaseModel):
    rewards: int = Field(description="At most this many rewarded referrals per referrer...")
    days: int = Field(description="...in the last this many days (1-365).")


class ReviewRule(BaseModel):
    burst_limit: int
    burst_seconds: int
    disposable_email: bool
    same_network: bool


class TelegramRule(BaseModel):
    chat_id: int
    qualify_after_days: int = Field(description="0-90: a member this long after joining qualifies")
    join_requests: bool = Field(description="links ask the chat to approve each join")


class ChatStatusRead(BaseModel):
    chat_id: int
    status: Literal["ready", "not_admin", "unreachable", "unchecked"]
    ready: bool
    title: str | None
    problem: str | None = Field(description="what keeps the bot from inviting people, in words")
    checked_at: dt.datetime | None


class RulesRead(BaseModel):
    qualifying_events: list[str]
    min_amount: float | None
    credit_window_days: int | None
    referrer_points: int
    friend_points: int
    referrer_percent: float
    milestones: list[MilestoneRule]
    cap: CapRule | None
    hold_days: int
    review: ReviewRule
    telegram: TelegramRule | None = Field(
        description="The chat whose joins sign friends up (BOT.md v1.2), or null."
    )


RULES_DESCRIPTION = (
    "Every field optional, defaults as in the contract (points and review from the settings); "
    "a rule that cannot hold is a 422 naming its field (`rules.cap.days`)."
)


class CampaignCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "double-december",
                    "name": "Double rewards in December",
                    "starts_at": "2026-12-01T00:00:00Z",
                    "ends_at": "2027-01-01T00:00:00Z",
                    "rules": {
                        "referrer_points": 200,
                        "friend_points": 100,
                        "hold_days": 14,
                        "cap": {"rewards": 10, "days": 30},
                    },
                }
            ]
        }
    )

    key: CampaignKey
    name: CampaignName
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    rules: dict[str, Any] | None = Field(default=None, description=RULES_DESCRIPTION)


class CampaignUpdate(BaseModel):
    name: CampaignName | None = None
    status: Literal["active", "paused", "ended"] | None = None
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    rules: dict[str, Any] | None = Field(
        default=None, description="The whole set, replaced. " + RULES_DESCRIPTION
    )


class CampaignRead(BaseModel):
    id: int
    key: str
    name: str
    status: Literal["active", "paused", "ended"]
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    rules: RulesRead
    created_at: dt.datetime
    telegram_chat: ChatStatusRead | None = Field(
        default=None,
        description="When the rules name a chat: whether the bot may invite people there, as "
        "it last checked (the bot checks after every change of the campaign).",
    )


class CampaignList(BaseModel):
    items: list[CampaignRead]


class Funnel(BaseModel):
    days: int
    link_opens: int
    signups: int
    qualified: int
    rewarded: int
    pending_review: int
    rejected: int
    points_granted: int
    points_revoked: int
    k_factor: float = Field(
        description="Referred sign-ups per referrer who had a code in the window (0: none)."
    )
    median_hours_to_qualify: float | None


class RewardAdjustment(BaseModel):
    points: int = Field(strict=True, ge=-POINTS_MAX, le=POINTS_MAX)
    note: Text = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _not_zero(self) -> RewardAdjustment:
        if self.points == 0:
            raise ValueError("points must not be zero")
        return self


class AdminUser(UserRead):
    pass


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    next_cursor: str | None


class AdminReferral(BaseModel):
    id: int
    email: str | None
    full_name: str | None
    referrer_id: int
    referral_code: str
    status: Literal["approved", "pending_review", "rejected"]
    review_reasons: list[str]
    created_at: dt.datetime
    qualification: Literal["pending", "qualified", "expired", "left"] = Field(
        description="`expired`: its campaign's credit window passed before it qualified; "
        "`left`: the friend left the campaign's Telegram chat before the stay qualified them."
    )


class AdminReferralPage(BaseModel):
    items: list[AdminReferral]
    next_cursor: str | None


class DayCount(BaseModel):
    date: dt.date
    referrals: int


class ReferralStats(BaseModel):
    referrals: int
    approved: int
    pending_review: int
    rejected: int
    qualified: int
    rewards_balance: int
    rewards_pending: int
    link_opens: int
    last_30_days: list[DayCount]


class LeaderReferrer(BaseModel):
    id: int
    full_name: str | None


class LeaderboardItem(BaseModel):
    rank: int
    referrer: LeaderReferrer
    referrals: int


class Leaderboard(BaseModel):
    days: int
    items: list[LeaderboardItem]


class ProgramDay(BaseModel):
    date: dt.date
    signups: int
    referred: int
    qualified: int


class ProgramTotals(BaseModel):
    users: int
    referred: int
    pending_review: int
    qualified: int
    rewards_points: int


class ProgramOverview(BaseModel):
    days: list[ProgramDay]
    totals: ProgramTotals
