"""Interactive docs served offline, the OpenAPI schema, and problem bodies for bad routes."""

from __future__ import annotations

import re

import pytest

from tests.api.support import assert_problem
from tests.conftest import API, PASSWORD

_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_their_assets_from_the_service(client, page):
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # No CDN anywhere in the page: it must work offline and under a strict CSP.
    assert "cdn." not in html
    assert "unpkg" not in html
    assert "fonts.googleapis" not in html
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assets = _ASSET.findall(html)
    scripts = [asset for asset in assets if asset.endswith(".js")]
    assert scripts, html
    own = [(await client.get(s)).text for s in scripts if not s.startswith("/static")]
    assert "/openapi.json" in html + "".join(own)
    for asset in assets:
        assert asset.startswith("/"), asset
        assert not asset.startswith("//"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.content
    if page == "/docs":
        assert any(asset.endswith(".css") for asset in assets)


async def test_swagger_oauth2_redirect_page(client):
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_openapi_declares_the_password_flow(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    schemes = schema["components"]["securitySchemes"]
    flows = [s["flows"]["password"] for s in schemes.values() if s["type"] == "oauth2"]
    assert flows == [{"scopes": {}, "tokenUrl": "/api/v1/auth/token"}]
    (scheme_name,) = [name for name, s in schemes.items() if s["type"] == "oauth2"]
    me = schema["paths"]["/api/v1/users/me"]["get"]
    assert me["security"] == [{scheme_name: []}]
    # Operator endpoints take either scheme: Swagger's Authorize offers both.
    assert schemes["APIKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["APIKey"]["description"],
    }
    hooks = schema["paths"]["/api/v1/webhooks"]["post"]
    assert {name for entry in hooks["security"] for name in entry} == {scheme_name, "APIKey"}
    assert "Problem" in schema["components"]["schemas"]
    for path in (
        "/health/live",
        "/health/ready",
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/users/me",
        "/api/v1/users/{user_id}/referrals",
        "/api/v1/users/me/telegram-link",
        "/api/v1/referral-codes",
        "/api/v1/referral-codes/me",
        "/api/v1/referral-codes/{code}",
    ):
        assert path in schema["paths"], path


async def test_swagger_authorize_then_try_it_out(client, register):
    """What Swagger UI does: post the form to the schema's tokenUrl, then send the bearer."""
    await register("ann@example.com", full_name="Ann")
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    token_url = scheme["flows"]["password"]["tokenUrl"]
    token = await client.post(
        token_url,
        data={
            "grant_type": "password",
            "username": "ann@example.com",
            "password": PASSWORD,
            "scope": "",
        },
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "bearer"
    me = await client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"


async def test_unknown_route_is_a_problem(client):
    assert_problem(await client.get(f"{API}/nothing-here"), 404, "not_found")
    assert_problem(await client.get("/static-offline-docs/missing.js"), 404, "not_found")


async def test_wrong_method_is_a_problem(client):
    response = await client.put(f"{API}/auth/register", json={})
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
    assert_problem(await client.delete("/health/live"), 405, "method_not_allowed")
