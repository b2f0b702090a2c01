"""`/access`: operators see and change who may talk to Hearth (HEARTH_ACCESS=allowlist).

    /access                     the policy, and every entry in force
    /access approve CODE        let in the stranger a pairing code was given to
    /access allow ENTRY         let in a place or a person (`telegram:chat:-100…`, `discord:user:…`)
    /access revoke ENTRY        forget an entry added here (HEARTH_ACCESS_ALLOW's stay)

Every use is for operators (HEARTH_ADMIN_IDS): who may talk to Hearth is global state.
"""

from __future__ import annotations

from bot.access import AccessPolicy
from bot.commands.spec import Access, Command, Invocation, Option, Subcommand, Text, always
from bot.commands.texts import say

ENTRY_FORM = ("platform:kind:id, e.g. telegram:chat:-1001234, discord:server:123456789012345678, "
              "telegram:user:42")
KINDS = {"discord": ("server", "channel", "user"), "telegram": ("chat", "user")}


class AccessCommand:
    """`/access` for operators (see the module docstring)."""

    def __init__(self, policy: AccessPolicy) -> None:
        self._policy = policy

    def spec(self) -> Command:
        code = Option("code", Text("the code the stranger was given", "对方收到的代码"), required=True)
        entry = Option("entry", Text(ENTRY_FORM, "platform:kind:id，例如 telegram:chat:-1001234"),
                       required=True)
        return Command(
            "access", Text("who may talk to me (operators)", "谁可以和我交流（运营者）"), self.run,
            access=always(Access.OPERATOR),
            subcommands=(
                Subcommand("show", Text("the policy and its entries", "当前策略与名单")),
                Subcommand("approve", Text("let in whoever has this pairing code", "批准持有此配对码的人"),
                           (code,)),
                Subcommand("allow", Text("let a place or person in", "允许一个地方或用户"), (entry,)),
                Subcommand("revoke", Text("forget an entry added here", "移除此处添加的条目"), (entry,)),
            ),
        )

    async def run(self, call: Invocation) -> str:
        verb, rest, lang = call.verb.lower(), call.rest, call.lang
        if verb in ("", "show"):
            return await self._show(lang)
        if verb == "approve" and rest:
            entry = await self._policy.approve(rest)
            return say("access_paired", lang, entry=entry) if entry else say("access_no_code", lang)
        if verb in ("allow", "revoke") and rest:
            if not well_formed(rest):
                return say("access_not_entry", lang, form=ENTRY_FORM)
            if verb == "allow":
                await self._policy.add(rest)
                return say("access_allowed", lang, entry=rest)
            removed = await self._policy.remove(rest)
            return say("access_revoked" if removed else "access_not_added", lang, entry=rest)
        return say("access_usage", lang)

    async def _show(self, lang: str) -> str:
        rules = self._policy.rules
        if rules.mode == "open":
            return say("access_open", lang)
        added = await self._policy.added()
        lines = [say("access_allowlist", lang, dm_policy=rules.dm_policy)]
        lines += [say("access_from_settings", lang, entry=e) for e in sorted(rules.allow)]
        lines += [say("access_from_command", lang, entry=e) for e in sorted(added - rules.allow)]
        return "\n".join(lines if len(lines) > 1 else [*lines, say("access_no_entries", lang)])


def well_formed(entry: str) -> bool:
    """`platform:kind:id` with a kind the platform has and a numeric id (a chat's may be negative)."""
    platform, _, rest = entry.partition(":")
    kind, _, ident = rest.partition(":")
    return kind in KINDS.get(platform, ()) and ident.lstrip("-").isdigit()
