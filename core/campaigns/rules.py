"""A campaign's rules: what qualifies a referral and what it earns. Each rule's bound and
default is here, once; `parse` refuses a rule that cannot hold, naming its field."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from core.infra.errors import InvalidInput
from core.infra.settings import ProgramSettings

# An event name (the conversion's `event`), `*`, or a prefix ending in `*` (`order.*`).
EVENT_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}|[a-z0-9_.-]{0,63}\*")
MAX_EVENT_PATTERNS = 50
MAX_MILESTONES = 20
MAX_DAYS = 365  # a credit window, a hold, a cap's window
MAX_STAY_DAYS = 90  # rules.telegram.qualify_after_days
TELEGRAM_FIELDS = ("chat_id", "qualify_after_days", "join_requests")
# A Telegram chat id: a user's, a group's or a channel's (-100...) fits in 52 bits.
CHAT_ID_MAX = 2**52
POINTS_MAX = 10**9  # the most points one grant moves (core.program.tables.POINTS_MAX)
AMOUNT_MAX = Decimal(10**11)  # a conversion's amount is below this

FIELDS = (
    "qualifying_events",
    "min_amount",
    "credit_window_days",
    "referrer_points",
    "friend_points",
    "referrer_percent",
    "milestones",
    "cap",
    "hold_days",
    "review",
    "telegram",
)
REVIEW_FIELDS = ("burst_limit", "burst_seconds", "disposable_email", "same_network")


@dataclass(frozen=True, slots=True)
class Milestone:
    qualified: int
    points: int


@dataclass(frozen=True, slots=True)
class Cap:
    rewards: int
    days: int


@dataclass(frozen=True, slots=True)
class ReviewRules:
    burst_limit: int
    burst_seconds: int
    disposable_email: bool = True
    same_network: bool = True


@dataclass(frozen=True, slots=True)
class TelegramRules:
    """A campaign grown inside Telegram: joining `chat_id` by a participant's invite link
    signs a friend up; still being a member `qualify_after_days` later qualifies them. With
    `join_requests` the links ask the chat to approve each join (held referrals wait for
    the operator's review)."""

    chat_id: int
    qualify_after_days: int = 0
    join_requests: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    referrer_points: int
    friend_points: int
    review: ReviewRules
    qualifying_events: tuple[str, ...] = ("*",)
    min_amount: Decimal | None = None
    credit_window_days: int | None = None
    referrer_percent: Decimal = Decimal(0)
    milestones: tuple[Milestone, ...] = field(default=())
    cap: Cap | None = None
    hold_days: int = 0
    telegram: TelegramRules | None = None

    def qualifies(self, event: str, amount: Decimal | None) -> bool:
        """Whether a conversion of this event and amount may qualify a referral."""
        if self.min_amount is not None and (amount is None or amount < self.min_amount):
            return False
        return any(
            pattern == event or (pattern.endswith("*") and event.startswith(pattern[:-1]))
            for pattern in self.qualifying_events
        )

    def referrer_reward(self, amount: Decimal | None) -> int:
        """The fixed points plus the percentage of the amount, rounded down."""
        share = int(amount * self.referrer_percent / 100) if amount and self.referrer_percent else 0
        return min(self.referrer_points + share, POINTS_MAX)

    def milestone_at(self, qualified: int) -> Milestone | None:
        return next((m for m in self.milestones if m.qualified == qualified), None)

    def as_json(self) -> dict[str, Any]:
        """Every rule, defaults included, as the API shows them."""
        shown = asdict(self)
        shown["qualifying_events"] = list(self.qualifying_events)
        shown["milestones"] = [asdict(m) for m in self.milestones]
        shown["min_amount"] = _number(self.min_amount)
        shown["referrer_percent"] = _number(self.referrer_percent)
        shown["telegram"] = asdict(self.telegram) if self.telegram else None
        return shown


def from_settings(settings: ProgramSettings) -> dict[str, Any]:
    """The rules a field left out takes: today's settings (REWARD_*, REVIEW_*)."""
    return {
        "referrer_points": settings.reward_referrer_points,
        "friend_points": settings.reward_friend_points,
        "review": {
            "burst_limit": settings.review_burst_limit,
            "burst_seconds": settings.review_burst_seconds,
        },
    }


def resolve(stored: dict[str, Any], settings: ProgramSettings) -> Rules:
    """The rules in force: what is stored over the settings' defaults (stored rules were
    checked by `check` when they were set)."""
    values = {**from_settings(settings), **stored}
    review = {**from_settings(settings)["review"], **(stored.get("review") or {})}
    cap = values.get("cap")
    telegram = values.get("telegram")
    return Rules(
        referrer_points=int(values["referrer_points"]),
        friend_points=int(values["friend_points"]),
        review=ReviewRules(**review),
        qualifying_events=tuple(values.get("qualifying_events") or ("*",)),
        min_amount=_decimal(values.get("min_amount")),
        credit_window_days=values.get("credit_window_days"),
        referrer_percent=_decimal(values.get("referrer_percent")) or Decimal(0),
        milestones=tuple(
            sorted(
                (
                    Milestone(int(m["qualified"]), int(m["points"]))
                    for m in values.get("milestones") or ()
                ),
                key=lambda m: m.qualified,
            )
        ),
        cap=Cap(int(cap["rewards"]), int(cap["days"])) if cap else None,
        hold_days=int(values.get("hold_days") or 0),
        telegram=TelegramRules(
            chat_id=int(telegram["chat_id"]),
            qualify_after_days=int(telegram.get("qualify_after_days") or 0),
            join_requests=bool(telegram.get("join_requests")),
        )
        if telegram
        else None,
    )


def check(given: dict[str, Any], settings: ProgramSettings) -> dict[str, Any]:
    """The rules to store for `given` (a whole set: what it leaves out takes its default,
    points and review from the settings), or `InvalidInput` naming the first bad field."""
    if not isinstance(given, dict):
        raise InvalidInput("rules must be an object.", field="rules")
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown rule {unknown[0]!r}.", field=f"rules.{unknown[0]}")
    defaults = from_settings(settings)
    events = given.get("qualifying_events", ["*"])
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENT_PATTERNS:
        raise _bad("qualifying_events", f"a list of 1-{MAX_EVENT_PATTERNS} event patterns")
    for pattern in events:
        if not isinstance(pattern, str) or not EVENT_PATTERN.fullmatch(pattern):
            raise _bad(
                "qualifying_events",
                "event names ([a-z0-9_.-]{1,64}), '*', or a prefix ending in '*'",
            )
    stored: dict[str, Any] = {"qualifying_events": list(dict.fromkeys(events))}
    stored["min_amount"] = _amount("min_amount", given.get("min_amount"))
    stored["credit_window_days"] = _whole(
        "credit_window_days", given.get("credit_window_days"), 1, MAX_DAYS, optional=True
    )
    for name in ("referrer_points", "friend_points"):
        stored[name] = _whole(name, given.get(name, defaults[name]), 0, POINTS_MAX)
    percent = _decimal_or_bad("referrer_percent", given.get("referrer_percent", 0))
    if percent is None or not 0 <= percent <= 100:
        raise _bad("referrer_percent", "a number from 0 to 100")
    stored["referrer_percent"] = _number(percent)
    milestones = given.get("milestones", [])
    if not isinstance(milestones, list) or len(milestones) > MAX_MILESTONES:
        raise _bad("milestones", f"a list of at most {MAX_MILESTONES} milestones")
    seen: set[int] = set()
    stored["milestones"] = []
    for n, milestone in enumerate(milestones):
        if not isinstance(milestone, dict) or set(milestone) != {"qualified", "points"}:
            raise _bad(f"milestones.{n}", 'an object {"qualified": int, "points": int}')
        qualified = _whole(f"milestones.{n}.qualified", milestone["qualified"], 1, 10**6)
        points = _whole(f"milestones.{n}.points", milestone["points"], 1, POINTS_MAX)
        if qualified in seen:
            raise _bad(f"milestones.{n}.qualified", "each count once")
        seen.add(qualified)
        stored["milestones"].append({"qualified": qualified, "points": points})
    stored["milestones"].sort(key=lambda m: m["qualified"])
    cap = given.get("cap")
    if cap is not None:
        if not isinstance(cap, dict) or set(cap) != {"rewards", "days"}:
            raise _bad("cap", 'null or {"rewards": int, "days": int}')
        cap = {
            "rewards": _whole("cap.rewards", cap["rewards"], 1, 10**6),
            "days": _whole("cap.days", cap["days"], 1, MAX_DAYS),
        }
    stored["cap"] = cap
    stored["hold_days"] = _whole("hold_days", given.get("hold_days", 0), 0, MAX_DAYS)
    review = given.get("review", {})
    if not isinstance(review, dict) or set(review) - set(REVIEW_FIELDS):
        raise _bad("review", f"an object of {', '.join(REVIEW_FIELDS)}")
    stored["review"] = {
        "burst_limit": _whole(
            "review.burst_limit",
            review.get("burst_limit", defaults["review"]["burst_limit"]),
            1,
            10**6,
        ),
        "burst_seconds": _whole(
            "review.burst_seconds",
            review.get("burst_seconds", defaults["review"]["burst_seconds"]),
            1,
            MAX_DAYS * 86400,
        ),
        "disposable_email": _flag("review.disposable_email", review.get("disposable_email", True)),
        "same_network": _flag("review.same_network", review.get("same_network", True)),
    }
    stored["telegram"] = _telegram(given.get("telegram"))
    return stored


def _telegram(given: Any) -> dict[str, Any] | None:
    if given is None:
        return None
    if not isinstance(given, dict) or "chat_id" not in given or set(given) - set(TELEGRAM_FIELDS):
        raise _bad(
            "telegram", 'null or {"chat_id": int, "qualify_after_days"?: int, "join_requests"?}'
        )
    chat_id = given["chat_id"]
    if (
        isinstance(chat_id, bool)
        or not isinstance(chat_id, int)
        or not 0 < abs(chat_id) < CHAT_ID_MAX
    ):
        raise _bad("telegram.chat_id", "a Telegram chat id (a whole number, -100... for a channel)")
    return {
        "chat_id": chat_id,
        "qualify_after_days": _whole(
            "telegram.qualify_after_days", given.get("qualify_after_days", 0), 0, MAX_STAY_DAYS
        ),
        "join_requests": _flag("telegram.join_requests", given.get("join_requests", False)),
    }


def _bad(name: str, what: str) -> InvalidInput:
    return InvalidInput(f"rules.{name} must be {what}.", field=f"rules.{name}")


def _whole(name: str, value: Any, low: int, high: int, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(name, f"a whole number from {low} to {high}" + (" or null" if optional else ""))
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "true or false")
    return value


def _decimal_or_bad(name: str, value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _bad(name, "a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _bad(name, "a number") from None
    return number if number.is_finite() else None


def _amount(name: str, value: Any) -> Any:
    if value is None:
        return None
    number = _decimal_or_bad(name, value)
    if number is None or not 0 <= number < AMOUNT_MAX:
        raise _bad(name, f"null or a number from 0 below {AMOUNT_MAX}")
    return _number(number)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _number(value: Decimal | None) -> int | float | None:
    """A decimal as JSON shows it: whole numbers as integers."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)
