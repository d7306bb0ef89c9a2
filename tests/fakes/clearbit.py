"""Fake Clearbit combined enrichment API (`GET /v2/combined/find?email=…`, bearer key).

Behaviours per email (see `FakeService.script`):
  found            200 with a person and their company
  company-only     200 with `person: null` and a company
  empty            200 with both null
  404              unknown email
  202              lookup queued: ask again later
  hang             answers `found` only once released (or the client gives up)
  500 | 429       server error / rate limited
  422              invalid email
  garbage          an HTML page with status 200
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.server import Call, FakeService, garbage, json_response

API_KEY = "test-clearbit-key"

FULL_NAME = "Ada Lovelace"
COMPANY = "Analytical Engines"
JOB_TITLE = "Head of Mathematics"
LOCATION = "London, England, GB"
AVATAR = "https://d1ts43dypk8bqh.cloudfront.net/v1/avatars/ada.png"


def company_body() -> dict[str, Any]:
    return {
        "id": "3f5d6a4e-c284-4f78-bfdf-7669b45af907",
        "name": COMPANY,
        "legalName": "Analytical Engines Ltd",
        "domain": "engines.example",
        "domainAliases": [],
        "site": {"phoneNumbers": [], "emailAddresses": []},
        "category": {"sector": "Information Technology", "industry": "Software"},
        "tags": ["Technology"],
        "description": "Engines that compute.",
        "foundedYear": 1837,
        "location": "10 St James's Square, London, UK",
        "timeZone": "Europe/London",
        "utcOffset": 0,
        "geo": {"city": "London", "country": "United Kingdom", "countryCode": "GB"},
        "logo": "https://logo.clearbit.com/engines.example",
        "metrics": {"employees": 12},
        "indexedAt": "2026-11-02T10:00:00.000Z",
    }


def person_body(email_address: str) -> dict[str, Any]:
    return {
        "id": "d54c54ad-40be-4305-8a34-0ab44710b90d",
        "name": {"fullName": FULL_NAME, "givenName": "Ada", "familyName": "Lovelace"},
        "email": email_address,
        "location": LOCATION,
        "timeZone": "Europe/London",
        "utcOffset": 0,
        "geo": {
            "city": "London",
            "state": "England",
            "stateCode": "ENG",
            "country": "United Kingdom",
            "countryCode": "GB",
            "lat": 51.5,
            "lng": -0.12,
        },
        "bio": "Wrote the first program.",
        "site": None,
        "avatar": AVATAR,
        "employment": {
            "domain": "engines.example",
            "name": COMPANY,
            "title": JOB_TITLE,
            "role": "research",
            "subRole": None,
            "seniority": "executive",
        },
        "facebook": {"handle": None},
        "github": {"handle": None, "avatar": None, "followers": None, "following": None},
        "twitter": {"handle": None, "id": None, "followers": None, "following": None},
        "linkedin": {"handle": "in/ada"},
        "googleplus": {"handle": None},
        "gravatar": {"handle": None, "urls": [], "avatar": None, "avatars": []},
        "fuzzy": False,
        "emailProvider": False,
        "indexedAt": "2026-11-02T10:00:00.000Z",
    }


def _error(status: int, error_type: str, message: str) -> web.Response:
    return json_response({"error": {"type": error_type, "message": message}}, status)


class FakeClearbit(FakeService):
    def __init__(self) -> None:
        super().__init__(default="found")

    @property
    def behaviours(self) -> frozenset[str]:
        return frozenset(
            {"found", "company-only", "empty", "404", "202", "500", "429", "422", "garbage"}
        )

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2/combined/find", self.find)]

    async def find(self, request: web.Request) -> web.Response:
        address = request.query.get("email", "")
        self.calls.append(Call(address, dict(request.query), dict(request.headers)))
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "auth_required", "Invalid API key.")
        behaviour = self.next_behaviour(address)
        if behaviour == "hang":
            await self.hang()
            behaviour = "found"
        if behaviour == "found":
            return json_response({"person": person_body(address), "company": company_body()})
        if behaviour == "company-only":
            return json_response({"person": None, "company": company_body()})
        if behaviour == "empty":
            return json_response({"person": None, "company": None})
        if behaviour == "404":
            return _error(404, "unknown_record", "Unknown email address")
        if behaviour == "202":
            return json_response({}, 202)
        if behaviour in ("500", "429"):
            return _error(int(behaviour), "server_error", "Something went wrong")
        if behaviour == "422":
            return _error(422, "email_invalid", "Invalid email.")
        if behaviour == "garbage":
            return garbage()
        raise AssertionError(f"unknown Clearbit behaviour {behaviour!r}")
