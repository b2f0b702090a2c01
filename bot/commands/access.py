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

USAGE = "Usage: /access | /access approve CODE | /access allow ENTRY | /access revoke ENTRY"
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
        verb, rest = call.verb.lower(), call.rest
        if verb in ("", "show"):
            return await self._show()
        if verb == "approve" and rest:
            entry = await self._policy.approve(rest)
            return f"Paired: {entry} may talk to me now." if entry else "No such code, or it expired."
        if verb in ("allow", "revoke") and rest:
            if not well_formed(rest):
                return f"Not an entry: use {ENTRY_FORM}."
            if verb == "allow":
                await self._policy.add(rest)
                return f"{rest} may talk to me now."
            removed = await self._policy.remove(rest)
            return f"Revoked {rest}." if removed else f"{rest} was not added with /access."
        return USAGE

    async def _show(self) -> str:
        rules = self._policy.rules
        if rules.mode == "open":
            return "Access: open (HEARTH_ACCESS=open): anyone may talk to me."
        added = await self._policy.added()
        lines = [f"Access: allowlist; direct messages: {rules.dm_policy}."]
        lines += [f"  {e} (HEARTH_ACCESS_ALLOW)" for e in sorted(rules.allow)]
        lines += [f"  {e} (added with /access)" for e in sorted(added - rules.allow)]
        return "\n".join(lines if len(lines) > 1 else [*lines, "  (no entries: only operators)"])


def well_formed(entry: str) -> bool:
    """`platform:kind:id` with a kind the platform has and a numeric id (a chat's may be negative)."""
    platform, _, rest = entry.partition(":")
    kind, _, ident = rest.partition(":")
    return kind in KINDS.get(platform, ()) and ident.lstrip("-").isdigit()
