"""The terminal chat adapter, in-process on the fake engine."""

from __future__ import annotations

import io

from adapters.terminal import KEY, TerminalAdapter
from bot.core import Hearth


async def chat(core: Hearth, text: str) -> str:
    out = io.StringIO()
    await TerminalAdapter(core, io.StringIO(text), out).run()
    return out.getvalue()


async def test_each_line_is_answered_in_order(core: Hearth) -> None:
    output = await chat(core, "hello\n\n你好\n")

    assert output == "echo: hello\necho: 你好\n"
    history = await core.store.history(KEY)
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]


async def test_commands_work_and_the_local_user_is_admin(core: Hearth) -> None:
    output = await chat(core, "/model demo-awq\n/status\n")

    assert "Now serving demo-awq (awq)." in output
    assert "model: demo-awq" in output


async def test_two_runs_never_collide_on_message_ids(core: Hearth) -> None:
    await chat(core, "same text\n")
    await chat(core, "same text\n")

    assert len(await core.store.history(KEY)) == 4


async def test_edits_print_only_what_they_add(core: Hearth) -> None:
    out = io.StringIO()
    adapter = TerminalAdapter(core, io.StringIO(""), out)
    message_id = await adapter.send(KEY, "Hel")
    await adapter.edit(KEY, message_id, "Hello")
    await adapter.edit(KEY, message_id, "Hello, world")

    assert out.getvalue() == "Hello, world"
