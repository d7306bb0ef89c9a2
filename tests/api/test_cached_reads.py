"""Cached public reads (`api.routing.cached_read`): a hit is answered before FastAPI solves a
dependency or the core runs SQL, for every route so marked; misses go through the route."""

from __future__ import annotations

import fastapi.routing
import httpx
import pytest

from tests.api.support import ahead, sql_statements
from tests.conftest import API


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of every request FastAPI solved dependencies for."""
    calls: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args, **kwargs):
        calls.append(kwargs["request"].url.path)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


async def test_hits_skip_dependencies_and_sql(client: httpx.AsyncClient, user, solved) -> None:
    _, headers = await user("ann@example.com", full_name="Ann")
    created = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7)}, headers=headers
    )
    code = created.json()["code"]
    reads = [
        (f"{API}/referral-codes", {"email": "ann@example.com"}),
        (f"{API}/referral-codes/{code}", {}),
    ]
    for path, params in reads:  # the misses fill the cache, through the route
        assert (await client.get(path, params=params)).status_code == 200
    solved.clear()

    with sql_statements() as statements:
        answers = [await client.get(path, params=params) for path, params in reads]

    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json()["code"] == code
    assert answers[1].json()["referrer"] == {
        "id": answers[1].json()["referrer"]["id"],
        "full_name": "Ann",
    }
    assert statements == []
    assert solved == []  # no dependency solving: the mechanism answered before the route


async def test_misses_and_uncacheable_requests_go_through_the_route(
    client: httpx.AsyncClient, solved
) -> None:
    assert (await client.get(f"{API}/referral-codes/NOPE1234")).status_code == 404
    assert (await client.get(f"{API}/referral-codes/x")).status_code == 404  # never cached
    assert (await client.get(f"{API}/referral-codes")).status_code == 422  # no email at all
    assert len(solved) == 3


async def test_a_failing_shortcut_leaves_the_answer_to_the_route(
    client: httpx.AsyncClient, user, core, monkeypatch: pytest.MonkeyPatch, caplog, solved
) -> None:
    """The shortcut runs outside FastAPI's error handling: what it did not expect must not
    become an error page, the route answers instead."""
    _, headers = await user("bo@example.com", full_name="Bo")
    created = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7)}, headers=headers
    )
    code = created.json()["code"]

    async def broken(*args, **kwargs):
        raise RuntimeError("an unexpected failure")

    monkeypatch.setattr(core.views, "cached", broken)
    solved.clear()
    answer = await client.get(f"{API}/referral-codes/{code}")
    assert answer.status_code == 200
    assert answer.json()["code"] == code
    assert solved == [f"{API}/referral-codes/{code}"]  # the route answered
    assert "cached read of /referral-codes/{code} failed" in caplog.text
