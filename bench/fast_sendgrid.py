"""A fast loopback stand-in for SendGrid's Mail Send, for the benchmark: its own process,
asyncio, HTTP/1.1 keep-alive, answers 202 with an X-Message-Id and counts each
`delivery_id` it accepts (a request for several recipients carries one per recipient).
(The tests' fake validates every body against the schema; that costs more CPU than drip
itself, so it is not what a throughput figure should measure.)

Run: python bench/fast_sendgrid.py PORT ; GET /stats answers {"accepted": N, "duplicates": N,
"requests": N}; GET /times answers {delivery_id: Unix time of its first acceptance}.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid

DELIVERY = re.compile(rb'"delivery_id":\s*"(\d+)"')
seen: set[bytes] = set()
#: When each delivery id was first accepted (Unix time), for latency to the provider.
accepted_at: dict[str, float] = {}
stats = {"accepted": 0, "duplicates": 0, "requests": 0}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:].strip())
            body = await reader.readexactly(length) if length else b""
            if head.startswith((b"GET /stats", b"GET /times")):
                answer = stats if head.startswith(b"GET /stats") else accepted_at
                payload = json.dumps(answer).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
            else:
                stats["requests"] += 1
                now = time.time()
                for delivery_id in DELIVERY.findall(body) or [b""]:  # one per recipient
                    if delivery_id and delivery_id in seen:
                        stats["duplicates"] += 1
                    elif delivery_id:
                        accepted_at[delivery_id.decode()] = now
                    seen.add(delivery_id)
                    stats["accepted"] += 1
                writer.write(
                    b"HTTP/1.1 202 Accepted\r\nX-Message-Id: "
                    + uuid.uuid4().hex[:22].encode()
                    + b"\r\nContent-Length: 0\r\n\r\n"
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError, asyncio.LimitOverrunError):
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=2**20)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
