"""One router per concern, in the order an update should meet them."""

from aiogram import Router

from bot.handlers import (
    chats,
    codes,
    errors,
    help,
    invites,
    linking,
    program,
    referrals,
    start,
)


def create_routers() -> list[Router]:
    # Groups first (accounts live in private chats; a chat's joins and inline queries are no
    # messages); invites and linking before start (all take /start); help last: it answers
    # whatever is left.
    return [
        chats.create_router(),
        invites.create_router(),
        linking.create_router(),
        start.create_router(),
        codes.create_router(),
        referrals.create_router(),
        program.create_router(),
        help.create_router(),
        errors.create_router(),
    ]
