from __future__ import annotations

from pydantic import EmailStr, TypeAdapter, ValidationError

from core.errors import InvalidInput

MAX_EMAIL_LENGTH = 320
_email_adapter: TypeAdapter[str] = TypeAdapter(EmailStr)


def normalize_email(email: str) -> str:
    """Validated and lower-cased: the one spelling stored and looked up."""
    try:
        return _email_adapter.validate_python(email.strip()).lower()
    except ValidationError:
        raise InvalidInput("Not a valid email address.", field="email") from None
