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


@functools.lru_cache(maxsize=4096)
def _normalized(email: str) -> str | None:
    # Validation (IDNA, the syntax rules) costs more than the query an uncached lookup makes;
    # a bounded memo answers the addresses seen over and over at once.
    try:
        return _email_adapter.validate_python(email).lower()
    except ValidationError:
        return None
