"""Profile enrichment after sign-up, against a fake Clearbit speaking Clearbit's JSON."""

from __future__ import annotations

import datetime as dt
import time

from core.infra import cache, clock
from core.integrations.enrichment import ENRICHMENT
from core.jobs.models import Job
from core.referrals.views import code_key
from core.users.models import User
from tests.api.support import ahead
from tests.conftest import API, PASSWORD
from tests.fakes import clearbit as fake
from tests.fakes.clearbit import API_KEY
from tests.integrations.conftest import MAX_ATTEMPTS, eventually
from tests.jobs import jobs_of


async def _settled(email: str) -> User:
    async def check() -> User | None:
        user = await User.objects.get(email=email)
        return user if user.enrichment_status != "pending" else None

    return await eventually(check)


async def _finished(job_id: int) -> bool:
    return (await Job.objects.get(id=job_id)).status == "succeeded"


async def test_the_profile_is_enriched_in_the_background_and_shown_by_me(start_app, clearbit):
    app = await start_app(with_hunter=False)

    response = await app.register("ada@engines.example")

    assert response.status_code == 201, response.text
    assert response.json()["full_name"] is None
    user = await _settled("ada@engines.example")
    me = await app.me("ada@engines.example")
    assert me["full_name"] == fake.FULL_NAME
    assert me["company"] == fake.COMPANY
    assert me["job_title"] == fake.JOB_TITLE
    assert me["location"] == fake.LOCATION
    assert me["avatar_url"] == fake.AVATAR
    assert me["enrichment_status"] == "done"
    assert user.enrichment_attempts == 1
    assert user.enriched_at is not None
    [call] = clearbit.calls_for("ada@engines.example")
    assert call.headers["Authorization"] == f"Bearer {API_KEY}"
    (job,) = await jobs_of(ENRICHMENT)
    assert await eventually(lambda: _finished(job.id))


async def test_the_users_own_name_is_kept(start_app, clearbit):
    app = await start_app(with_hunter=False)

    await app.register("ada@engines.example", full_name="Countess of Lovelace")

    await _settled("ada@engines.example")
    me = await app.me("ada@engines.example")
    assert me["full_name"] == "Countess of Lovelace"
    assert me["company"] == fake.COMPANY


async def test_a_company_without_a_person_still_fills_the_company(start_app, clearbit):
    app = await start_app(with_hunter=False)
    clearbit.script("info@engines.example", "company-only")

    await app.register("info@engines.example")

    user = await _settled("info@engines.example")
    assert user.enrichment_status == "done"
    assert user.company == fake.COMPANY
    assert user.full_name is None
    assert user.job_title is None


async def test_unknown_people_are_not_found(start_app, clearbit):
    app = await start_app(with_hunter=False)
    clearbit.script("ghost@example.com", "404")
    clearbit.script("blank@example.com", "empty")

    await app.register("ghost@example.com", full_name="Ghost")
    await app.register("blank@example.com")

    for email in ("ghost@example.com", "blank@example.com"):
        user = await _settled(email)
        assert user.enrichment_status == "not_found"
        assert user.company is None
        assert user.enriched_at is not None
    assert (await app.me("ghost@example.com"))["full_name"] == "Ghost"


async def test_a_queued_lookup_is_asked_again_later(start_app, clearbit):
    app = await start_app(with_hunter=False)
    clearbit.script("ada@engines.example", "202", "202", "found")

    await app.register("ada@engines.example")

    user = await _settled("ada@engines.example")
    assert user.enrichment_status == "done"
    assert user.company == fake.COMPANY
    assert user.enrichment_attempts == 3
    assert len(clearbit.calls_for("ada@engines.example")) == 3
    (job,) = await jobs_of(ENRICHMENT)
    assert job.attempts == 3


async def test_server_errors_and_garbage_are_retried_then_succeed(start_app, clearbit):
    app = await start_app(with_hunter=False)
    # 500 twice is one lookup (the HTTP client retries once); garbage is the second.
    clearbit.script("ada@engines.example", "500", "500", "garbage", "found")

    await app.register("ada@engines.example")

    user = await _settled("ada@engines.example")
    assert user.enrichment_status == "done"
    assert user.enrichment_attempts == 3
    stats = app.core.integrations.enrichment.enricher.stats
    assert (stats.server_errors, stats.malformed, stats.found) == (1, 1, 1)


async def test_a_provider_that_never_answers_ends_failed_after_the_last_attempt(
    start_app, clearbit
):
    app = await start_app(with_hunter=False)
    clearbit.script("ada@engines.example", "500")

    response = await app.register("ada@engines.example", full_name="Ada")

    assert response.status_code == 201
    user = await _settled("ada@engines.example")
    assert user.enrichment_status == "failed"
    assert user.enrichment_attempts == MAX_ATTEMPTS
    assert user.company is None
    assert (await app.me("ada@engines.example"))["enrichment_status"] == "failed"


async def test_a_refused_lookup_fails_at_once(start_app, clearbit):
    app = await start_app(with_hunter=False)
    clearbit.script("ada@engines.example", "422")

    await app.register("ada@engines.example")

    user = await _settled("ada@engines.example")
    assert user.enrichment_status == "failed"
    assert user.enrichment_attempts == 1


async def test_registration_does_not_wait_for_a_slow_clearbit(start_app, clearbit):
    # A generous timeout: Clearbit holds the lookup until released, far longer than a sign-up.
    app = await start_app(with_hunter=False, timeout_seconds=10)
    clearbit.script("ada@engines.example", "hang")

    started = time.monotonic()
    response = await app.register("ada@engines.example")
    elapsed = time.monotonic() - started

    assert response.status_code == 201, response.text
    assert response.json()["enrichment_status"] == "pending"
    await eventually(lambda: clearbit.calls_for("ada@engines.example"))
    assert (await User.objects.get(email="ada@engines.example")).enrichment_status == "pending"
    assert elapsed < 2

    clearbit.release.set()
    user = await _settled("ada@engines.example")
    assert user.enrichment_status == "done"


async def test_a_lookup_cut_short_by_a_stop_is_made_by_the_next_process(start_app, clearbit):
    first = await start_app(with_hunter=False, timeout_seconds=10)
    clearbit.script("ada@engines.example", "hang")
    assert (await first.register("ada@engines.example")).status_code == 201
    await eventually(lambda: clearbit.calls_for("ada@engines.example"))

    await first.stop()  # mid-lookup: after its grace period the job goes back to the queue

    (job,) = await jobs_of(ENRICHMENT)
    assert job.status == "queued"
    assert job.attempts == 0  # the attempt cut short is not counted
    assert (await User.objects.get(email="ada@engines.example")).enrichment_status == "pending"
    clearbit.script("ada@engines.example", "found")

    await start_app(with_hunter=False)

    user = await _settled("ada@engines.example")
    assert user.enrichment_status == "done"
    assert user.full_name == fake.FULL_NAME
    assert user.enrichment_attempts == 1


async def test_a_restart_does_not_ask_before_the_retry_is_due(start_app, clearbit):
    first = await start_app(with_hunter=False, worker=False, enrichment_retry_seconds=60)
    clearbit.script("ada@engines.example", "202", "found")
    await first.register("ada@engines.example")
    assert await first.core.worker().run_due() == 1
    user = await User.objects.get(email="ada@engines.example")
    assert (user.enrichment_status, user.enrichment_attempts) == ("pending", 1)
    (job,) = await jobs_of(ENRICHMENT)
    assert 50 < (job.run_at - clock.utcnow()).total_seconds() <= 60
    await first.stop()

    second = await start_app(with_hunter=False, worker=False)
    assert await second.core.worker().run_due() == 0
    with clock.shift(dt.timedelta(seconds=30)):
        assert await second.core.worker().run_due() == 0
    assert len(clearbit.calls_for("ada@engines.example")) == 1

    with clock.shift(dt.timedelta(seconds=61)):
        assert await second.core.worker().run_due() == 1

    user = await User.objects.get(email="ada@engines.example")
    assert (user.enrichment_status, user.enrichment_attempts) == ("done", 2)
    assert len(clearbit.calls_for("ada@engines.example")) == 2


async def test_a_lookup_in_flight_is_left_to_its_process(start_app, clearbit):
    first = await start_app(with_hunter=False, timeout_seconds=10)
    clearbit.script("ada@engines.example", "hang")
    await first.register("ada@engines.example")
    await eventually(lambda: clearbit.calls_for("ada@engines.example"))

    # Another process looking for due jobs meanwhile leaves the leased one alone.
    second = await start_app(with_hunter=False, worker=False)
    assert await second.core.worker().run_due() == 0
    assert len(clearbit.calls_for("ada@engines.example")) == 1
    clearbit.release.set()

    user = await _settled("ada@engines.example")
    assert user.enrichment_status == "done"
    assert user.enrichment_attempts == 1


async def test_a_name_found_later_reaches_the_cached_public_view(start_app, clearbit, monkeypatch):
    # Creating the code leaves a tombstone that keeps the first lookup out of the cache.
    monkeypatch.setattr(cache, "TOMBSTONE_SECONDS", 0.05)
    app = await start_app(with_hunter=False, timeout_seconds=10)
    clearbit.script("ada@engines.example", "hang")
    await app.register("ada@engines.example")
    token = await app.client.post(
        f"{API}/auth/token", data={"username": "ada@engines.example", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    created = await app.client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7)}, headers=headers
    )
    assert created.status_code == 201, created.text
    code = created.json()["code"]

    async def view_cached() -> bool:
        """Once the creation's tombstone (0.05 s) is gone, a lookup fills the cache."""
        await app.client.get(f"{API}/referral-codes/{code}")
        return await app.core.cache.get(code_key(code)) is not None

    await eventually(view_cached)
    before = await app.client.get(f"{API}/referral-codes/{code}")
    assert before.json()["referrer"]["full_name"] is None
    assert await app.core.cache.get(code_key(code)) is not None  # the view is cached

    clearbit.release.set()
    await _settled("ada@engines.example")

    async def shown_name() -> str | None:
        response = await app.client.get(f"{API}/referral-codes/{code}")
        return response.json()["referrer"]["full_name"]

    assert await eventually(shown_name) == fake.FULL_NAME


async def test_without_a_key_nobody_is_enriched(start_app, clearbit):
    app = await start_app(with_hunter=False, with_clearbit=False)

    response = await app.register("ada@engines.example")

    assert response.status_code == 201
    assert response.json()["enrichment_status"] is None
    assert clearbit.calls == []


async def test_a_worker_dying_during_the_last_attempt_leaves_the_user_failed_not_pending(
    start_app, clearbit
):
    """The job fails for good without its handler; the kind's final-failure hook settles the
    user, who would otherwise stay `pending` for ever."""
    app = await start_app(with_hunter=False, worker=False, enrichment_max_attempts=1)
    await app.register("ada@engines.example")
    # A worker claims the only attempt, then dies before it records anything.
    (claimed,) = await app.core.jobs.claim(kinds=[ENRICHMENT], limit=1, lease_seconds=30)
    assert claimed.is_last_attempt
    with clock.shift(dt.timedelta(seconds=31)):  # its lease ends
        assert await app.core.worker().run_due() == 1

    (job,) = await jobs_of(ENRICHMENT)
    assert (job.status, job.last_error) == ("failed", "the worker stopped during the last attempt")
    user = await User.objects.get(email="ada@engines.example")
    assert user.enrichment_status == "failed"
    assert clearbit.calls_for("ada@engines.example") == []
