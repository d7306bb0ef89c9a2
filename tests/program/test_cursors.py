"""Every list that takes a cursor refuses one it never gave out with a 422, whatever the
cursor decodes to: extreme dates, ids out of range, bytes that are not text."""

from __future__ import annotations

import base64
import re

import httpx

from api.main import API_PREFIX, V1_ROUTERS
from tests.api.support import assert_validation_error
from tests.conftest import API


def _opaque(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    _opaque(b"0001-01-01T00:00:00+14:00|1"),
    _opaque(b"9999-12-31T23:59:59-14:00|1"),
    _opaque(b"0001-01-01T00:00:00+00:00|1"),  # in range: a valid date, but checked below
    _opaque(b"2026-12-01T00:00:00|1"),  # no offset
    _opaque(b"2026-12-01T00:00:00+00:00|99999999999"),
    _opaque(b"2026-12-01T00:00:00+00:00|-1"),
    _opaque(b"2026-12-01T00:00:00+00:00|\xd9\xa3"),  # an Arabic-Indic digit
    _opaque(b"id:0"),
    _opaque(b"id:99999999999999999999"),
    _opaque(b"id:-5"),
    _opaque(b"id:\xd9\xa3"),
    _opaque(b"\xff\xfe"),
    "not base64 at all!",
    "=",
    "x" * 100,
]


def _cursor_lists() -> list[str]:
    """Every GET route of the API whose query takes `cursor`."""
    paths = []
    for router in V1_ROUTERS:
        for route in router.routes:
            dependant = getattr(route, "dependant", None)
            if dependant is None or "GET" not in getattr(route, "methods", ()):
                continue
            deps = [dependant, *_flat(dependant)]
            if any(param.name == "cursor" for dep in deps for param in dep.query_params):
                paths.append(API_PREFIX + route.path)  # type: ignore[attr-defined]
    return paths


def _flat(dependant):
    for sub in dependant.dependencies:
        yield sub
        yield from _flat(sub)


async def test_every_cursor_list_refuses_cursors_it_never_gave_out(
    client: httpx.AsyncClient,
    operator,
    user,
) -> None:
    me, _ = await user("ann@example.com")
    hook = await client.post(
        f"{API}/webhooks", json={"url": "https://example.com/h", "events": ["*"]}, headers=operator
    )
    ids = {"user_id": me["id"], "webhook_id": hook.json()["id"]}
    lists = _cursor_lists()
    assert {f"{API}/users/{{user_id}}/referrals", f"{API}/admin/audit"} <= set(lists)
    assert len(lists) >= 6, lists

    for path in lists:
        url = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)
        first = await client.get(url, headers=operator)
        assert first.status_code == 200, (url, first.text)
        for cursor in BAD_CURSORS:
            response = await client.get(url, params={"cursor": cursor}, headers=operator)
            if cursor == BAD_CURSORS[2] and path.endswith("{user_id}/referrals"):
                # The first moment of the calendar is a position like any other.
                assert response.status_code == 200, (url, response.text)
                continue
            assert_validation_error(response, "cursor")
