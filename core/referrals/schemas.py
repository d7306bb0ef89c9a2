"""Public views of a code: what anyone may see, cached as rendered JSON."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Referrer(BaseModel):
    id: int = Field(examples=[1])
    full_name: str | None = Field(examples=["Ada Lovelace"])


class PublicCode(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "Xk3_9aQpL2mz",
                    "expires_at": "2026-12-31T23:59:59Z",
                    "campaign": "default",
                }
            ]
        }
    )

    code: str
    expires_at: dt.datetime
    campaign: str = Field(description="The key of the code's campaign.")


class PublicCodeWithReferrer(PublicCode):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "Xk3_9aQpL2mz",
                    "expires_at": "2026-12-31T23:59:59Z",
                    "campaign": "default",
                    "referrer": {"id": 1, "full_name": "Ada Lovelace"},
                }
            ]
        }
    )

    referrer: Referrer
