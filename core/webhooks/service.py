"""Webhooks: endpoints operators register, events fanned out to them, deliveries as jobs.

An event is turned into one delivery per subscribed endpoint in the transaction of the change
that causes it, each delivery with its job (`WEBHOOK_DELIVERY`): the request that caused the
event never waits for a receiver, and a process that dies loses no delivery.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import secrets as random
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from core.infra import clock
from core.infra.db import (
    database,
    execute,
    execute_built,
    forget,
    in_transaction,
    is_valid_id,
    remembered,
)
from core.infra.errors import InvalidInput
from core.infra.events import EventData
from core.infra.pagination import delete_finished, newest_first
from core.jobs.queue import ClaimedJob, JobQueue, RetrySchedule
from core.jobs.worker import GiveUp, JobKind, RetryLater
from core.operators.service import Operator, OperatorService
from core.telegram.service import TelegramService
from core.users.models import User
from core.webhooks.errors import DeliveryNotFailed, DeliveryNotFound, WebhookNotFound
from core.webhooks.models import FAILED, PENDING, SUCCEEDED, WebhookDelivery, WebhookEndpoint
from core.webhooks.sender import Sender

WEBHOOK_DELIVERY = "webhook.delivery"
EVENT_TYPES = (
    "user.created",
    "referral.created",
    "referral.reviewed",
    "referral.qualified",
    "reward.granted",
    "reward.available",
    "reward.revoked",
    "conversion.refunded",
    "milestone.reached",
    "campaign.updated",
    "referral_code.created",
    "referral_code.deleted",
    "ping",
)
DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED)
# After a rotation the old secret keeps signing this long.
SECRET_OVERLAP = dt.timedelta(hours=24)
MAX_URL_LENGTH = 2000

_endpoints = WebhookEndpoint.ormar_config.table
# Read once per transaction that emits events (built once: on PostgreSQL, straight on asyncpg).
_ENABLED = sa.select(_endpoints.c.id, _endpoints.c.events).where(_endpoints.c.enabled)
_ENABLED_ENDPOINTS = "webhooks.enabled_endpoints"  # remembered by a transaction's events
_deliveries = WebhookDelivery.ormar_config.table
_users = User.ormar_config.table


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    secret: str
    created_at: dt.datetime
    # After a rotation, until when the old secret signs too (None: no old secret signs).
    previous_secret_until: dt.datetime | None
    consecutive_failures: int
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    endpoint_id: int
    message_id: str
    event_type: str
    attempt: int
    status: str
    response_status: int | None
    error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[Delivery]
    next_cursor: str | None


_ENDPOINT_COLUMNS = (
    _endpoints.c.id,
    _endpoints.c.url,
    _endpoints.c.events,
    _endpoints.c.description,
    _endpoints.c.enabled,
    _endpoints.c.secret,
    _endpoints.c.created_at,
    _endpoints.c.previous_secret_until,
    _endpoints.c.consecutive_failures,
    _endpoints.c.disabled_reason,
)
_DELIVERY_COLUMNS = (
    _deliveries.c.id,
    _deliveries.c.endpoint_id,
    _deliveries.c.message_id,
    _deliveries.c.event_type,
    _deliveries.c.attempt,
    _deliveries.c.status,
    _deliveries.c.response_status,
    _deliveries.c.error,
    _deliveries.c.created_at,
    _deliveries.c.next_attempt_at,
)


# A host name as DNS spells it (after IDNA): letters, digits, hyphens, dots.
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?)+$")


def check_url(url: str) -> str:
    """An http(s) URL a delivery can be sent to, or a 422 naming `url` (checked at create and
    at every change, so no attempt fails later on what could be known now)."""
    url = url.strip()

    def refuse(why: str) -> InvalidInput:
        return InvalidInput(f"The URL {why}.", field="url")

    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"is longer than {MAX_URL_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise refuse("may not hold spaces or control characters")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # a bad port or IPv6 literal raises here
    except ValueError:
        raise refuse("cannot be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise refuse("must be http:// or https://")
    if not host:
        raise refuse("has no host")
    if parts.username is not None or parts.password is not None:
        raise refuse("may not carry credentials (deliveries are signed instead)")
    if parts.fragment:
        raise refuse("may not have a #fragment")
    if port == 0:
        raise refuse("has port 0")
    if parts.netloc.endswith("]") or "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise refuse("has a malformed IPv6 address") from None
    else:
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise refuse("has a host name that is not valid") from None
        if not _HOST_NAME.match(ascii_host.lower()):
            raise refuse("has a host name that is not valid")
    return url


def check_events(events: list[str]) -> list[str]:
    unknown = [event for event in events if event != "*" and event not in EVENT_TYPES]
    if unknown or not events:
        raise InvalidInput(
            f"Events are '*' or among {', '.join(EVENT_TYPES)}; "
            f"not {', '.join(unknown) or 'none'}.",
            field="events",
        )
    return sorted(set(events))


def new_secret() -> str:
    return "whsec_" + base64.b64encode(random.token_bytes(24)).decode()


def new_message_id() -> str:
    return "msg_" + random.token_urlsafe(18)


def json_ready(value: Any) -> Any:
    """Datetimes as ISO 8601 text, so a payload is stored and sent as the API would show it."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


# Chat messages to superusers linked to Telegram (rendered by the bot).
WEBHOOK_FAILING_MESSAGE = "webhook_failing"
WEBHOOK_DISABLED_MESSAGE = "webhook_disabled"
# Who acts when the service itself switches an endpoint off (the audit log's actor).
_SERVICE = Operator()


class WebhookService:
    def __init__(
        self,
        *,
        jobs: JobQueue,
        sender: Sender,
        operators: OperatorService,
        disable_after_failures: int = 20,
    ) -> None:
        self.jobs = jobs
        self.sender = sender
        self.operators = operators
        self.disable_after_failures = disable_after_failures

    # -- endpoints ------------------------------------------------------------------------

    async def create(
        self, *, operator: Operator, url: str, events: list[str], description: str | None
    ) -> Endpoint:
        values = {
            "url": check_url(url),
            "events": check_events(events),
            "description": description,
            "enabled": True,
            "secret": new_secret(),
            "created_at": clock.utcnow(),
        }
        async with database.transaction(), database.connection() as connection:
            row = (
                await execute(
                    connection, sa.insert(_endpoints).values(**values).returning(*_ENDPOINT_COLUMNS)
                )
            ).one()
            forget(_ENABLED_ENDPOINTS)
            await self.operators.record(
                operator=operator, action="webhook.created", target=f"webhook:{row.id}"
            )
        return Endpoint(**row._mapping)

    async def endpoints(self) -> list[Endpoint]:
        async with database.connection() as connection:
            rows = (
                await execute(connection, sa.select(*_ENDPOINT_COLUMNS).order_by(_endpoints.c.id))
            ).all()
        return [Endpoint(**row._mapping) for row in rows]

    async def endpoint(self, endpoint_id: int) -> Endpoint:
        if not is_valid_id(endpoint_id):
            raise WebhookNotFound()
        async with database.connection() as connection:
            row = (
                await execute(
                    connection, sa.select(*_ENDPOINT_COLUMNS).where(_endpoints.c.id == endpoint_id)
                )
            ).first()
        if row is None:
            raise WebhookNotFound()
        return Endpoint(**row._mapping)

    async def update(
        self, *, operator: Operator, endpoint_id: int, changes: dict[str, Any]
    ) -> Endpoint:
        values: dict[str, Any] = {}
        if "url" in changes:
            values["url"] = check_url(changes["url"])
        if "events" in changes:
            values["events"] = check_events(changes["events"])
        if "description" in changes:
            values["description"] = changes["description"]
        if "enabled" in changes:
            values["enabled"] = bool(changes["enabled"])
            if values["enabled"]:  # switched on again: its count starts over
                values.update(consecutive_failures=0, disabled_reason=None)
        what = ",".join(sorted(set(values) & set(changes))) or "nothing"
        return await self._change(operator, endpoint_id, values, f"webhook.updated:{what}")

    async def rotate_secret(self, *, operator: Operator, endpoint_id: int) -> Endpoint:
        values = {
            "previous_secret": _endpoints.c.secret,
            "previous_secret_until": clock.utcnow() + SECRET_OVERLAP,
            "secret": new_secret(),
        }
        return await self._change(operator, endpoint_id, values, "webhook.secret_rotated")

    async def delete(self, *, operator: Operator, endpoint_id: int) -> None:
        if not is_valid_id(endpoint_id):
            raise WebhookNotFound()
        async with database.transaction(), database.connection() as connection:
            # Its deliveries go with it (their jobs then find nothing to send).
            await execute(
                connection, sa.delete(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id)
            )
            deleted = (
                await execute(
                    connection, sa.delete(_endpoints).where(_endpoints.c.id == endpoint_id)
                )
            ).rowcount
            if not deleted:
                raise WebhookNotFound()
            forget(_ENABLED_ENDPOINTS)
            await self.operators.record(
                operator=operator, action="webhook.deleted", target=f"webhook:{endpoint_id}"
            )

    async def test(self, *, operator: Operator, endpoint_id: int) -> Delivery:
        """Queue a `ping` to this endpoint alone; the delivery it queued."""
        async with database.transaction():
            endpoint = await self.endpoint(endpoint_id)
            delivery_id = await self._queue(endpoint.id, "ping", {})
            await self.operators.record(
                operator=operator, action="webhook.tested", target=f"webhook:{endpoint_id}"
            )
            async with database.connection() as connection:
                row = (
                    await execute(
                        connection,
                        sa.select(*_DELIVERY_COLUMNS).where(_deliveries.c.id == delivery_id),
                    )
                ).one()
        return Delivery(**row._mapping)

    async def _change(
        self, operator: Operator, endpoint_id: int, values: dict[str, Any], action: str
    ) -> Endpoint:
        if not is_valid_id(endpoint_id):
            raise WebhookNotFound()
        async with database.transaction(), database.connection() as connection:
            forget(_ENABLED_ENDPOINTS)
            statement = sa.update(_endpoints).where(_endpoints.c.id == endpoint_id)
            if values:
                # In the order given: MySQL assigns left to right, each SET seeing the ones
                # before it (a rotation keeps the old secret before writing the new one).
                statement = statement.ordered_values(*values.items())
                row = (await execute(connection, statement.returning(*_ENDPOINT_COLUMNS))).first()
            else:
                row = (
                    await execute(
                        connection,
                        sa.select(*_ENDPOINT_COLUMNS).where(_endpoints.c.id == endpoint_id),
                    )
                ).first()
            if row is None:
                raise WebhookNotFound()
            name, _, detail = action.partition(":")
            target = f"webhook:{endpoint_id}" + (f" ({detail})" if detail else "")
            await self.operators.record(operator=operator, action=name, target=target)
        return Endpoint(**row._mapping)

    # -- events ---------------------------------------------------------------------------

    async def emit(self, event_type: str, data: EventData) -> None:
        """Queue the event to every enabled endpoint subscribed to it, in the caller's
        transaction (the endpoints are read once per transaction, however many events)."""
        connection = in_transaction()

        async def enabled() -> list[Any]:
            return list((await execute_built(connection, _ENABLED, {})).all())

        rows = await remembered(_ENABLED_ENDPOINTS, enabled)
        subscribed = [
            row.id for row in rows if "*" in (row.events or []) or event_type in (row.events or [])
        ]
        if not subscribed:
            return
        message_id = new_message_id()
        values = data if isinstance(data, dict) else asdict(data)
        for endpoint_id in subscribed:
            await self._queue(endpoint_id, event_type, values, message_id=message_id)

    async def _queue(
        self,
        endpoint_id: int,
        event_type: str,
        data: dict[str, Any],
        *,
        message_id: str | None = None,
    ) -> int:
        now = clock.utcnow()
        payload = {"type": event_type, "timestamp": json_ready(now), "data": json_ready(data)}
        async with database.connection() as connection:
            delivery_id = (
                await execute(
                    connection,
                    sa.insert(_deliveries)
                    .values(
                        endpoint_id=endpoint_id,
                        message_id=message_id or new_message_id(),
                        event_type=event_type,
                        payload=payload,
                        status=PENDING,
                        attempt=0,
                        created_at=now,
                        next_attempt_at=now,
                    )
                    .returning(_deliveries.c.id),
                )
            ).scalar_one()
        await self.jobs.enqueue(WEBHOOK_DELIVERY, {"delivery_id": delivery_id})
        return int(delivery_id)

    # -- deliveries -----------------------------------------------------------------------

    async def deliveries(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        endpoint_id: int | None = None,
        status: str | None = None,
    ) -> DeliveryPage:
        """Newest first; of one endpoint, or of all; of one status, or of any."""
        if endpoint_id is not None:
            await self.endpoint(endpoint_id)
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidInput(f"status is one of {', '.join(DELIVERY_STATUSES)}.", field="status")
        statement = sa.select(*_DELIVERY_COLUMNS)
        if endpoint_id is not None:
            statement = statement.where(_deliveries.c.endpoint_id == endpoint_id)
        if status is not None:
            statement = statement.where(_deliveries.c.status == status)
        rows, next_cursor = await newest_first(
            statement, _deliveries.c.id, limit=limit, cursor=cursor
        )
        return DeliveryPage([Delivery(**row._mapping) for row in rows], next_cursor)

    async def retry(self, *, operator: Operator, delivery_id: int) -> None:
        """Try a failed delivery again, from a fresh schedule, with the same webhook-id."""
        if not is_valid_id(delivery_id):
            raise DeliveryNotFound()
        now = clock.utcnow()
        async with database.transaction(), database.connection() as connection:
            status = (
                await execute(
                    connection,
                    sa.select(_deliveries.c.status).where(_deliveries.c.id == delivery_id),
                )
            ).scalar()
            if status is None:
                raise DeliveryNotFound()
            reopened = (
                await execute(
                    connection,
                    sa.update(_deliveries)
                    .where(_deliveries.c.id == delivery_id, _deliveries.c.status == FAILED)
                    .values(status=PENDING, next_attempt_at=now, finished_at=None),
                )
            ).rowcount
            if not reopened:
                raise DeliveryNotFailed()
            await self.jobs.enqueue(WEBHOOK_DELIVERY, {"delivery_id": delivery_id})
            await self.operators.record(
                operator=operator, action="delivery.retried", target=f"delivery:{delivery_id}"
            )

    async def retry_failed(self, *, operator: Operator, endpoint_id: int) -> int:
        """Try every failed delivery of one endpoint again (after it was fixed or switched on
        again), each with its own webhook-id; how many."""
        await self.endpoint(endpoint_id)
        now = clock.utcnow()
        async with database.transaction(), database.connection() as connection:
            reopened = (
                await execute(
                    connection,
                    sa.update(_deliveries)
                    .where(_deliveries.c.endpoint_id == endpoint_id, _deliveries.c.status == FAILED)
                    .values(status=PENDING, next_attempt_at=now, finished_at=None)
                    .returning(_deliveries.c.id),
                )
            ).scalars()
            ids = sorted(reopened)
            for delivery_id in ids:
                await self.jobs.enqueue(WEBHOOK_DELIVERY, {"delivery_id": delivery_id})
            await self.operators.record(
                operator=operator,
                action="deliveries.retried",
                target=f"webhook:{endpoint_id} ({len(ids)} failed)",
            )
        return len(ids)

    async def deliver(self, job: ClaimedJob) -> None:
        """The job handler: one attempt of one delivery, its outcome stored on the delivery."""
        delivery_id = job.payload.get("delivery_id")
        if not isinstance(delivery_id, int):
            raise GiveUp("no delivery id in the job")
        statement = (
            sa.select(
                _deliveries.c.endpoint_id,
                _deliveries.c.message_id,
                _deliveries.c.payload,
                _deliveries.c.status,
                _deliveries.c.attempt,
                _endpoints.c.url,
                _endpoints.c.enabled,
                _endpoints.c.secret,
                _endpoints.c.previous_secret,
                _endpoints.c.previous_secret_until,
            )
            .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
            .where(_deliveries.c.id == delivery_id)
        )
        async with database.connection() as connection:
            row = (await execute(connection, statement)).first()
        if row is None or row.status != PENDING:
            return  # its endpoint was deleted, or this attempt was recorded before a crash
        if not row.enabled:
            await self._record(delivery_id, status=FAILED, error="the endpoint is disabled")
            raise GiveUp("the endpoint is disabled")
        # Counted before the POST: a worker killed during it leaves the count true (the
        # receiver may have seen this attempt).
        async with database.transaction(), database.connection() as connection:
            started = (
                await execute(
                    connection,
                    sa.update(_deliveries)
                    .where(_deliveries.c.id == delivery_id, _deliveries.c.status == PENDING)
                    .values(attempt=_deliveries.c.attempt + 1)
                    .returning(_deliveries.c.attempt),
                )
            ).first()
        if started is None:
            return  # recorded by another worker meanwhile
        now = clock.utcnow()
        secrets = [row.secret]
        if row.previous_secret and row.previous_secret_until and row.previous_secret_until > now:
            secrets.append(row.previous_secret)
        body = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False)
        result = await self.sender.send(
            url=row.url, message_id=row.message_id, body=body, secrets=secrets
        )
        if result.ok:
            await self._record(
                delivery_id, status=SUCCEEDED, response_status=result.response_status
            )
            await self._endpoint_succeeded(row.endpoint_id)
            return
        retry_at = job.retry_at(clock.utcnow())
        recorded = await self._record(
            delivery_id,
            status=PENDING if retry_at else FAILED,
            response_status=result.response_status,
            error=result.error,
            next_attempt_at=retry_at,
        )
        if recorded and retry_at is None:
            await self._endpoint_failed(row.endpoint_id, row.url)
        raise RetryLater(result.error or "failed")

    def delivery_kind(self, schedule: RetrySchedule) -> JobKind:
        return JobKind(
            WEBHOOK_DELIVERY, schedule, self.deliver, on_final_failure=self.delivery_failed
        )

    async def delivery_failed(self, job: ClaimedJob, error: str) -> None:
        """The job of a delivery failed for good, whichever way (the final-failure hook): the
        delivery says so too, so it can be retried by hand. A delivery the handler already
        recorded is left as it is."""
        delivery_id = job.payload.get("delivery_id")
        if not isinstance(delivery_id, int) or not is_valid_id(delivery_id):
            return
        recorded = await self._record(delivery_id, status=FAILED, error=error)
        if recorded:
            async with database.connection() as connection:
                row = (
                    await execute(
                        connection,
                        sa.select(_endpoints.c.id, _endpoints.c.url)
                        .join(_deliveries, _deliveries.c.endpoint_id == _endpoints.c.id)
                        .where(_deliveries.c.id == delivery_id),
                    )
                ).first()
            if row is not None:
                await self._endpoint_failed(row.id, row.url)

    @staticmethod
    async def _endpoint_succeeded(endpoint_id: int) -> None:
        async with database.transaction(), database.connection() as connection:
            await execute(
                connection,
                sa.update(_endpoints)
                .where(_endpoints.c.id == endpoint_id, _endpoints.c.consecutive_failures != 0)
                .values(consecutive_failures=0),
            )

    async def _endpoint_failed(self, endpoint_id: int, url: str) -> None:
        """One more delivery failed for good: warn operators at half the limit, switch the
        endpoint off at the limit (re-enabling it resumes deliveries)."""
        limit = self.disable_after_failures
        async with database.transaction(), database.connection() as connection:
            failures = (
                await execute(
                    connection,
                    sa.update(_endpoints)
                    .where(_endpoints.c.id == endpoint_id)
                    .values(consecutive_failures=_endpoints.c.consecutive_failures + 1)
                    .returning(_endpoints.c.consecutive_failures),
                )
            ).scalar()
            if failures is None or limit == 0:
                return
            values = {"endpoint_id": endpoint_id, "url": url[:200], "failures": failures}
            if failures == max(1, (limit + 1) // 2) and failures < limit:
                await self.operators.record(
                    operator=_SERVICE,
                    action="webhook.failing",
                    target=f"webhook:{endpoint_id} ({failures} failed in a row)",
                )
                await self._tell_superusers(WEBHOOK_FAILING_MESSAGE, limit=limit, **values)
            if failures == limit:
                reason = f"switched off after {limit} failed deliveries in a row"
                forget(_ENABLED_ENDPOINTS)
                await execute(
                    connection,
                    sa.update(_endpoints)
                    .where(_endpoints.c.id == endpoint_id)
                    .values(enabled=False, disabled_reason=reason),
                )
                await self.operators.record(
                    operator=_SERVICE, action="webhook.disabled", target=f"webhook:{endpoint_id}"
                )
                await self._tell_superusers(WEBHOOK_DISABLED_MESSAGE, limit=limit, **values)

    async def _tell_superusers(self, message: str, **values: Any) -> None:
        """Queue a chat message to every superuser linked to Telegram (the caller's
        transaction)."""
        async with database.connection() as connection:
            recipients = (
                await execute(
                    connection,
                    sa.select(_users.c.id).where(
                        _users.c.is_superuser.is_(True),
                        _users.c.telegram_id.is_not(None),
                        _users.c.blocked_at.is_(None),
                        _users.c.erased_at.is_(None),
                    ),
                )
            ).scalars()
            for recipient_id in list(recipients):
                await TelegramService.notify(
                    jobs=self.jobs, recipient_id=recipient_id, message=message, **values
                )

    @staticmethod
    async def _record(delivery_id: int, *, status: str, **values: Any) -> bool:
        """Store an attempt's outcome on a delivery still pending; whether it was."""
        values.setdefault("error", None)
        values.setdefault("response_status", None)
        values.setdefault("next_attempt_at", None)
        if status != PENDING:
            values["finished_at"] = clock.utcnow()
        if values["error"]:
            values["error"] = values["error"][:500]
        statement = (
            sa.update(_deliveries)
            .where(_deliveries.c.id == delivery_id, _deliveries.c.status == PENDING)
            .values(status=status, **values)
        )
        async with database.transaction(), database.connection() as connection:
            return bool((await execute(connection, statement)).rowcount)

    async def purge(self, *, older_than: dt.timedelta, batch: int = 1000) -> int:
        """Remove finished deliveries past their retention; returns how many."""
        return await delete_finished(
            _deliveries, _deliveries.c.finished_at, cutoff=clock.utcnow() - older_than, batch=batch
        )
