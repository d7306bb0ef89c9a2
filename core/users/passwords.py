"""What a password must be, for every way an account gets one: the API's sign-up, a reset, a
change, and an operator made on the command line."""

from __future__ import annotations

from core.infra.errors import InvalidInput

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


def check_password(password: str, *, field: str = "password") -> str:
    """The password, or InvalidInput naming `field` when it breaks the rules."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"A password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            field=field,
        )
    return password
