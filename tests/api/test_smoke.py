from tests.conftest import API


async def test_register_login_and_code(client, user):
    me, headers = await user("ann@example.com", full_name="Ann")
    response = await client.post(
        f"{API}/referral-codes", json={"expires_at": "2099-01-01T00:00:00Z"}, headers=headers
    )
    assert response.status_code in (201, 422)
