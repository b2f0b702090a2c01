"""A fake Telegram Bot API on 127.0.0.1, for end-to-end tests of the real python-telegram-bot.

It answers `POST /bot<TOKEN>/<method>` for the methods Hearth uses, records every
call, and rejects what Telegram rejects: texts over 4,096 UTF-16 code units, an
edit that changes nothing ("message is not modified"), an empty text, a message
or chat it never saw, a command name with anything but a-z, 0-9 and `_`. Such
rejections, and any unknown method, land in `errors`, which a test expects to stay
empty. Tests script failures (`fail`) such as a 429
with `retry_after`, or an outage (`outage`: every call answered 502 for a while),
play users (`user_says`, also posting as a channel or the group:
`sender_chat`, or a linked channel's automatic forward) and upgrade a group to a
supergroup (`migrate`): both service messages, and every later call on the old id
answered 400 with `migrate_to_chat_id`, as Telegram does.

PTB posts form-encoded bodies and JSON-encodes only non-string values, so only
known structured or numeric keys are decoded: the text "123" stays a string.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MAX_TEXT = 4096
MAX_POLL_S = 1.0
NUMBER_KEYS = frozenset({
    "chat_id", "message_id", "message_thread_id", "offset", "limit", "timeout", "user_id", "max_connections",
})
JSON_KEYS = frozenset({
    "allowed_updates", "commands", "scope", "reply_parameters", "entities", "link_preview_options",
    "reply_markup", "disable_notification", "protect_content", "drop_pending_updates",
    "allow_sending_without_reply", "allow_paid_broadcast",
})
COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
OUTAGE_DESCRIPTIONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_document"})
UPGRADED = "Bad Request: group chat was upgraded to a supergroup chat"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
ADMIN_RIGHTS = dict.fromkeys([
    "can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
    "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
    "can_post_stories", "can_edit_stories", "can_delete_stories",
], False)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class User:
    id: int
    first_name: str
    username: str | None = None
    is_bot: bool = False
    language_code: str | None = None  # the user's app language, as Telegram sends it ("zh-hans")

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


def _file(**extra: Any) -> dict[str, Any]:
    return {"file_id": "AgADfake", "file_unique_id": "fake-unique", **extra}


# The smallest valid object of each media field, as Telegram sends it.
MEDIA: dict[str, Any] = {
    "photo": [_file(width=90, height=60), _file(width=800, height=533)],
    "video": _file(width=640, height=360, duration=3),
    "voice": _file(duration=2),
    "document": _file(file_name="notes.pdf"),
    "sticker": _file(type="regular", width=512, height=512, is_animated=False, is_video=False),
}


@dataclass(frozen=True)
class Chat:
    id: int
    type: str  # private, group, supergroup
    title: str | None = None
    is_forum: bool = False

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title:
            data["title"] = self.title
        if self.is_forum:
            data["is_forum"] = True
        return data


BOT = User(4242, "Hearth", "HearthTestBot", is_bot=True)
ANONYMOUS_ADMIN = User(1087968824, "Group", "GroupAnonymousBot", is_bot=True)
CHANNEL_BOT = User(136817688, "Channel", "Channel_Bot", is_bot=True)  # `from` of a post as a channel
SERVICE = User(777000, "Telegram")  # `from` of a linked channel's automatic forward


@dataclass
class Call:
    """One request as the fake saw it, and how it answered."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    description: str = ""


@dataclass
class Posted:
    """A message in a chat, with every version of its text (edits append)."""

    chat_id: int
    message_id: int
    sender: User
    texts: list[str]
    thread: int | None = None
    reply_to: int | None = None
    json: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.texts[-1]


@dataclass(frozen=True)
class Failure:
    status: int
    description: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Outage:
    """Every call (or every call of `methods`) fails with `status` until `until` (monotonic)."""

    until: float
    status: int
    methods: frozenset[str] | None

    def covers(self, method: str) -> bool:
        return time.monotonic() < self.until and (self.methods is None or method in self.methods)


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: float | None = None,
                 migrate_to_chat_id: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description = status, description
        self.parameters: dict[str, Any] = {}
        if retry_after is not None:
            self.parameters["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            self.parameters["migrate_to_chat_id"] = migrate_to_chat_id


class FakeTelegram:
    """The Bot API methods Hearth calls; everything else fails loudly."""

    def __init__(self, token: str = "4242:TEST-token-abc", bot: User = BOT) -> None:
        self.token = token
        self.bot = bot
        self.calls: list[Call] = []
        self.errors: list[Call] = []
        self.commands: dict[str, list[dict[str, str]]] = {}  # setMyCommands, by language_code
        self.deleted: list[Posted] = []
        self.webhook: dict[str, Any] | None = None
        self._chats: dict[int, Chat] = {}
        self._messages: dict[tuple[int, int], Posted] = {}
        self._next_id: dict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._members: dict[tuple[int, int], str] = {}
        self._upgraded: dict[int, int] = {}  # a group's id → its supergroup's
        self._failures: dict[str, deque[Failure]] = defaultdict(deque)
        self._outage: Outage | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._changed = asyncio.Event()  # set and replaced after every call and update
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "getMe": self._get_me, "getUpdates": self._get_updates, "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook, "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text, "deleteMessage": self._delete_message,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands, "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
        }

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=MAX_POLL_S + 1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        self._closing = True  # ends pending long polls now, not at their timeout
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # --- scripting ---------------------------------------------------------

    def fail(self, method: str, status: int = 429, description: str = "", *,
             retry_after: float | None = None, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with an error instead."""
        if status == 429 and not description:
            description = f"Too Many Requests: retry after {retry_after}"
        for _ in range(times):
            self._failures[method].append(Failure(status, description or "Bad Request", retry_after))

    def outage(self, seconds: float, status: int = 502, methods: set[str] | None = None) -> None:
        """Telegram unreachable for `seconds` (`math.inf`: for good): every call, or every call
        of `methods`, answered `status` (502 Bad Gateway, as Telegram's front answers when the
        Bot API is down). A later call replaces the outage; `outage(0)` ends it."""
        until = time.monotonic() + seconds
        self._outage = Outage(until, status, frozenset(methods) if methods is not None else None)

    def set_member(self, chat: Chat, user: User, status: str) -> None:
        """`creator`, `administrator`, `member`, … (default `member`)."""
        self._members[(chat.id, user.id)] = status

    def open_topic(self, chat: Chat, by: User, name: str) -> int:
        """A forum topic; its id is that of its opening service message."""
        self._chats[chat.id] = chat
        topic = next(self._next_id[chat.id])
        extra = {"forum_topic_created": {"name": name, "icon_color": 7322096},
                 "message_thread_id": topic, "is_topic_message": True}
        self._store(chat, by, "", topic, None, None, extra)
        return topic

    def migrate(
        self, group: Chat, supergroup: Chat, by: User, *, announce: tuple[str, ...] = ("to", "from")
    ) -> None:
        """Upgrade `group` to `supergroup`, a new chat with its own message ids. `announce`:
        which service messages are delivered, in order ("to" in the group, "from" in the
        supergroup). From now on a call on the group's id fails with `migrate_to_chat_id`."""
        self._chats[supergroup.id] = supergroup
        self._upgraded[group.id] = supergroup.id
        services = {"to": (group, {"migrate_to_chat_id": supergroup.id}),
                    "from": (supergroup, {"migrate_from_chat_id": group.id})}
        for which in announce:
            chat, extra = services[which]
            posted = self._store(chat, by, "", next(self._next_id[chat.id]), None, None, extra)
            self._updates.append({"update_id": next(self._update_ids), "message": posted.json})
        self._notify()

    def make_update(self, chat: Chat, user: User, text: str, *, thread: int | None = None,
                    reply_to: int | None = None, sender_chat: Chat | None = None,
                    automatic_forward: bool = False, media: str | None = None,
                    quote: str | None = None) -> dict[str, Any]:
        """A user's message as an Update (not yet delivered), with Telegram's entities.

        `sender_chat`: posted as that chat (give `user` as its placeholder, e.g. CHANNEL_BOT);
        `automatic_forward`: the post of a linked channel (`sender_chat`) copied in by Telegram;
        `media`: a field of MEDIA ("photo"…), `text` then being its caption (maybe "");
        `quote`: the part of the `reply_to` message the user selected to quote."""
        self._chats[chat.id] = chat
        message_id = next(self._next_id[chat.id])
        found = entities(text)
        extra: dict[str, Any] = {}
        if found:
            extra["caption_entities" if media else "entities"] = found
        if media is not None:
            extra[media] = MEDIA[media]
        if quote is not None:
            extra["quote"] = {"text": quote, "position": 0}
        if sender_chat is not None:
            extra["sender_chat"] = sender_chat.json()
        if automatic_forward:
            assert sender_chat is not None, "an automatic forward comes from a channel"
            origin = {"type": "channel", "chat": sender_chat.json(), "message_id": message_id,
                      "date": int(time.time())}
            extra |= {"is_automatic_forward": True, "forward_origin": origin}
        if thread is not None:
            extra |= {"message_thread_id": thread, "is_topic_message": True}
        replied = reply_to if reply_to is not None else thread  # a topic message "replies" to its root
        posted = self._store(chat, user, text, message_id, thread, replied, extra, caption=media is not None)
        return {"update_id": next(self._update_ids), "message": posted.json}

    def user_says(self, chat: Chat, user: User, text: str, **options: Any) -> int:
        """Deliver a user's message through getUpdates; its message id."""
        update = self.make_update(chat, user, text, **options)
        self._updates.append(update)
        self._notify()
        return int(update["message"]["message_id"])

    def deliver_raw(self, update: dict[str, Any]) -> int:
        """Deliver `update` exactly as given, whatever its shape (what a newer Bot API, or a
        bug, might send); its update_id, assigned when it has none."""
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._notify()
        return int(update["update_id"])

    # --- inspection ----------------------------------------------------------

    def calls_to(self, method: str, chat: Chat | None = None) -> list[Call]:
        return [c for c in self.calls
                if c.method == method and (chat is None or c.params.get("chat_id") == chat.id)]

    def bot_messages(self, chat: Chat, thread: int | None = None) -> list[Posted]:
        return [m for (cid, _), m in sorted(self._messages.items())
                if cid == chat.id and m.sender == self.bot and "forum_topic_created" not in m.json
                and (thread is None or m.thread == thread)]

    def message(self, chat: Chat, message_id: int) -> Posted:
        return self._messages[(chat.id, message_id)]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Until `predicate()` holds after some call; TimeoutError after `within` seconds."""
        async def until() -> None:
            while not predicate():
                await self._changed.wait()
        await asyncio.wait_for(until(), within)

    async def wait_for_reply(self, chat: Chat, containing: str, within: float = 5.0) -> Posted:
        def found() -> bool:
            return any(containing in m.text for m in self.bot_messages(chat))
        await self.wait_for(found, within)
        return next(m for m in self.bot_messages(chat) if containing in m.text)

    # --- HTTP ----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _decode(request)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        self._notify()
        try:
            result = await self._answer(request.match_info["token"], method, params)
            body: dict[str, Any] = {"ok": True, "result": result}
        except ApiError as exc:
            call.status, call.description = exc.status, exc.description
            body = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
        self._notify()
        return web.json_response(body, status=call.status)

    async def _answer(self, token: str, method: str, params: dict[str, Any]) -> Any:
        if token != self.token:
            raise ApiError(401, "Unauthorized")
        if self._outage is not None and self._outage.covers(method):
            raise ApiError(self._outage.status, OUTAGE_DESCRIPTIONS.get(self._outage.status, "Bad Gateway"))
        if self._failures[method]:
            failure = self._failures[method].popleft()
            raise ApiError(failure.status, failure.description, failure.retry_after)
        handler = self._methods.get(method)
        if handler is None:
            self._reject(method, params, "unknown method")
            raise ApiError(404, "Not Found: method not found")
        return await handler(params)

    def _reject(self, method: str, params: dict[str, Any], description: str) -> None:
        """A call Telegram would refuse: recorded, so the test fails."""
        self.errors.append(Call(method, params, time.monotonic(), 400, description))

    def _bad(self, method: str, params: dict[str, Any], description: str) -> ApiError:
        self._reject(method, params, description)
        return ApiError(400, description)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- methods ---------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot.json() | {"can_join_groups": True, "can_read_all_group_messages": False,
                                  "supports_inline_queries": False}

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = min(float(params.get("timeout") or 0), MAX_POLL_S)
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await self.wait_for(lambda: bool(self._updates) or self._closing, timeout)
        limit = int(params.get("limit") or 100)
        return self._updates[:limit]

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        if not str(params.get("url", "")).startswith("https://"):
            raise self._bad("setWebhook", params, "Bad Request: bad webhook: An HTTPS URL must be provided")
        self.webhook = params
        return True

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat("sendMessage", params)
        text = self._checked_text("sendMessage", params)
        thread = params.get("message_thread_id")
        reply = (params.get("reply_parameters") or {}).get("message_id")
        if reply is not None and (chat.id, reply) not in self._messages:
            raise self._bad("sendMessage", params, "Bad Request: message to be replied not found")
        message_id = next(self._next_id[chat.id])
        extra = {"message_thread_id": thread, "is_topic_message": True} if thread else {}
        return self._store(chat, self.bot, text, message_id, thread, reply, extra).json

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat("editMessageText", params)
        text = self._checked_text("editMessageText", params)
        posted = self._messages.get((chat.id, params.get("message_id", -1)))
        if posted is None:
            raise self._bad("editMessageText", params, "Bad Request: message to edit not found")
        if posted.sender != self.bot:
            raise self._bad("editMessageText", params, "Bad Request: message can't be edited")
        if posted.text == text:
            raise self._bad("editMessageText", params, NOT_MODIFIED)
        posted.texts.append(text)
        posted.json = posted.json | {"text": text, "edit_date": int(time.time())}
        return posted.json

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        chat = self._chat("deleteMessage", params)
        posted = self._messages.get((chat.id, params.get("message_id", -1)))
        if posted is None:
            raise self._bad("deleteMessage", params, "Bad Request: message to delete not found")
        if posted.sender != self.bot and chat.type == "private":
            raise self._bad("deleteMessage", params, "Bad Request: message can't be deleted")
        self.deleted.append(self._messages.pop((chat.id, posted.message_id)))
        return True

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        self._chat("sendChatAction", params)
        if params.get("action") not in CHAT_ACTIONS:
            raise self._bad("sendChatAction", params, "Bad Request: wrong parameter action in request")
        return True

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        valid = isinstance(commands, list) and all(_valid_command(c) for c in commands)
        if not valid:
            raise self._bad("setMyCommands", params, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[params.get("language_code", "")] = commands  # type: ignore[assignment]
        return True

    async def _get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat("getChatMember", params)
        user_id = params.get("user_id")
        status = self._members.get((chat.id, user_id), "member")  # type: ignore[arg-type]
        return _member_json(User(int(user_id or 0), f"user{user_id}"), status)

    async def _get_chat_administrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        chat = self._chat("getChatAdministrators", params)
        return [_member_json(User(uid, f"user{uid}"), status)
                for (cid, uid), status in self._members.items()
                if cid == chat.id and status in ("creator", "administrator")]

    # --- state -------------------------------------------------------------------

    def _chat(self, method: str, params: dict[str, Any]) -> Chat:
        chat_id = params.get("chat_id")
        if chat_id in self._upgraded:  # what Telegram answers; the adapter must then follow
            raise ApiError(400, UPGRADED, migrate_to_chat_id=self._upgraded[chat_id])
        chat = self._chats.get(chat_id)  # type: ignore[arg-type]
        if chat is None:
            raise self._bad(method, params, "Bad Request: chat not found")
        return chat

    def _checked_text(self, method: str, params: dict[str, Any]) -> str:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise self._bad(method, params, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise self._bad(method, params, "Bad Request: message is too long")
        return text

    def _store(self, chat: Chat, sender: User, text: str, message_id: int, thread: int | None,
               reply_to: int | None, extra: dict[str, Any], *, caption: bool = False) -> Posted:
        data: dict[str, Any] = {"message_id": message_id, "date": int(time.time()), "chat": chat.json(),
                                "from": sender.json()}
        if text:
            data["caption" if caption else "text"] = text
        original = self._messages.get((chat.id, reply_to)) if reply_to is not None else None
        if original is not None:  # Telegram nests one level only
            data["reply_to_message"] = {k: v for k, v in original.json.items() if k != "reply_to_message"}
        posted = Posted(chat.id, message_id, sender, [text], thread, reply_to, data | extra)
        self._messages[(chat.id, message_id)] = posted
        return posted


def entities(text: str) -> list[dict[str, Any]]:
    """What Telegram marks: a leading /command and @mentions, offsets in UTF-16 units."""
    found: list[dict[str, Any]] = []
    if text.startswith("/"):
        found.append({"type": "bot_command", "offset": 0, "length": utf16_len(text.split()[0])})
    for start, char in enumerate(text):
        if char == "@" and (start == 0 or text[start - 1].isspace()):
            word = text[start:].split()[0].rstrip(",:.!?")
            if len(word) > 5:
                offset = utf16_len(text[:start])
                found.append({"type": "mention", "offset": offset, "length": utf16_len(word)})
    return found


def _valid_command(command: dict[str, str]) -> bool:
    name, description = command.get("command", ""), command.get("description", "")
    return bool(COMMAND_NAME.match(name)) and 1 <= len(description) <= 256


def _member_json(user: User, status: str) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status, "user": user.json()}
    if status == "administrator":
        data |= ADMIN_RIGHTS
    elif status == "creator":
        data["is_anonymous"] = False
    return data


async def _decode(request: web.Request) -> dict[str, Any]:
    """PTB's form body: decode only keys known to carry numbers or JSON."""
    if request.content_type == "application/json":
        return dict(await request.json())
    if request.content_type.startswith("multipart/"):
        raise AssertionError("the fake does not take file uploads")
    form = await request.post()
    return {key: _value(key, str(value)) for key, value in form.items()}


def _value(key: str, raw: str) -> Any:
    if key in NUMBER_KEYS:
        try:
            return int(raw)
        except ValueError:
            try:
                return float(raw)
            except ValueError:
                return raw  # "@channelname" as a chat_id
    if key in JSON_KEYS:
        return json.loads(raw)
    return raw


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[FakeTelegram]:
    """A started FakeTelegram, closed on the way out."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
