from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import ormar
import sqlalchemy as sa

from core.campaigns.tables import DEFAULT_ID
from core.infra import clock
from core.infra.db import UTCDateTime, base_config
from core.users.models import User


class ReferralCode(ormar.Model):
    """An invitation code. Rows are never deleted, so a value can never be issued twice."""

    ormar_config = base_config.copy(
        tablename="referral_codes",
        constraints=[
            # At most one live code per owner and campaign: the database refuses a second one.
            ormar.IndexColumns(
                "owner_id",
                "campaign_id",
                name="uq_referral_codes_owner_live",
                unique=True,
                postgresql_where=sa.text("closed_at IS NULL"),
                sqlite_where=sa.text("closed_at IS NULL"),
            ),
            ormar.CheckColumns("uses >= 0", name="uses_not_negative"),
            ormar.CheckColumns(
                "max_uses IS NULL OR (max_uses >= 1 AND uses <= max_uses)",
                name="uses_within_max",
            ),
        ],
    )

    id: int = ormar.Integer(primary_key=True)
    code: str = ormar.String(max_length=32, unique=True)
    owner: User = ormar.ForeignKey(
        User,
        name="owner_id",
        nullable=False,
        ondelete=ormar.ReferentialAction.CASCADE,
        related_name="codes",
    )
    # Its campaign (core.campaigns; 1 is the default campaign).
    campaign_id: int = ormar.Integer(
        default=DEFAULT_ID, server_default=sa.text("1"), nullable=False
    )
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    expires_at: dt.datetime = UTCDateTime(nullable=False)
    max_uses: int | None = ormar.Integer(nullable=True)
    uses: int = ormar.Integer(default=0, server_default=sa.text("0"), nullable=False)
    # Set when the code stops being its owner's live code: deleted by the owner, or retired
    # after it expired or ran out of uses.
    closed_at: dt.datetime | None = UTCDateTime(nullable=True)


# ormar relates models only; the campaign is a plain table (core.campaigns.tables).
ReferralCode.ormar_config.table.append_constraint(
    sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"])
)


def code_data(
    code: ReferralCode, *, campaign: str, deep_link: Callable[[str], str | None]
) -> dict[str, Any]:
    """`ReferralCode` plus `owner_id`: the `data` of `referral_code.*` events."""
    return {
        "campaign": campaign,
        "code": code.code,
        "created_at": code.created_at,
        "expires_at": code.expires_at,
        "max_uses": code.max_uses,
        "uses": code.uses,
        "telegram_link": deep_link(code.code),
        "owner_id": code.owner.id,
    }
