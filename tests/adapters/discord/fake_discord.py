"""A wire-level fake Discord on 127.0.0.1: the REST API (aiohttp) and the gateway websocket.

The real discord.py client talks to it through `Route.BASE` and
`DiscordWebSocket.DEFAULT_GATEWAY`; what it holds (two servers, a DM channel, a few
users) is in `payloads`. The gateway takes one websocket per shard: each IDENTIFY
names its `[shard_id, count]`, each shard gets its own READY with its own guilds,
and events are routed as Discord routes them (a guild's to shard
`(guild_id >> 22) % count`, DMs to shard 0); an event for a shard nobody runs is
dropped and listed in `undelivered`. Like Discord, it delivers an event only to a
live session: one sent while a shard's connection is down waits for that session's
RESUME (and is replayed), and is lost when the shard starts a new session instead
(after `invalidate_session`, or when reconnecting was refused: `refuse_gateway`). A
person's message is kept in its channel's history whatever happens to it, and
`GET /channels/{id}/messages` pages through it; `missed` lists the ones sent while no
session was live. `send_garbage` makes discord.py's client fail (a frame that is not
JSON). Ids are real snowflakes: the time is in their top bits. It records every request, answers like
Discord does (JSON with Content-Type exactly `application/json`, text gateway
frames, 429 with `Via` and `retry_after`, 400/50035 for content over 2,000
characters), and fails loudly: an unexpected route or gateway opcode is answered
404 and listed in `unexpected`, which the tests require to be empty.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from tests.adapters.discord.history import ChannelHistory
from tests.adapters.discord.payloads import (
    BOT_ID,
    BOT_ROLE_ID,
    CHANNEL_ID,
    DM_ID,
    EPHEMERAL,
    EVERYONE_PERMISSIONS,
    GUILD_OF,
    GUILDS,
    MAX_CONTENT,
    MEMBER_ID,
    MESSAGE_CONTENT_INTENT,
    NAMES,
    OWNER_ID,
    TOKEN,
    Json,
    channel_payload,
    guild,
    member,
    message,
    permissions,
    shard_of,
    snowflake_at,
    snowflakes,
    user,
)

T = TypeVar("T")
Handler = Callable[[web.Request, Any], Awaitable[tuple[int, Any]]]

API_PREFIX = "/api/v10"
HEARTBEAT_MS = 41250
WAIT_S = 5.0
SESSION_PREFIX = "fake-session-"  # + the shard id: a RESUME names its shard by its session


@dataclass(frozen=True)
class Request:
    """One REST call as the fake saw it, with the status it answered."""

    route: str
    method: str
    path: str
    body: Any
    status: int


@dataclass
class Posted:
    """A message the bot posted: every version of its content, oldest first."""

    id: int
    channel_id: int
    contents: list[str]
    reply_to: int | None
    allowed_mentions: Any

    @property
    def text(self) -> str:
        return self.contents[-1]


@dataclass
class Interaction:
    """A slash command sent to the bot, and what the bot answered."""

    token: str
    callbacks: list[Json] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # edits of @original, then follow-ups


@dataclass(frozen=True)
class Failure:
    status: int
    body: Json
    headers: dict[str, str]


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly application/json: with a charset, discord.py would not parse the body.
    return web.Response(
        body=json.dumps(data).encode(), status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class FakeDiscord:
    """Start with `async with FakeDiscord() as fake`; point the client at `api_base`/`gateway_url`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.unexpected: list[str] = []
        self.posted: dict[int, Posted] = {}
        self.deleted: dict[int, Posted] = {}  # messages the bot removed, by id
        self.interactions: dict[str, Interaction] = {}
        self.commands: list[Json] = []  # the last synced tree: each payload as sent, plus its ids
        self.identifies: list[Json] = []  # every IDENTIFY, oldest first
        self.resumes = 0
        self.recommended_shards = 1  # what GET /gateway/bot recommends
        self.required_shards = 1  # fewer and IDENTIFY is refused: 4011 Sharding required
        self.shard_count = 1  # as the connected clients identified: how events are routed
        self.undelivered: list[tuple[int, str]] = []  # (shard, event) sent while nobody ran that shard
        self.allow_message_content = True  # as ticked in the developer portal
        self._failures: dict[str, deque[Failure]] = defaultdict(deque)
        self._ids = snowflakes()
        self._seq: dict[int, int] = defaultdict(int)  # per shard, as each session has its own
        self._sockets: dict[int, web.WebSocketResponse] = {}  # the live session of each shard
        self._sessions: set[int] = set()  # shards whose session may still RESUME
        self._served: set[int] = set()  # shards some client has identified as, ever
        self._backlog: dict[int, list[tuple[str, Json]]] = defaultdict(list)  # replayed on RESUME
        self._connections: set[web.WebSocketResponse] = set()
        self.gateway_down = False  # when set, every (re)connection to the gateway is refused
        self._refused_until = 0.0  # monotonic: (re)connections refused until then
        self._backdated_count = 0
        self.history = ChannelHistory()
        self.missed: list[int] = []  # people's messages sent while their shard had no live session
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> FakeDiscord:
        self._runner = web.AppRunner(self._app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._connections):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # --- scripting ---------------------------------------------------------

    def fail_next(self, route: str, status: int, headers: dict[str, str] | None = None, **body: Any) -> None:
        """Answer the next call of `route` (e.g. "create_message") with `status` and `body`."""
        self._failures[route].append(Failure(status, body, headers or {}))

    def rate_limit_next(self, route: str, retry_after: float) -> None:
        """A 429 as Discord sends it: `Via` set (without it discord.py assumes a Cloudflare ban)."""
        self.fail_next(route, 429, {"Via": "1.1 google"}, message="You are being rate limited.",
                       retry_after=retry_after, **{"global": False})

    async def wait_for(self, predicate: Callable[[], T], within: float = WAIT_S) -> T:
        """Until `predicate()` is truthy (checked after every request and event), at most `within` s."""
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), within)

    async def user_message(
        self, content: str, *, author: int = MEMBER_ID, channel: int = CHANNEL_ID,
        mention: bool = False, mention_role: bool = False, reply_to: Posted | None = None,
        sent_ago: float = 0.0, replying_to: int | None = None, attachments: tuple[str, ...] = (),
        stickers: int = 0,
    ) -> int:
        """A person writes in `channel`; `mention` prefixes `<@bot>`, `mention_role` the bot's role
        (`<@&role>`); `sent_ago` dates it (its id) that many seconds back; `replying_to` names a
        person's earlier message in `channel` it replies to (`reply_to`: one of the bot's);
        `attachments` are content types of files attached ("image/png"); `stickers` a count.
        The message id."""
        mid = next(self._ids) if not sent_ago else self._backdated(sent_ago)
        extra: Json = {}
        if attachments:
            extra["attachments"] = [_attachment(next(self._ids), kind) for kind in attachments]
        if stickers:
            extra["sticker_items"] = [{"id": str(next(self._ids)), "name": "wave", "format_type": 1}
                                      for _ in range(stickers)]
        if replying_to is not None:
            original = self.history.get(channel, replying_to)
            reference = {"type": 0, "message_id": str(replying_to), "channel_id": str(channel)}
            extra |= {"type": 19, "message_reference": reference, "referenced_message": original}
        if mention:
            content, extra["mentions"] = f"<@{BOT_ID}> {content}", [user(BOT_ID)]
        if mention_role:
            content, extra["mention_roles"] = f"<@&{BOT_ROLE_ID}> {content}", [str(BOT_ROLE_ID)]
        if reply_to is not None:
            extra |= self._reply_fields(reply_to)
        data = message(mid, channel, author, content, **extra)
        self.history.add(data)
        await self._deliver("MESSAGE_CREATE", data)
        return mid

    async def slash(self, name: str, options: list[Json] | None = None, *, author: int = MEMBER_ID,
                    channel: int = CHANNEL_ID, autocomplete: bool = False,
                    locale: str = "en-US") -> Interaction:
        """A person runs `/name` with `options` from a Discord set to `locale`;
        `interaction.callbacks` fills in as the bot answers."""
        iid = next(self._ids)
        token = f"interaction-token-{iid}"
        self.interactions[token] = Interaction(token)
        data: Json = {"id": str(iid), "application_id": str(BOT_ID), "type": 4 if autocomplete else 2,
                "token": token, "version": 1, "attachment_size_limit": 8 << 20, "locale": locale,
                "entitlements": [], "channel_id": str(channel), "channel": channel_payload(channel, author),
                "app_permissions": str(EVERYONE_PERMISSIONS),
                "data": {"id": self._command_id(name), "name": name, "type": 1, "options": options or []}}
        if channel == DM_ID:
            data |= {"user": user(author), "context": 1}
        else:
            data |= {"guild_id": str(GUILD_OF[channel]), "guild_locale": "en-US", "context": 0,
                     "member": member(author, GUILD_OF[channel]) | {"permissions": str(permissions(author))}}
        await self.dispatch("INTERACTION_CREATE", data)
        return self.interactions[token]

    async def drop_connection(self, code: int = 4000, *, shard: int = 0) -> None:
        """Close a shard's gateway websocket as Discord does now and then; the client should resume."""
        if (ws := self._sockets.pop(shard, None)) is not None:
            await ws.close(code=code)

    def refuse_gateway(self, seconds: float) -> None:
        """Refuse every (re)connection to the gateway for `seconds` (503, as in an outage)."""
        self._refused_until = time.monotonic() + seconds

    async def invalidate_session(self, *, shard: int = 0) -> None:
        """INVALID_SESSION (op 9, d=false): the shard's session is over and it must IDENTIFY
        again; what is sent until its new READY is never delivered."""
        ws = self._sockets.pop(shard)
        self._sessions.discard(shard)
        self._backlog.pop(shard, None)
        await self._send(ws, 9, False)

    async def send_garbage(self, *, shard: int = 0) -> None:
        """A gateway frame that is not JSON: discord.py's client raises, and stops."""
        await self._sockets[shard].send_str("this is not JSON {")

    async def dispatch(self, event: str, data: Json) -> None:
        """Send a gateway event where Discord would: a guild's to its shard, anything else to shard 0."""
        if not self._sockets:
            raise AssertionError("no client is connected to the gateway")
        guild_id = data.get("guild_id")
        shard = 0 if guild_id is None else shard_of(int(guild_id), self.shard_count)
        if shard not in self._sockets:
            self.undelivered.append((shard, event))
            await self._notify()
            return
        await self._send_event(shard, event, data)

    @property
    def identify(self) -> Json | None:
        """The last IDENTIFY a client sent."""
        return self.identifies[-1] if self.identifies else None

    @property
    def shards(self) -> set[int]:
        """The shards with a live session now."""
        return set(self._sockets)

    def _backdated(self, seconds: float) -> int:
        self._backdated_count += 1  # ids sent the same millisecond differ in their low bits
        return snowflake_at(time.time() - seconds) + self._backdated_count

    async def _deliver(self, event: str, data: Json) -> None:
        """A person's message where Discord would send it: to its shard's live session; held
        for the session's RESUME while its connection is down; otherwise (a new session
        coming) not at all."""
        guild_id = data.get("guild_id")
        shard = 0 if guild_id is None else shard_of(int(guild_id), self.shard_count)
        if shard in self._sockets or shard not in self._served:
            await self.dispatch(event, data)
            return
        self.missed.append(int(data["id"]))
        if shard in self._sessions:
            self._backlog[shard].append((event, data))
        await self._notify()

    # --- queries -------------------------------------------------------------

    def replies_to(self, message_id: int) -> list[Posted]:
        """The bot's messages answering `message_id`: the reply, then its continuations."""
        first = [p for p in self.posted.values() if p.reply_to == message_id]
        if not first:
            return []
        head = first[0]
        later = [p for p in self.posted.values() if p.id > head.id and p.channel_id == head.channel_id]
        return [head, *later]

    def calls(self, route: str) -> list[Request]:
        return [r for r in self.requests if r.route == route]

    # --- the server ------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        api = API_PREFIX
        routes: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/users/@me", self._me, True),
            ("POST", "/users/@me/channels", self._open_dm, True),
            ("GET", "/users/{user}", self._user, True),
            ("GET", "/oauth2/applications/@me", self._application, True),
            ("GET", "/gateway/bot", self._gateway_bot, True),
            ("GET", "/channels/{channel}", self._channel, True),
            ("GET", "/channels/{channel}/messages", self._channel_messages, True),
            ("PUT", "/applications/{app}/commands", self._sync_commands, True),
            ("POST", "/channels/{channel}/typing", self._typing, True),
            ("POST", "/channels/{channel}/messages", self._create_message, True),
            ("PATCH", "/channels/{channel}/messages/{message}", self._edit_message, True),
            ("DELETE", "/channels/{channel}/messages/{message}", self._delete_message, True),
            ("POST", "/interactions/{id}/{token}/callback", self._interaction_callback, False),
            ("PATCH", "/webhooks/{app}/{token}/messages/@original", self._edit_original, False),
            ("POST", "/webhooks/{app}/{token}", self._followup, False),
        ]
        for method, path, handler, auth in routes:
            app.router.add_route(method, api + path, self._recorded(handler, auth))
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._unexpected_route)
        return app

    def _recorded(self, handler: Handler, auth: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        route = handler.__name__.lstrip("_")

        async def serve(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else None
            status, data, headers = await self._answer(route, handler, request, body, auth)
            self.requests.append(Request(route, request.method, request.path, body, status))
            await self._notify()
            return web.Response(status=204) if status == 204 else _json(status, data, headers)

        return serve

    async def _answer(
        self, route: str, handler: Handler, request: web.Request, body: Any, auth: bool
    ) -> tuple[int, Any, dict[str, str]]:
        if auth and request.headers.get("Authorization") != f"Bot {TOKEN}":
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        if self._failures[route]:
            failure = self._failures[route].popleft()
            return failure.status, failure.body, failure.headers
        status, data = await handler(request, body)
        return status, data, {}

    async def _unexpected_route(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path}")
        return _json(404, {"message": "404: Not Found", "code": 0})

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _me(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, user(BOT_ID) | {"verified": True, "mfa_enabled": False, "flags": 0}

    async def _user(self, request: web.Request, body: Any) -> tuple[int, Any]:
        user_id = int(request.match_info["user"])
        if user_id not in NAMES:
            return 404, {"message": "Unknown User", "code": 10013}
        return 200, user(user_id)

    async def _open_dm(self, request: web.Request, body: Any) -> tuple[int, Any]:
        """A DM channel with the user: its id is the user's id plus one (a fake's shortcut)."""
        recipient = int(body["recipient_id"])
        channel = {
            "id": str(recipient + 1), "type": 1, "recipients": [user(recipient)], "last_message_id": None,
        }
        return 200, channel

    async def _application(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, {"id": str(BOT_ID), "name": "Hearth", "description": "", "icon": None, "bot_public": True,
                     "bot_require_code_grant": False, "owner": user(OWNER_ID), "verify_key": "0" * 64,
                     "flags": 0}

    async def _gateway_bot(self, request: web.Request, body: Any) -> tuple[int, Any]:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return 200, {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit}

    async def _sync_commands(self, request: web.Request, body: Any) -> tuple[int, Any]:
        self.commands = [cmd | {"id": str(next(self._ids)), "application_id": str(BOT_ID), "version": "1",
                                "default_member_permissions": cmd.get("default_member_permissions")}
                         for cmd in body]
        return 200, self.commands

    async def _typing(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 204, None

    async def _channel(self, request: web.Request, body: Any) -> tuple[int, Any]:
        channel_id = int(request.match_info["channel"])
        if channel_id not in GUILD_OF and channel_id != DM_ID:
            return 404, {"message": "Unknown Channel", "code": 10003}
        return 200, channel_payload(channel_id, MEMBER_ID)

    async def _channel_messages(self, request: web.Request, body: Any) -> tuple[int, Any]:
        channel_id = int(request.match_info["channel"])
        if channel_id not in GUILD_OF and channel_id != DM_ID:
            return 404, {"message": "Unknown Channel", "code": 10003}
        return 200, self.history.page(channel_id, dict(request.query))

    async def _create_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        channel_id = int(request.match_info["channel"])
        if (rejected := _too_long(body)) is not None:
            return 400, rejected
        mid = next(self._ids)
        reference = body.get("message_reference") or {}
        reply_to = int(reference["message_id"]) if reference.get("message_id") else None
        self.posted[mid] = Posted(mid, channel_id, [body["content"]], reply_to, body.get("allowed_mentions"))
        self.history.add(message(mid, channel_id, BOT_ID, body["content"]))
        return 200, message(mid, channel_id, BOT_ID, body["content"])

    async def _edit_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        posted = self.posted.get(int(request.match_info["message"]))
        if posted is None or posted.channel_id != int(request.match_info["channel"]):
            return 404, {"message": "Unknown Message", "code": 10008}
        if (rejected := _too_long(body)) is not None:
            return 400, rejected
        posted.contents.append(body["content"])
        self.history.edit(posted.channel_id, posted.id, body["content"])
        return 200, message(posted.id, posted.channel_id, BOT_ID, body["content"])

    async def _delete_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        posted = self.posted.get(int(request.match_info["message"]))
        if posted is None or posted.channel_id != int(request.match_info["channel"]):
            return 404, {"message": "Unknown Message", "code": 10008}
        self.deleted[posted.id] = self.posted.pop(posted.id)
        self.history.remove(posted.channel_id, posted.id)
        return 204, None

    async def _interaction_callback(self, request: web.Request, body: Any) -> tuple[int, Any]:
        interaction = self._interaction(request)
        interaction.callbacks.append(body)
        kind, data = body["type"], body.get("data") or {}
        answer: Json = {"interaction": {
            "id": request.match_info["id"], "type": 2, "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(data.get("flags", 0) & EPHEMERAL),
        }}
        if kind in (4, 5):
            mid = next(self._ids)
            answer["interaction"]["response_message_id"] = str(mid)
            shown = message(mid, CHANNEL_ID, BOT_ID, data.get("content", ""))
            answer["resource"] = {"type": kind, "message": shown}
        if kind == 4:
            interaction.messages.append(data["content"])
        return 200, answer

    async def _edit_original(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return await self._webhook_message(request, body)

    async def _followup(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return await self._webhook_message(request, body)

    async def _webhook_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        if (rejected := _too_long(body)) is not None:
            return 400, rejected
        self._interaction(request).messages.append(body["content"])
        return 200, message(next(self._ids), CHANNEL_ID, BOT_ID, body["content"])

    def _interaction(self, request: web.Request) -> Interaction:
        token = request.match_info["token"]
        if token not in self.interactions:
            raise web.HTTPNotFound(text=f"unknown interaction token {token}")
        return self.interactions[token]

    # --- the gateway ---------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down or time.monotonic() < self._refused_until:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._connections.add(ws)
        await self._send(ws, 10, {"heartbeat_interval": HEARTBEAT_MS})
        shard: int | None = None  # known once the client identifies or resumes
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    self.unexpected.append(f"gateway frame {frame.type}")
                    continue
                shard = await self._on_gateway(ws, json.loads(frame.data), shard)
        finally:
            self._connections.discard(ws)
            if shard is not None and self._sockets.get(shard) is ws:
                del self._sockets[shard]
        return ws

    async def _on_gateway(self, ws: web.WebSocketResponse, payload: Json, shard: int | None) -> int | None:
        """Answer one client frame; the shard this connection serves, once known."""
        op, data = payload["op"], payload["d"]
        if op == 1:
            await self._send(ws, 11, None)
        elif op in (2, 6) and data["token"] != TOKEN:
            self.unexpected.append(f"gateway op {op} with a wrong token")
            await ws.close(code=4004)  # Authentication failed
        elif op == 2 and data["intents"] & MESSAGE_CONTENT_INTENT and not self.allow_message_content:
            await ws.close(code=4014)  # Disallowed intent(s)
        elif op == 2:
            shard = await self._identified(ws, data)
        elif op == 6:
            shard = await self._resumed(ws, data)
        else:
            self.unexpected.append(f"gateway op {op}")
            await ws.close(code=4001)  # Unknown opcode
        await self._notify()
        return shard

    async def _identified(self, ws: web.WebSocketResponse, data: Json) -> int | None:
        shard, count = data.get("shard", [0, 1])
        if not 0 <= shard < count or (self._sockets and count != self.shard_count):
            self.unexpected.append(f"IDENTIFY as shard {shard} of {count}")
            await ws.close(code=4010)  # Invalid shard
            return None
        if count < self.required_shards:
            await ws.close(code=4011)  # Sharding required
            return None
        self.identifies.append(data)
        self.shard_count, self._sockets[shard], self._seq[shard] = count, ws, 0
        self._sessions.add(shard)
        self._served.add(shard)
        self._backlog.pop(shard, None)  # a new session: what the old one missed is lost
        await self._ready(shard, count)
        return int(shard)

    async def _resumed(self, ws: web.WebSocketResponse, data: Json) -> int | None:
        session = str(data["session_id"])
        if not session.startswith(SESSION_PREFIX):
            self.unexpected.append(f"RESUME of unknown session {session}")
            await ws.close(code=4009)  # Session timed out
            return None
        shard = int(session.removeprefix(SESSION_PREFIX))
        if shard not in self._sessions:
            await self._send(ws, 9, False)  # that session was invalidated: IDENTIFY instead
            return None
        self.resumes += 1
        self._sockets[shard] = ws
        await self._send_event(shard, "RESUMED", {})
        for event, data in self._backlog.pop(shard, []):  # what the session missed, replayed
            await self._send_event(shard, event, data)
        return shard

    async def _ready(self, shard: int, count: int) -> None:
        """READY for one shard, then a GUILD_CREATE for each of its guilds."""
        guilds = [gid for gid in GUILDS if shard_of(gid, count) == shard]
        await self._send_event(shard, "READY", {
            "v": 10, "user": user(BOT_ID),
            "guilds": [{"id": str(gid), "unavailable": True} for gid in guilds],
            "session_id": f"{SESSION_PREFIX}{shard}", "resume_gateway_url": self.gateway_url,
            "application": {"id": str(BOT_ID), "flags": 0}, "private_channels": [], "shard": [shard, count],
        })
        for gid in guilds:
            await self._send_event(shard, "GUILD_CREATE", guild(gid))

    async def _send_event(self, shard: int, event: str, data: Json) -> None:
        self._seq[shard] += 1
        frame = {"op": 0, "t": event, "s": self._seq[shard], "d": data}
        await self._sockets[shard].send_str(json.dumps(frame))

    @staticmethod
    async def _send(ws: web.WebSocketResponse, op: int, data: Any) -> None:
        await ws.send_str(json.dumps({"op": op, "d": data, "s": None, "t": None}))

    def _command_id(self, name: str) -> str:
        return next((c["id"] for c in self.commands if c["name"] == name), "0")

    def _reply_fields(self, target: Posted) -> Json:
        reference = {"type": 0, "message_id": str(target.id), "channel_id": str(target.channel_id)}
        if target.channel_id in GUILD_OF:
            reference["guild_id"] = str(GUILD_OF[target.channel_id])
        return {"type": 19, "message_reference": reference,
                "referenced_message": message(target.id, target.channel_id, BOT_ID, target.text)}


def _attachment(aid: int, content_type: str) -> Json:
    name = "file." + content_type.rpartition("/")[2]
    return {"id": str(aid), "filename": name, "size": 1024, "url": f"https://cdn.invalid/{aid}/{name}",
            "proxy_url": f"https://media.invalid/{aid}/{name}", "content_type": content_type}


def _too_long(body: Json) -> Json | None:
    """Discord's answer to content over 2,000 characters (discord.py does not check)."""
    if len(body.get("content") or "") <= MAX_CONTENT:
        return None
    return {"message": "Invalid Form Body", "code": 50035, "errors": {"content": {"_errors": [
        {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}
