"""Operator commands: `python -m core.cli superuser EMAIL` (make superuser EMAIL=…).

Superuser rights are granted here, on the server, never through an HTTP request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from core.container import build_core
from core.infra.emails import normalize_email
from core.infra.errors import DomainError
from core.infra.settings import get_settings
from core.users.models import User


async def make_superuser(email: str, password: str | None) -> str:
    """Grant an existing account superuser rights, or make one with `password`: through the
    same sign-up as the API (its password rules, counters and events)."""
    email = normalize_email(email)
    core = build_core(get_settings())
    await core.start()
    try:
        user = await User.objects.get_or_none(email=email)
        if user is None:
            if not password:
                raise DomainError(f"no user {email}; set PASSWORD=… to create one")
            user = await core.accounts.sign_up(email=email, password=password)
            await user.update(is_superuser=True)
            return f"created superuser {email}"
        await user.update(is_superuser=True)
        return f"{email} is now a superuser"
    finally:
        await core.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    superuser = commands.add_parser("superuser", help="grant superuser rights to an account")
    superuser.add_argument("email")
    args = parser.parse_args(argv)
    try:
        print(asyncio.run(make_superuser(args.email, os.environ.get("PASSWORD"))))
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
