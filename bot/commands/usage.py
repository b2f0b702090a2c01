"""`/usage` and `/quota`: what was spent, and the limits in force.

    /usage                      your own usage on this platform, today and the last 7 days
    /usage channel              this channel's, per user (admins)
    /usage all                  every channel and user (operators: HEARTH_ADMIN_IDS)
    /quota                      the limits in force in this channel, and your tokens today
    /quota set NAME VALUE       this channel's own value (admins may tighten the defaults;
                                only operators may loosen them)
    /quota reset [NAME]         back to the defaults (admins)

Days are UTC days; "tokens" are what a daily quota counts (`Usage.tokens`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.commands.spec import Access, Command, Invocation, Option, Subcommand, Text
from bot.commands.texts import say
from bot.messages import Usage
from bot.quotas import LIMIT_NAMES, Quotas
from bot.store import UsageLog

WEEK_DAYS = 7
TOP = 10
SCOPES = ("me", "channel", "all")
SCOPE_ACCESS = {"": Access.ANYONE, "me": Access.ANYONE, "channel": Access.ADMIN, "all": Access.OPERATOR}


@dataclass(slots=True)
class _Totals:
    """One line of a report: counts today and over the last 7 days."""

    name: str
    today: Usage
    week: Usage

    def line(self, lang: str) -> str:
        t, w = self.today, self.week
        return say("usage_line", lang, name=self.name, messages_today=t.messages, messages_week=w.messages,
                   tokens_today=f"{t.tokens:,}", tokens_week=f"{w.tokens:,}", refused_today=t.refused,
                   refused_week=w.refused)


class UsageCommand:
    """`/usage`: anyone their own; admins their channel's; operators everything."""

    def __init__(self, usage: UsageLog, quotas: Quotas) -> None:
        self._usage = usage
        self._quotas = quotas

    def spec(self) -> Command:
        scope = Option("scope", Text("me (default), channel (admins), all (operators)",
                                     "me（默认）、channel（管理员）、all（运营者）"), choices=SCOPES)
        return Command(
            "usage", Text("messages and tokens used, today and the last 7 days",
                          "今天和最近 7 天的消息与 token 用量"),
            self.run, access=lambda args: SCOPE_ACCESS.get(args.split(" ")[0], Access.ANYONE),
            options=(scope,),
        )

    async def run(self, call: Invocation) -> str:
        await self._quotas.ledger.flush()  # what was counted and not written yet
        today = self._quotas.ledger.today()
        since = (dt.date.fromisoformat(today) - dt.timedelta(days=WEEK_DAYS - 1)).isoformat()
        msg, lang = call.msg, call.lang
        if call.verb == "channel":
            rows = await self._usage.usage(since, platform=msg.platform, channel=msg.key.channel)
            head = say("usage_channel", lang, days=WEEK_DAYS)
            return _report(head, rows, today, [(say("usage_by_user", lang), _by_author)], lang)
        if call.verb == "all":
            rows = await self._usage.usage(since)
            head = say("usage_all", lang, days=WEEK_DAYS)
            groups: list[tuple[str, Grouping]] = [
                (say("usage_by_channel", lang), _by_channel), (say("usage_by_user", lang), _by_user)]
            return _report(head, rows, today, groups, lang)
        rows = await self._usage.usage(since, platform=msg.platform, author_id=msg.author_id)
        limits = await self._quotas.limits_for(msg.key)
        spent, quota = sum(r.tokens for r in rows if r.day == today), limits.user_daily_tokens
        left = (say("usage_quota_of", lang, spent=f"{spent:,}", quota=f"{quota:,}") if quota
                else say("usage_no_limit", lang, spent=f"{spent:,}"))
        head = say("usage_you", lang, days=WEEK_DAYS)
        return _report(head, rows, today, [], lang) + "\n" + say("usage_quota", lang, left=left)


class QuotaCommand:
    """`/quota`: show the limits here; `set` and `reset` them for this channel (admins)."""

    def __init__(self, quotas: Quotas) -> None:
        self._quotas = quotas

    def spec(self) -> Command:
        name = Option("name", Text("which limit", "哪一项限制"), required=True, choices=tuple(LIMIT_NAMES))
        value = Option("value", Text("messages a minute, burst, or tokens a day; 0: no limit",
                                     "每分钟消息数、突发数或每日 token；0 表示不限"), required=True)
        optional_name = Option("name", Text("which limit (default: all)", "哪一项（默认全部）"),
                               choices=tuple(LIMIT_NAMES))
        return Command(
            "quota", Text("rate limits and daily token quotas here", "本频道的频率限制与每日 token 额度"),
            self.run, access=self.access,
            subcommands=(
                Subcommand("show", Text("the limits in force here", "此处生效的限制")),
                Subcommand("set", Text("this channel's own value (admins; loosening: operators)",
                                       "为本频道设置（管理员；放宽需运营者）"), (name, value)),
                Subcommand("reset", Text("back to the defaults (admins)", "恢复默认（管理员）"),
                           (optional_name,)),
            ),
        )

    def access(self, args: str) -> Access:
        """Showing is for anyone; tightening a default for admins; loosening one for operators."""
        verb, _, rest = args.partition(" ")
        if verb == "reset":
            return Access.ADMIN
        if verb != "set":
            return Access.ANYONE
        name, _, value = rest.strip().partition(" ")
        if name in LIMIT_NAMES and value.strip().isdigit():
            return Access.OPERATOR if self._quotas.defaults.allows_more(name, int(value)) else Access.ADMIN
        return Access.ADMIN

    async def run(self, call: Invocation) -> str:
        key = call.msg.key
        name, _, value = call.rest.partition(" ")
        usage = say("quota_usage", call.lang, names=", ".join(LIMIT_NAMES))
        if call.verb == "set":
            if name not in LIMIT_NAMES or not value.strip().isdigit():
                return usage
            await self._quotas.set_limit(key, name, int(value))
        elif call.verb == "reset":
            for each in [name] if name in LIMIT_NAMES else list(LIMIT_NAMES):
                await self._quotas.set_limit(key, each, None)
        elif call.verb not in ("", "show"):
            return usage
        return await self._show(call)

    async def _show(self, call: Invocation) -> str:
        limits = await self._quotas.limits_for(call.msg.key)
        defaults = self._quotas.defaults
        lines = [say("quota_limits", call.lang)]
        for name in LIMIT_NAMES:
            mark = "*" if limits.get(name) != defaults.get(name) else ""
            lines.append(f"  {name}: {limits.get(name):,}{mark}")
        spent = await self._quotas.ledger.tokens_today("user", call.msg.platform, call.msg.author_id)
        lines.append(say("quota_spent", call.lang, spent=f"{spent:,}"))
        return "\n".join(lines)


Grouping = Callable[[Usage], tuple[str, str]]  # a row → (group key, its name in the report)


def _by_author(row: Usage) -> tuple[str, str]:
    return row.author_id, f"{row.author_name or row.author_id} ({row.author_id})"


def _by_user(row: Usage) -> tuple[str, str]:
    user = f"{row.platform}:{row.author_id}"
    return user, f"{row.author_name or row.author_id} ({user})"


def _by_channel(row: Usage) -> tuple[str, str]:
    name = f"{row.platform}:{row.channel}"
    return name, name


def _report(head: str, rows: list[Usage], today: str, groups: list[tuple[str, Grouping]], lang: str) -> str:
    lines = [head, _totals(say("usage_total", lang), rows, today).line(lang)]
    for title, grouping in groups:
        found = _grouped(rows, today, grouping)
        lines.append(say("usage_top", lang, title=title, top=TOP, days=WEEK_DAYS))
        lines += [f"  {t.line(lang)}" for t in found[:TOP]] or ["  " + say("usage_none", lang)]
    return "\n".join(lines)


def _grouped(rows: list[Usage], today: str, grouping: Grouping) -> list[_Totals]:
    groups: dict[str, tuple[str, list[Usage]]] = {}
    for row in rows:
        key, name = grouping(row)
        groups.setdefault(key, (name, []))[1].append(row)
    found = [_totals(name, members, today) for name, members in groups.values()]
    return sorted(found, key=lambda t: (-t.week.tokens, -t.week.messages, t.name))


def _totals(name: str, rows: Iterable[Usage], today: str) -> _Totals:
    rows = list(rows)
    return _Totals(name, _sum(r for r in rows if r.day == today), _sum(rows))


def _sum(rows: Iterable[Usage]) -> Usage:
    total = Usage("", "", "", "")
    for r in rows:
        total = Usage("", "", "", "", "", total.messages + r.messages, total.refused + r.refused,
                      total.prompt_tokens + r.prompt_tokens, total.cached_tokens + r.cached_tokens,
                      total.reply_tokens + r.reply_tokens)
    return total
