"""Bot test set-up: a fake Bot API on 127.0.0.1, the real aiogram Bot pointed at it, and
people who send messages and press buttons."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher

from bot.app import create_bot, create_dispatcher
from bot.i18n import get_i18n
from bot.i18n_compile import compile_catalogues
from bot.notifier import Notifier
from core.container import Core
from core.infra.ratelimit import Rate
from core.infra.settings import Settings
from core.jobs.worker import Worker
from core.telegram.service import TELEGRAM_MESSAGE
from core.users.models import User
from tests.bot.fake_telegram import TOKEN, Call, FakeTelegram

compile_catalogues()  # the .mo files are build output: make sure this run has them

LAX = Rate(count=1000, seconds=1)


def t(message: str, lang: str, **values: Any) -> str:
    """A text as the bot says it in `lang` (the catalogues are the source of truth)."""
    text = get_i18n().gettext(message, locale=lang)
    return text.format(**values) if values else text


def tn(singular: str, plural: str, n: int, lang: str, **values: Any) -> str:
    return get_i18n().gettext(singular, plural, n, locale=lang).format(**values)


class Harness:
    """Feeds updates to the dispatcher the way Telegram would and shows what the bot sent."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, fake: FakeTelegram) -> None:
        self.dp = dispatcher
        self.bot = bot
        self.fake = fake
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)

    async def feed(self, update: dict[str, Any]) -> list[Call]:
        before = len(self.fake.calls)
        update = {"update_id": next(self._update_ids), **update}
        await self.dp.feed_raw_update(self.bot, update)
        return self.fake.calls[before:]

    def person(self, user_id: int, first_name: str, *, lang: str = "en", **extra: Any) -> Person:
        return Person(self, user_id, first_name, lang, extra)


class Person:
    def __init__(
        self, harness: Harness, user_id: int, first_name: str, lang: str, extra: dict[str, Any]
    ) -> None:
        self.h = harness
        self.id = user_id
        self.first_name = first_name
        self.lang = lang
        self.user = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": lang,
            **extra,
        }

    async def send(self, text: str | None = None, **content: Any) -> Replies:
        message: dict[str, Any] = {
            "message_id": next(self.h._message_ids),
            "date": int(time.time()),
            "chat": {"id": self.id, "type": "private", "first_name": self.first_name},
            "from": self.user,
            **content,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return Replies(await self.h.feed({"message": message}))

    async def press(
        self, on: Call | dict[str, Any], text: str | None = None, *, data: str | None = None
    ) -> Replies:
        """Press an inline button of a bot message (by its label), or send raw callback data."""
        message = on.result if isinstance(on, Call) else on
        if data is None:
            assert text is not None
            data = Call("", {"reply_markup": message.get("reply_markup")}).button(text)[
                "callback_data"
            ]
        current = self.h.fake.messages.get((self.id, message["message_id"]), message)
        callback = {
            "id": f"cb{next(self.h._callback_ids)}",
            "from": self.user,
            "chat_instance": f"ci{self.id}",
            "message": current,
            "data": data,
        }
        return Replies(await self.h.feed({"callback_query": callback}))

    async def account(self) -> User | None:
        return await User.objects.get_or_none(telegram_id=self.id)


class Replies(list[Call]):
    """The calls the bot made while handling one update."""

    @property
    def sent(self) -> list[Call]:
        return [c for c in self if c.method in ("sendMessage", "sendPhoto")]

    @property
    def last(self) -> Call:
        assert self.sent, f"the bot sent nothing; calls: {[c.method for c in self]}"
        return self.sent[-1]

    @property
    def text(self) -> str:
        """Everything the bot said, edits and callback answers included."""
        return "\n".join(c.text for c in self if c.text)

    @property
    def answers(self) -> list[Call]:
        return [c for c in self if c.method == "answerCallbackQuery"]

    def methods(self) -> list[str]:
        return [c.method for c in self]


@pytest.fixture(scope="session")
async def fake_server() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def fake(fake_server: FakeTelegram) -> FakeTelegram:
    fake_server.reset()
    return fake_server


@pytest.fixture(scope="session")
async def bot(fake_server: FakeTelegram) -> AsyncIterator[Bot]:
    """One client for the run (closing an aiogram session costs a quarter second)."""
    instance = create_bot(TOKEN, api_url=fake_server.url)
    yield instance
    await instance.session.close()


@pytest.fixture
def notifier(bot: Bot, core: Core) -> Worker:
    """The bot process's worker of chat messages; tests run it with `run_due()`."""
    return core.worker({TELEGRAM_MESSAGE: Notifier(bot=bot, core=core).send})


@pytest.fixture
async def harness(
    core: Core, settings: Settings, bot: Bot, fake: FakeTelegram
) -> AsyncIterator[Harness]:
    dispatcher = create_dispatcher(core, rate=LAX, redis_url=settings.redis_url)
    yield Harness(dispatcher, bot, fake)
    await dispatcher.emit_shutdown()


@pytest.fixture
async def strict_harness(
    core: Core, settings: Settings, bot: Bot, fake: FakeTelegram
) -> AsyncIterator[Harness]:
    """The production throttling rate."""
    dispatcher = create_dispatcher(core, redis_url=settings.redis_url)
    yield Harness(dispatcher, bot, fake)
    await dispatcher.emit_shutdown()


@pytest.fixture(params=["en", "ru"])
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)
