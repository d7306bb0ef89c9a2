"""A fake Telegram Bot API server on 127.0.0.1: real JSON in and out, every call recorded."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 123456
BOT_USERNAME = "referral_test_bot"
TOKEN = f"{BOT_ID}:AAHfake-token-for-the-tests_0123456789"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Referrals", "username": BOT_USERNAME}
SENDING = {"sendMessage", "sendPhoto"}
BLOCKED = "Forbidden: bot was blocked by the user"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    result: Any = None

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def markup(self) -> dict[str, Any]:
        return self.params.get("reply_markup") or {}

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The inline buttons, row after row."""
        return [button for row in self.markup.get("inline_keyboard", []) for button in row]

    @property
    def keyboard(self) -> list[str]:
        """The reply-keyboard labels."""
        return [button["text"] for row in self.markup.get("keyboard", []) for button in row]

    def button(self, text: str) -> dict[str, Any]:
        for button in self.buttons:
            if button["text"] == text:
                return button
        raise AssertionError(f"no button {text!r} in {[b['text'] for b in self.buttons]}")


def _decode(value: str) -> Any:
    if value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeTelegram:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.reset()

    def reset(self) -> None:
        """Forget everything: each test starts with a fresh Telegram."""
        self.calls: list[Call] = []
        self.blocked: set[int] = set()  # chats answering 403
        self.broken: set[int] = set()  # chats answering 500
        self.broken_methods: set[str] = set()
        self.flood_waits: dict[str, int] = {}  # method -> how many 429 retry_after answers left
        self.garbled: set[int] = set()  # chats answered with an HTML page, as a bad proxy does
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.answered_callbacks: set[str] = set()
        self.updates: list[dict[str, Any]] = []
        # Chats the bot may be in: chat id -> {"title", "type", "bot": the bot's ChatMember}.
        self.chats: dict[int, dict[str, Any]] = {}
        self.members: dict[tuple[int, int], str] = {}  # (chat, user) -> status
        self.links: dict[str, dict[str, Any]] = {}  # invite link -> what it was made with
        self._link_ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_call = asyncio.Condition()
        self._queued = asyncio.Event()

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what the tests use -------------------------------------------------------------

    def queue_update(self, update: dict[str, Any]) -> None:
        update.setdefault("update_id", next(self._update_ids))
        self.updates.append(update)
        self._queued.set()

    def add_chat(
        self, chat_id: int, title: str, *, admin: bool = True, can_invite: bool = True
    ) -> None:
        """A channel the bot is in: an administrator who may invite users, or not."""
        if admin:
            bot = {
                "status": "administrator",
                "user": BOT_USER,
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": False,
                "can_restrict_members": True,
                "can_promote_members": False,
                "can_change_info": True,
                "can_invite_users": can_invite,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
                "can_send_welcome_messages": False,
            }
        else:
            bot = {"status": "member", "user": BOT_USER}
        self.chats[chat_id] = {"title": title, "type": "channel", "bot": bot}

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def sent_to(self, chat_id: int) -> list[Call]:
        return [c for c in self.calls if c.method in SENDING and c.chat_id == chat_id]

    async def wait_for(self, predicate: Callable[[Call], bool], within: float = 5.0) -> Call:
        async def found() -> Call:
            async with self._new_call:
                while True:
                    for call in self.calls:
                        if predicate(call):
                            return call
                    await self._new_call.wait()

        return await asyncio.wait_for(found(), within)

    # -- the API ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            params = await request.json()
        else:
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                else:
                    params[key] = _decode(str(value))
        for key, value in list(params.items()):  # "photo": "attach://<part>" names an upload
            if isinstance(value, str) and value.startswith("attach://"):
                files[key] = files.pop(value.removeprefix("attach://"), b"")
        call = Call(method, params, files)
        if call.chat_id is not None and call.chat_id in self.garbled:
            self.calls.append(call)
            return web.Response(status=200, text="<html>502 Bad Gateway</html>")
        status, body = await self._answer(call)
        call.result = body.get("result")
        if method != "getUpdates" or body.get("result"):
            async with self._new_call:
                self.calls.append(call)
                self._new_call.notify_all()
        return web.json_response(body, status=status)

    async def _answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        method, params = call.method, call.params
        chat_id = call.chat_id
        if chat_id is not None and chat_id in self.blocked:
            return 403, {"ok": False, "error_code": 403, "description": BLOCKED}
        if self.flood_waits.get(method, 0) > 0:
            self.flood_waits[method] -= 1
            return 429, {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            }
        if method in self.broken_methods or (chat_id is not None and chat_id in self.broken):
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return await handler(params, call.files)

    @staticmethod
    def _ok(result: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": result}

    @staticmethod
    def _bad(description: str) -> tuple[int, dict[str, Any]]:
        return 400, {"ok": False, "error_code": 400, "description": "Bad Request: " + description}

    async def _getMe(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._ok(BOT_USER)

    async def _getUpdates(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        offset = int(params.get("offset") or 0)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            self._queued.clear()
            with contextlib.suppress(TimeoutError):  # long polling, kept short for the tests
                await asyncio.wait_for(
                    self._queued.wait(), min(float(params.get("timeout") or 0), 1.0)
                )
        return self._ok(self.updates[:100])

    async def _true(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._ok(True)

    _setMyCommands = _deleteWebhook = _setWebhook = _deleteMessage = _true

    def _message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            **{key: value for key, value in content.items() if value is not None},
        }
        self.messages[(chat_id, message["message_id"])] = message
        return message

    @staticmethod
    def _inline_only(markup: Any) -> Any:
        # Telegram echoes inline keyboards only.
        return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None

    async def _sendMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        text = str(params.get("text") or "")
        if not text.strip():
            return self._bad("message text is empty")
        if len(text) > 4096:
            return self._bad("message is too long")
        markup = self._inline_only(params.get("reply_markup"))
        return self._ok(self._message(int(params["chat_id"]), text=text, reply_markup=markup))

    async def _sendPhoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        photo = files.get("photo")
        if not photo:
            return self._bad("there is no photo in the request")
        if len(str(params.get("caption") or "")) > 1024:
            return self._bad("message caption is too long")
        size = {"file_id": "photo-1", "file_unique_id": "u1", "width": 300, "height": 300}
        return self._ok(
            self._message(
                int(params["chat_id"]),
                photo=[{**size, "file_size": len(photo)}],
                caption=params.get("caption"),
                reply_markup=self._inline_only(params.get("reply_markup")),
            )
        )

    async def _edit(self, params: dict[str, Any], changes: dict[str, Any]) -> Any:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None:
            return self._bad("message to edit not found")
        new = {**message, **changes}
        new = {k: v for k, v in new.items() if v is not None}
        if new == message:
            return self._bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        self.messages[key] = new
        return self._ok(new)

    async def _editMessageText(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        message = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is not None and "text" not in message:
            return self._bad("there is no text in the message to edit")
        markup = self._inline_only(params.get("reply_markup"))
        return await self._edit(params, {"text": params.get("text"), "reply_markup": markup})

    async def _editMessageCaption(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        markup = self._inline_only(params.get("reply_markup"))
        return await self._edit(params, {"caption": params.get("caption"), "reply_markup": markup})

    async def _editMessageReplyMarkup(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return await self._edit(
            params, {"reply_markup": self._inline_only(params.get("reply_markup"))}
        )

    # -- chats, members, invite links ---------------------------------------------------------

    def _chat(self, params: dict[str, Any]) -> dict[str, Any] | None:
        return self.chats.get(int(params["chat_id"]))

    async def _getChat(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat = self._chat(params)
        if chat is None:
            return self._bad("chat not found")
        return self._ok(
            {
                "id": int(params["chat_id"]),
                "type": chat["type"],
                "title": chat["title"],
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )

    async def _getChatMember(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat = self._chat(params)
        if chat is None:
            return self._bad("chat not found")
        user_id = int(params["user_id"])
        if user_id == BOT_ID:
            return self._ok(chat["bot"])
        status = self.members.get((int(params["chat_id"]), user_id))
        if status is None:
            return self._bad("user not found")
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        if status == "kicked":
            return self._ok({"status": "kicked", "user": user, "until_date": 0})
        return self._ok({"status": status, "user": user})

    def _may_invite(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        chat = self._chat(params)
        if chat is None:
            return self._bad("chat not found")
        if not chat["bot"].get("can_invite_users"):
            return self._bad("not enough rights to manage chat invite links")
        return None

    def _link(self, chat_id: int, link: str) -> dict[str, Any]:
        made = self.links[link]
        return {
            "invite_link": link,
            "creator": BOT_USER,
            "creates_join_request": made["creates_join_request"],
            "is_primary": False,
            "is_revoked": made["revoked"],
            **({"name": made["name"]} if made.get("name") else {}),
            **({"expire_date": made["expire_date"]} if made.get("expire_date") else {}),
        }

    async def _createChatInviteLink(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        refused = self._may_invite(params)
        if refused is not None:
            return refused
        if len(str(params.get("name") or "")) > 32:
            return self._bad("invite link name is too long")
        link = f"https://t.me/+fake{next(self._link_ids):06d}"
        self.links[link] = {
            "chat_id": int(params["chat_id"]),
            "name": params.get("name"),
            "expire_date": params.get("expire_date"),
            "creates_join_request": str(params.get("creates_join_request")).lower() == "true",
            "revoked": False,
        }
        return self._ok(self._link(int(params["chat_id"]), link))

    async def _editChatInviteLink(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        refused = self._may_invite(params)
        if refused is not None:
            return refused
        link = str(params["invite_link"])
        made = self.links.get(link)
        if made is None or made["chat_id"] != int(params["chat_id"]) or made["revoked"]:
            return self._bad("INVITE_HASH_EXPIRED")
        if "name" in params:
            made["name"] = params["name"]
        return self._ok(self._link(made["chat_id"], link))

    async def _revokeChatInviteLink(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        refused = self._may_invite(params)
        if refused is not None:
            return refused
        made = self.links.get(str(params["invite_link"]))
        if made is None:
            return self._bad("INVITE_HASH_EXPIRED")
        made["revoked"] = True
        return self._ok(self._link(made["chat_id"], str(params["invite_link"])))

    async def _decide_request(self, params: dict[str, Any], status: str | None) -> Any:
        if self._chat(params) is None:
            return self._bad("chat not found")
        key = (int(params["chat_id"]), int(params["user_id"]))
        if self.members.get(key) == "requested":
            if status is None:
                del self.members[key]
            else:
                self.members[key] = status
            return self._ok(True)
        return self._bad("HIDE_REQUESTER_MISSING")

    async def _approveChatJoinRequest(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return await self._decide_request(params, "member")

    async def _declineChatJoinRequest(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return await self._decide_request(params, None)

    async def _answerInlineQuery(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        if len(params.get("results") or []) > 50:
            return self._bad("too many results")
        return self._ok(True)

    async def _answerCallbackQuery(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        query_id = str(params["callback_query_id"])
        if query_id in self.answered_callbacks:
            return self._bad("query is too old and response timeout expired or query ID is invalid")
        self.answered_callbacks.add(query_id)
        return self._ok(True)
