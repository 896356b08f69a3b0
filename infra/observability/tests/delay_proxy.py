#!/usr/bin/env python3
"""A userspace delay proxy: simulated regions on loopback addresses (the kernel's netem is not available).

    delay_proxy.py LISTEN_HOST:PORT=UPSTREAM_HOST:PORT:ONE_WAY_MS [...]

Every byte is held ONE_WAY_MS before it is forwarded, in each direction and in order, so a request and its
response gain 2 x ONE_WAY_MS (one simulated round trip). The TCP handshake with the proxy is not delayed
(the kernel completes it before accept), so a client sees the added time in its time to first byte, not in
its connect time. Prints "ready" once every listener is bound."""

import asyncio
import sys
import time

LIVE: set = set()

async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver():
        while True:
            due, chunk = await queue.get()
            if chunk is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, chunk))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except ConnectionError:
        pass


async def serve(listen: str, upstream: str, delay: float) -> asyncio.AbstractServer:
    up_host, up_port = upstream.rsplit(":", 1)

    async def handle(client_r, client_w):
        # The loop holds connection tasks weakly; keep each alive until its connection ends.
        task = asyncio.current_task()
        LIVE.add(task)
        try:
            await forward(client_r, client_w)
        finally:
            LIVE.discard(task)

    async def forward(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(up_host, int(up_port))
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))
        for w in (client_w, server_w):
            w.close()

    host, port = listen.rsplit(":", 1)
    return await asyncio.start_server(handle, host, int(port))


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        try:
            listen, rest = spec.split("=", 1)
            upstream, ms = rest.rsplit(":", 1)
            servers.append(await serve(listen, upstream, float(ms) / 1000))
        except ValueError:
            sys.exit(f"delay_proxy: bad spec {spec!r}, want LISTEN_HOST:PORT=UPSTREAM_HOST:PORT:ONE_WAY_MS")
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1:]))
