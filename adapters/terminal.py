"""Chat with Hearth in the terminal: the adapter used when no platform token is set.

Lines starting with `/` are commands from the command table (the local user is
an admin); `/help` lists them. With stdin
piped, each line is one message; at end of input the adapter returns after the
last reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import TextIO

from bot.commands import Commands
from bot.messages import ConversationKey, IncomingMessage
from bot.ports import Inbox, ReplyLimits

KEY = ConversationKey("terminal", "local")
PROMPT = "you> "
BOT_PREFIX = "hearth> "
CONTINUED = "…"  # a reply's text resumed on a new line, after something else was printed
REPROMPT_S = 0.5  # quiet after output printed while waiting for a line, before the prompt again
EOF_MARK = None
# Control characters a terminal would obey instead of showing (ESC starts sequences that
# move the cursor, clear the screen or retitle the window; BEL rings; CR overwrites the
# line): a model's reply or a pasted text may carry them. Shown as their symbols instead.
UNSHOWABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class TerminalAdapter:
    """Streams replies by appending what each edit adds.

    Everything printed starts on a line of its own unless it continues the line's own
    reply: a reply, notice, command answer or log record printed while another reply is
    streaming (one a restart resumed, say) takes a new line, and the streaming reply then
    resumes on a line of its own, marked CONTINUED, instead of running into it. At a
    terminal, a line typed while a reply streams is echoed by the terminal at once, so the
    reply resumes below it too; the prompt is shown only when no typed line waits, and
    again REPROMPT_S after anything printed while it waited (a reply a restart resumed, a
    log record), so what the user types next never lands on that output's last line."""

    platform = "terminal"
    limits = ReplyLimits(max_chars=1_000_000, edit_interval=0.0)

    def __init__(self, inbox: Inbox, commands: Commands, stdin: TextIO, stdout: TextIO) -> None:
        self._inbox = inbox
        self._commands = commands
        self._stdin = stdin
        self._stdout = stdout
        self._interactive = stdin.isatty()
        self._session = f"{time.time_ns():x}"
        self._printed: dict[str, str] = {}
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._count = 0
        # Where the cursor is. Written by the event loop's thread, and by whichever thread
        # logs a record (`interject`): one at a time.
        self._output = threading.RLock()
        self._at_line_start = True
        self._line_of: str | None = None  # the reply whose text the current line holds
        self._awaiting = False  # `run` waits for a line: the prompt is, or is due to be, shown
        self._typed_ahead = 0  # lines typed (and echoed) that `run` has not taken yet
        self._reprompt: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        """Read and answer lines until end of input."""
        self._loop = asyncio.get_running_loop()
        self._start_reader()
        while True:
            if self._interactive and not self._typed_ahead:  # a line typed ahead was echoed already
                self._on_new_line(PROMPT)
            self._awaiting = True
            line = await self._lines.get()
            self._awaiting = False
            self._cancel_reprompt()
            if line is EOF_MARK:
                return
            self._typed_ahead -= 1
            if line.strip():
                await self._handle(line.strip())
                self._end_line()

    def interject(self, write: Callable[[str], object], text: str) -> None:
        """Print `text` (a log record: whole lines) with `write`, another stream on the same
        terminal (stderr), on lines of its own. Any thread."""
        with self._output:
            self._end_line()
            write(text)
            self._at_line_start = text.endswith("\n")
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for a line
                self._loop.call_soon_threadsafe(self._printed_while_awaiting)

    async def stop(self) -> None:
        self._lines.put_nowait(EOF_MARK)

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        self._count += 1
        message_id = f"{self._session}-r{self._count}"
        self._on_new_line(BOT_PREFIX if self._interactive else "", message_id)
        self._printed[message_id] = ""
        await self.edit(key, message_id, text)
        return message_id

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        """Print what the edit adds; a rewrite, or a message printed by an earlier run (a
        reply a crash cut, marked after the restart), on a line of its own."""
        shown = self._printed.get(message_id)
        with self._output:  # (a log record from another thread must not come between look and write)
            if shown is None:  # an earlier run's: what follows is another message
                self._on_new_line(f"[edited] {text}")
                self._end_line()
            elif not text.startswith(shown):
                self._on_new_line(f"[edited] {text}", message_id)
            elif self._line_of == message_id:
                self._write(text[len(shown):])
            elif added := text[len(shown):]:  # something else was printed since: resume below it
                self._on_new_line(f"{BOT_PREFIX if self._interactive else ''}{CONTINUED}{added}", message_id)
        self._printed[message_id] = text
        self._printed_while_awaiting()

    async def notify(self, user_id: str, text: str) -> None:
        """The terminal's user is the only operator there is: print it on a line of its own."""
        self._on_new_line(f"[notice] {text}")
        self._end_line()
        self._printed_while_awaiting()

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        """Printed text cannot be taken back: say that the message is withdrawn."""
        if self._printed.pop(message_id, None):
            self._on_new_line("[withdrawn]")
            self._printed_while_awaiting()

    async def _handle(self, line: str) -> None:
        self._count += 1
        msg = IncomingMessage(
            key=KEY, author_id="local", author_name="you", text=line,
            message_id=f"{self._session}-{self._count}", author_is_admin=True,
            is_direct=True, channel_name="a terminal chat",
        )
        if line.startswith("/"):
            name, _, args = line[1:].partition(" ")
            if reply := await self._commands.run(msg, name, args):  # "": nothing to say
                self._on_new_line(reply)
        else:
            await self._inbox.handle(msg, self)

    def _on_new_line(self, text: str, reply: str | None = None) -> None:
        """`text` at the start of a line (ending the current one first when it has
        anything); the line then holds `reply`'s text (None: no reply's)."""
        with self._output:
            self._end_line()
            self._write(text)
            self._line_of = reply

    def _end_line(self) -> None:
        with self._output:
            if not self._at_line_start:
                self._write("\n")
            self._line_of = None

    def _write(self, text: str) -> None:
        if text:
            with self._output:
                self._stdout.write(UNSHOWABLE.sub(_symbol, text))
                self._stdout.flush()
                self._at_line_start = text.endswith("\n")

    def _printed_while_awaiting(self) -> None:
        """Something was printed: if `run` waits for a line, show the prompt again once
        nothing more was printed for REPROMPT_S (event loop's thread)."""
        if not (self._interactive and self._awaiting) or self._loop is None:
            return
        self._cancel_reprompt()
        self._reprompt = self._loop.call_later(REPROMPT_S, self._prompt_again)

    def _prompt_again(self) -> None:
        self._reprompt = None
        if self._awaiting:
            self._on_new_line(PROMPT)

    def _cancel_reprompt(self) -> None:
        if self._reprompt is not None:
            self._reprompt.cancel()
            self._reprompt = None

    def _typed(self, line: str | None) -> None:
        """A line arrived (event loop's thread). At a terminal its echo, Enter included, has
        moved the cursor to the start of a new line, whatever was printed before it."""
        if line is not EOF_MARK:
            self._typed_ahead += 1
            if self._interactive:
                with self._output:
                    self._at_line_start, self._line_of = True, None
        self._lines.put_nowait(line)

    def _start_reader(self) -> None:
        """A daemon thread reads stdin, so a blocked read never holds up shutdown."""
        loop = asyncio.get_running_loop()

        def read() -> None:
            for line in self._stdin:
                loop.call_soon_threadsafe(self._typed, line)
            loop.call_soon_threadsafe(self._typed, EOF_MARK)

        threading.Thread(target=read, name="hearth-stdin", daemon=True).start()


class LogLines:
    """A stream for log records (a `logging.StreamHandler`'s) that shares a terminal with an
    interactive `TerminalAdapter`: each record is printed on lines of its own, and a reply
    it interrupts resumes below it (`TerminalAdapter.interject`)."""

    def __init__(self, stream: TextIO, terminal: TerminalAdapter) -> None:
        self._stream = stream
        self._terminal = terminal

    def write(self, text: str) -> int:
        self._terminal.interject(self._stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def _symbol(match: re.Match[str]) -> str:
    """A control character as Unicode's symbol for it (␛ for ESC, ␡ for DEL), or `\\x9b` (C1)."""
    code = ord(match.group(0))
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else f"\\x{code:02x}"
