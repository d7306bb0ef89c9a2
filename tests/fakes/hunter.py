"""Fake Hunter email-verifier API (`GET /v2/email-verifier?email=…&api_key=…`).

Behaviours per email (see `FakeService.script`):
  deliverable | undeliverable | risky | unknown   200 with Hunter's verifier JSON
  status-only:<status>                            200 with `status` but no `result`
  slow                                            answers after `slow_seconds`
  pending                                         202 (verification still running)
  500 | 503                                       server error
  429 | 429:<Retry-After value>                   rate limited
  garbage | no-data                               unreadable 200 bodies
"""

from __future__ import annotations

import email.utils
from typing import Any

from aiohttp import web

from core.infra import clock
from tests.fakes.server import Call, FakeService, garbage, json_response

API_KEY = "test-hunter-key"

_STATUS = {
    "deliverable": "valid",
    "undeliverable": "invalid",
    "risky": "accept_all",
    "unknown": "unknown",
}
_SCORE = {"deliverable": 97, "undeliverable": 0, "risky": 68, "unknown": 30}


def verifier_body(email_address: str, result: str | None, status: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": status,
        "score": _SCORE.get(result or "", 50),
        "email": email_address,
        "regexp": True,
        "gibberish": False,
        "disposable": False,
        "webmail": False,
        "mx_records": status != "invalid",
        "smtp_server": status != "invalid",
        "smtp_check": status == "valid",
        "accept_all": status == "accept_all",
        "block": False,
        "sources": [],
    }
    if result is not None:
        data["result"] = result
        data["_deprecation_notice"] = "Using result is deprecated, use status instead"
    return {"data": data, "meta": {"params": {"email": email_address}}}


def _error(status: int, error_id: str, details: str, **headers: str) -> web.Response:
    body = {"errors": [{"id": error_id, "code": status, "details": details}]}
    return json_response(body, status, **headers)


class FakeHunter(FakeService):
    def __init__(self) -> None:
        super().__init__(default="deliverable")

    @property
    def behaviours(self) -> frozenset[str]:
        return frozenset({*_STATUS, "slow", "pending", "500", "503", "429", "garbage"})

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2/email-verifier", self.verify)]

    async def verify(self, request: web.Request) -> web.Response:
        address = request.query.get("email", "")
        self.calls.append(Call(address, dict(request.query), dict(request.headers)))
        if request.query.get("api_key") != API_KEY:
            return _error(401, "authentication_failed", "No user found for the API key supplied")
        behaviour = self.next_behaviour(address)
        if behaviour == "slow":
            await self.hang(self.slow_seconds)
            behaviour = "deliverable"
        if behaviour in _STATUS:
            return json_response(verifier_body(address, behaviour, _STATUS[behaviour]))
        if behaviour.startswith("status-only:"):
            return json_response(verifier_body(address, None, behaviour.partition(":")[2]))
        if behaviour == "pending":
            return json_response({"data": None, "meta": {"params": {"email": address}}}, 202)
        if behaviour in ("500", "503"):
            return _error(int(behaviour), "server_error", "Something went wrong on our side")
        if behaviour.startswith("429"):
            retry_after = behaviour.partition(":")[2]
            if retry_after.startswith("date+"):
                moment = clock.timestamp() + float(retry_after[5:])
                retry_after = email.utils.formatdate(moment, usegmt=True)
            headers = {"Retry-After": retry_after} if retry_after else {}
            return _error(429, "too_many_requests", "You have reached the rate limit", **headers)
        if behaviour == "garbage":
            return garbage()
        if behaviour == "no-data":
            return json_response({"meta": {"params": {"email": address}}})
        raise AssertionError(f"unknown Hunter behaviour {behaviour!r}")
