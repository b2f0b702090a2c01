"""A TCP relay on 127.0.0.1 that lets a server die at a chosen point of a streamed reply.

Killing a real server from the client's side races its own speed: a tiny model on a
fast core may have sent the whole reply (finish and all) into the socket before the
client has read its fifth chunk, and then nothing fails over. The relay fixes the
order instead: it forwards a response's bytes up to the `cut_after`-th server-sent
event (`data:`), runs `on_cut` (which kills the real server), and resets the client's
connection without forwarding the rest. Later connections are refused, as a dead
machine's would be.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

EVENT = b"data:"
READ_BYTES = 65536


class CuttingRelay:
    """Relays 127.0.0.1:`port` to `target_port`; `url` is the relay's base URL with `path`."""

    def __init__(
        self, target_port: int, cut_after: int, on_cut: Callable[[], None], path: str = "/v1"
    ) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.on_cut = on_cut
        self.path = path
        self.cut = False
        self.url = ""  # set on entering; stays after the cut, when the listener is gone
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CuttingRelay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close_listener()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.cut:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        upstream = asyncio.create_task(self._pipe(client_reader, server_writer))
        self._tasks.add(upstream)
        upstream.add_done_callback(self._tasks.discard)
        events = 0
        try:
            while data := await server_reader.read(READ_BYTES):
                start = 0
                while (at := data.find(EVENT, start)) >= 0:
                    events += 1
                    if events > self.cut_after:
                        client_writer.write(data[:at])
                        await client_writer.drain()
                        self._die(client_writer, server_writer)
                        return
                    start = at + len(EVENT)
                client_writer.write(data)
                await client_writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            upstream.cancel()
            for writer in (client_writer, server_writer):
                self._writers.discard(writer)
                writer.transport.abort()

    def _die(self, *writers: asyncio.StreamWriter) -> None:
        self.cut = True
        self._close_listener()
        self.on_cut()
        for writer in writers:
            writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(READ_BYTES):
                writer.write(data)
                await writer.drain()
