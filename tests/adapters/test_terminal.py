"""The terminal chat adapter, in-process on the fake engine."""

from __future__ import annotations

import asyncio
import io
import logging
import queue
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from adapters.terminal import BOT_PREFIX, CONTINUED, KEY, PROMPT, REPROMPT_S, LogLines, TerminalAdapter
from bot.app.builder import App


async def chat(app: App, text: str) -> str:
    out = io.StringIO()
    await TerminalAdapter(app.pipeline, app.commands, io.StringIO(text), out).run()
    return out.getvalue()


async def test_each_line_is_answered_in_order(app: App) -> None:
    output = await chat(app, "hello\n\n你好\n")

    assert output == "echo: hello\necho: 你好\n"
    history = await app.store.history(KEY)
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]


async def test_commands_work_and_the_local_user_is_admin(app: App) -> None:
    output = await chat(app, "/model demo-awq\n/status\n")

    assert "Now serving demo-awq (awq)." in output
    assert "model: demo-awq" in output


async def test_two_runs_never_collide_on_message_ids(app: App) -> None:
    await chat(app, "same text\n")
    await chat(app, "same text\n")

    assert len(await app.store.history(KEY)) == 4


async def test_edits_print_only_what_they_add(app: App) -> None:
    out = io.StringIO()
    adapter = TerminalAdapter(app.pipeline, app.commands, io.StringIO(""), out)
    message_id = await adapter.send(KEY, "Hel")
    await adapter.edit(KEY, message_id, "Hello")
    await adapter.edit(KEY, message_id, "Hello, world")

    assert out.getvalue() == "Hello, world"


async def test_replies_streaming_at_once_never_share_a_line(app: App) -> None:
    """A reply, a notice or a command's answer printed while another reply streams starts a
    line of its own; the streaming reply then resumes on a new line, marked."""
    out = io.StringIO()
    adapter = TerminalAdapter(app.pipeline, app.commands, io.StringIO(""), out)
    first = await adapter.send(KEY, "The first")
    second = await adapter.send(KEY, "The second")
    await adapter.edit(KEY, first, "The first, continued")
    await adapter.edit(KEY, first, "The first, continued again")
    await adapter.notify("local", "the model changed")
    await adapter.edit(KEY, second, "The second, done")

    assert out.getvalue().split("\n") == [
        "The first", "The second", f"{CONTINUED}, continued again", "[notice] the model changed",
        f"{CONTINUED}, done"]


async def test_the_prompt_and_a_command_answer_start_their_own_lines(app: App) -> None:
    out = io.StringIO()
    adapter = TerminalAdapter(app.pipeline, app.commands, io.StringIO("/status\n"), out)
    await adapter.send(KEY, "a reply a restart resumed, streaming")  # no newline yet
    await adapter.run()

    lines = out.getvalue().split("\n")
    assert lines[0] == "a reply a restart resumed, streaming"
    assert lines[1].startswith("model: demo")  # /status's first line, on a line of its own


class Typed(io.StringIO):
    """Input typed at a terminal: the adapter prompts, and the terminal echoes each line."""

    def isatty(self) -> bool:
        return True


async def test_at_a_terminal_each_reply_follows_the_typed_line_and_the_prompt_comes_back(app: App) -> None:
    out = io.StringIO()
    await TerminalAdapter(app.pipeline, app.commands, Typed("hello\n"), out).run()

    # (the terminal itself shows "hello" and its Enter after the first prompt)
    assert out.getvalue() == "you> hearth> echo: hello\nyou> "


class Keyboard(io.StringIO):
    """A terminal's input that the test types into, a line at a time (each echoed by the
    terminal itself, so not in the adapter's output)."""

    def __init__(self) -> None:
        super().__init__()
        self._typed: queue.Queue[str | None] = queue.Queue()

    def isatty(self) -> bool:
        return True

    def type(self, line: str) -> None:
        self._typed.put(line)

    def hang_up(self) -> None:
        self._typed.put(None)

    def __iter__(self) -> Iterator[str]:
        while (line := self._typed.get(timeout=30)) is not None:
            yield line


async def printed(out: io.StringIO, ending: str, within: float = 5.0) -> str:
    """The output once it ends with `ending` (at most `within` seconds)."""
    for _ in range(int(within / 0.01)):
        if out.getvalue().endswith(ending):
            break
        await asyncio.sleep(0.01)
    return out.getvalue()


@asynccontextmanager
async def at_a_terminal(app: App) -> AsyncIterator[tuple[TerminalAdapter, Keyboard, io.StringIO]]:
    """The chat running at a terminal, its first prompt shown; the keyboard hung up after."""
    out, keyboard = io.StringIO(), Keyboard()
    adapter = TerminalAdapter(app.pipeline, app.commands, keyboard, out)
    chat = asyncio.create_task(adapter.run())
    try:
        await printed(out, PROMPT)
        yield adapter, keyboard, out
    finally:
        keyboard.hang_up()
        await chat


async def test_a_reply_streaming_when_a_line_is_typed_resumes_below_its_echo(app: App) -> None:
    async with at_a_terminal(app) as (adapter, keyboard, out):
        resumed = await adapter.send(KEY, "resumed after a restart")  # while the prompt waits
        keyboard.type("/status\n")
        await printed(out, f"\n{PROMPT}")
        await adapter.edit(KEY, resumed, "resumed after a restart, and the rest")

    output = out.getvalue()
    # (the terminal shows "/status" and its Enter right after "…restart")
    assert output.startswith(f"{PROMPT}\n{BOT_PREFIX}resumed after a restartmodel: demo")
    assert output.endswith(f"{PROMPT}\n{BOT_PREFIX}{CONTINUED}, and the rest")


async def test_no_prompt_is_shown_for_a_line_typed_ahead(app: App) -> None:
    async with at_a_terminal(app) as (_, keyboard, out):
        keyboard.type("hello\n")
        keyboard.type("/status\n")  # typed while "hello" is answered: echoed already
        await printed(out, f"\n{PROMPT}")

    first, second = out.getvalue().split("\n", 2)[:2]
    assert first == f"{PROMPT}{BOT_PREFIX}echo: hello"
    assert second.startswith("model: demo"), "a prompt before it would share its line"


async def test_the_prompt_comes_back_after_output_printed_while_it_waited(app: App) -> None:
    async with at_a_terminal(app) as (adapter, _, out):
        await adapter.notify("local", "the model changed")
        output = await printed(out, f"changed\n{PROMPT}", within=REPROMPT_S * 10)

    assert output == f"{PROMPT}\n[notice] the model changed\n{PROMPT}"


async def test_a_log_record_takes_lines_of_its_own_and_the_reply_resumes_below(app: App) -> None:
    out = io.StringIO()
    adapter = TerminalAdapter(app.pipeline, app.commands, io.StringIO(""), out)
    handler = logging.StreamHandler(LogLines(out, adapter))
    logger = logging.getLogger("tests.terminal")
    logger.addHandler(handler)
    try:
        reply = await adapter.send(KEY, "half a")
        logger.warning("the database is back after 2.6 s")
        await adapter.edit(KEY, reply, "half a reply")
    finally:
        logger.removeHandler(handler)

    assert out.getvalue().split("\n") == ["half a", "the database is back after 2.6 s", f"{CONTINUED} reply"]


async def test_control_characters_in_a_reply_are_shown_not_obeyed(app: App) -> None:
    out = io.StringIO()
    adapter = TerminalAdapter(app.pipeline, app.commands, io.StringIO(""), out)
    message_id = await adapter.send(KEY, "clear\x1b[2J")
    await adapter.edit(KEY, message_id, "clear\x1b[2J, retitle\x1b]0;pwned\x07,\r over\x9b1m\tand\nnext")

    assert out.getvalue() == "clear\u241b[2J, retitle\u241b]0;pwned\u2407,\u240d over\\x9b1m\tand\nnext"


async def test_a_pasted_escape_sequence_comes_back_harmless(app: App) -> None:
    output = await chat(app, "hi \x1b[31mred\x1b[0m\n")

    assert "\x1b" not in output and "\u241b[31mred" in output


async def test_a_withdrawn_reply_is_marked(app: App) -> None:
    out = io.StringIO()
    adapter = TerminalAdapter(app.pipeline, app.commands, io.StringIO(""), out)
    message_id = await adapter.send(KEY, "half a thought")
    await adapter.delete(KEY, message_id)

    assert out.getvalue() == "half a thought\n[withdrawn]"


async def test_a_reply_an_earlier_run_printed_and_a_crash_cut_is_marked_then_answered(
    app: App,
) -> None:
    earlier = TerminalAdapter(app.pipeline, app.commands, io.StringIO(""), io.StringIO())
    shown = await earlier.send(KEY, "the beginning of")
    message_id = await app.store.add_message(KEY, "user", "tell me", platform_message_id="1-1")
    assert message_id is not None
    await app.store.note_shown(message_id, [shown])

    out = io.StringIO()
    await app.recovery.run({"terminal": TerminalAdapter(app.pipeline, app.commands, io.StringIO(""), out)})
    await app.pipeline.drain(grace_s=5)

    marked, answer = out.getvalue().split("\n", 1)
    assert marked == "[edited] [interrupted by a restart; answered again below]"  # a line of its own
    assert answer.startswith("echo: ") and answer.endswith("tell me")
    assert await app.store.pending(since=0) == []


async def test_moderation_works_in_the_terminal(app: App) -> None:
    output = await chat(app, "/moderation block pineapple\nI like pineapple\n")

    assert "Blocking 'pineapple'" in output
    assert "Sorry, I can't help with that." in output


async def test_every_command_of_the_table_is_reachable_in_the_terminal(app: App) -> None:
    """Each command answers as itself, not with the help shown for unknown names."""
    help_text = app.commands.help()
    for command in app.commands:
        output = await chat(app, f"/{command.name}\n")
        assert output.strip(), f"/{command.name} gave no answer"
        if command.name != "help":
            assert output.strip() != help_text.strip(), f"/{command.name} fell through to the help"
        assert "I don't know that command" not in output, f"/{command.name} was not recognised"
