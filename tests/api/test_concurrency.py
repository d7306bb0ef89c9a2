"""Invariants under simultaneous requests: the database decides, no request gets a 5xx."""

from __future__ import annotations

import asyncio
from collections import Counter

from core.referrals.models import ReferralCode
from core.users.models import User
from tests.api.support import ahead, assert_problem
from tests.conftest import API, PASSWORD


def _statuses(responses) -> Counter:
    statuses = Counter(response.status_code for response in responses)
    assert all(status < 500 for status in statuses), statuses
    return statuses


async def test_simultaneous_code_creation_gives_one_code(client, user):
    ann, headers = await user("ann@example.com")
    body = {"expires_at": ahead(days=7)}
    responses = await asyncio.gather(
        *(client.post(f"{API}/referral-codes", json=body, headers=headers) for _ in range(30))
    )
    assert _statuses(responses) == {201: 1, 409: 29}
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "active_code_exists")
    (created,) = [r.json()["code"] for r in responses if r.status_code == 201]

    live = await ReferralCode.objects.filter(owner=ann["id"], closed_at=None).all()
    assert [row.code for row in live] == [created]
    mine = await client.get(f"{API}/referral-codes/me", headers=headers)
    assert mine.json()["code"] == created


async def test_simultaneous_custom_codes_give_one_code(client, user):
    ann, headers = await user("ann@example.com")
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/referral-codes",
                json={"expires_at": ahead(days=7), "code": f"Custom{index:02d}"},
                headers=headers,
            )
            for index in range(30)
        )
    )
    assert _statuses(responses) == {201: 1, 409: 29}
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "active_code_exists")
    assert await ReferralCode.objects.filter(owner=ann["id"], closed_at=None).count() == 1


async def test_simultaneous_sign_ups_with_one_email(client):
    spellings = ["dup@example.com", "DUP@example.com", "Dup@Example.com", "dup@EXAMPLE.COM"]
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/auth/register",
                json={"email": spellings[index % len(spellings)], "password": PASSWORD},
            )
            for index in range(20)
        )
    )
    assert _statuses(responses) == {201: 1, 409: 19}
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "email_taken")
    (created,) = [r.json() for r in responses if r.status_code == 201]
    assert created["email"] == "dup@example.com"
    rows = await User.objects.all()
    assert [row.email for row in rows] == ["dup@example.com"]


async def test_simultaneous_sign_ups_with_a_limited_code(client, user):
    owner, headers = await user("owner@example.com")
    response = await client.post(
        f"{API}/referral-codes",
        json={"expires_at": ahead(days=7), "code": "ThreeSeats", "max_uses": 3},
        headers=headers,
    )
    assert response.status_code == 201
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/auth/register",
                json={
                    "email": f"friend{index}@example.com",
                    "password": PASSWORD,
                    "referral_code": "ThreeSeats",
                },
            )
            for index in range(20)
        )
    )
    assert _statuses(responses) == {201: 3, 400: 17}
    for response in responses:
        if response.status_code == 400:
            assert_problem(response, 400, "referral_code_exhausted")
        else:
            assert response.json()["referrer_id"] == owner["id"]

    code = await ReferralCode.objects.get(code="ThreeSeats")
    assert code.uses == 3
    referrals = await User.objects.filter(referrer__id=owner["id"]).all()
    assert len(referrals) == 3
    assert {row.referral_code for row in referrals} == {"ThreeSeats"}
    assert await User.objects.count() == 4  # the owner and three referrals: no one else

    listing = await client.get(f"{API}/users/{owner['id']}/referrals", headers=headers)
    assert listing.json()["total"] == 3


async def test_a_refresh_token_sent_twice_at_once_leaves_no_live_successor(
    client, core, register, monkeypatch
):
    """One of concurrent uses wins, and the reuse that the others are revokes the family, the
    winner's new token included: rotation and reuse detection are one decision.

    Issuing tokens is made slow, so a rotation that spends the old token and stores its
    successor in two steps shows its window on every trial."""
    user = await register("ann@example.com")
    issue = core.auth.issue_tokens

    async def slow_issue(**kwargs):
        await asyncio.sleep(0.02)
        return await issue(**kwargs)

    monkeypatch.setattr(core.auth, "issue_tokens", slow_issue)
    for _ in range(20):
        pair = await issue(user_id=user["id"])
        body = {"refresh_token": pair.refresh_token}
        answers = await asyncio.gather(
            *(client.post(f"{API}/auth/refresh", json=body) for _ in range(4))
        )
        assert _statuses(answers) == {200: 1, 401: 3}
        (winner,) = [answer for answer in answers if answer.status_code == 200]
        successor = {"refresh_token": winner.json()["refresh_token"]}
        again = await client.post(f"{API}/auth/refresh", json=successor)
        assert again.status_code == 401, "the successor survived the reuse"
