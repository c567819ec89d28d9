"""A TCP relay that counts the HTTP requests passing through it: put between the gateway
and the auth service to count exactly what the auth service receives."""

from __future__ import annotations

import asyncio
import threading

from portcullis.procs import free_port


class CountingRelay:
    def __init__(self, target_port: int, needle: bytes) -> None:
        self.target_port = target_port
        self.needle = needle
        self.port = free_port()
        self.count = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    count: bool) -> None:
        tail = b""
        try:
            while data := await reader.read(65536):
                if count:
                    window = tail + data
                    self.count += window.count(self.needle)
                    tail = window[-(len(self.needle) - 1):]
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer, True),
                             self._pipe(up_reader, writer, False))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()
        server.close()

    def __enter__(self) -> CountingRelay:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
