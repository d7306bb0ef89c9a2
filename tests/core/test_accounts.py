"""The use cases that span domains (core/accounts): each domain's part refuses to run alone."""

from __future__ import annotations

import pytest

from core.auth.errors import InvalidRefreshToken
from core.auth.service import AuthService
from core.container import Core
from core.referrals.service import ReferralService
from core.users import tokens as one_time_tokens
from core.users.models import User
from core.users.service import UserService
from tests.conftest import PASSWORD

OUTSIDE = "must run inside the caller's transaction"


async def test_the_parts_of_a_sign_up_and_an_erasure_refuse_to_commit_alone(core: Core) -> None:
    user = await core.accounts.sign_up(email="ann@example.com", password=PASSWORD)
    with pytest.raises(RuntimeError, match=OUTSIDE):
        await UserService.create(email="bob@example.com", password_hash="x")
    for part in (
        UserService.anonymise,
        AuthService.forget_tokens,
        one_time_tokens.forget,
        ReferralService.close_codes_of,
    ):
        with pytest.raises(RuntimeError, match=OUTSIDE):
            await part(user.id)
    assert await User.objects.filter(email="bob@example.com").count() == 0
    assert (await core.users.get(user.id)).erased_at is None  # nothing above committed


async def test_an_erasure_leaves_an_anonymous_row_and_no_token(core: Core) -> None:
    user = await core.accounts.sign_up(email="ann@example.com", password=PASSWORD)
    tokens = await core.auth.issue_tokens(user_id=user.id)

    await core.accounts.erase(user=user)

    erased = await core.users.get(user.id)
    assert erased.erased_at is not None
    assert (erased.email, erased.password_hash, erased.full_name) == (None, None, None)
    with pytest.raises(InvalidRefreshToken):
        await core.auth.refresh(refresh_token=tokens.refresh_token)
