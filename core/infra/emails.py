from __future__ import annotations

import functools

from pydantic import EmailStr, TypeAdapter, ValidationError

from core.infra.errors import InvalidInput

MAX_EMAIL_LENGTH = 320
_email_adapter: TypeAdapter[str] = TypeAdapter(EmailStr)


def normalize_email(email: str) -> str:
    """Validated and lower-cased: the one spelling stored and looked up."""
    normalized = _normalized(email.strip())
    if normalized is None:
        raise InvalidInput("Not a valid email address.", field="email")
    return normalized


def stored_spelling(email: str | None) -> str | None:
    """The spelling sign-up stored for this address (an IDN domain decoded), to look an account
    up by; None for what is no email (a NUL, an absurd length PostgreSQL would refuse), which
    matches no one."""
    if not email or len(email) > MAX_EMAIL_LENGTH:
        return None
    return _normalized(email.strip())


def folded(email: str) -> str:
    """The spelling `normalize_email` gives a valid address, without validating it: for keys
    read on every request (a cache key, a rate-limit key), where validation costs too much."""
    return email.strip().lower()


@functools.lru_cache(maxsize=4096)
def _normalized(email: str) -> str | None:
    # Validation (IDNA, the syntax rules) costs more than the query an uncached lookup makes;
    # a bounded memo answers the addresses seen over and over at once.
    try:
        return folded(_email_adapter.validate_python(email))
    except ValidationError:
        return None
