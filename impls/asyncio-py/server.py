"""HELLO server: an asyncio DatagramProtocol, on the default loop or on uvloop."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket

from bench.protocol import DEFAULT_ADDR, DEFAULT_PORT, make_reply


class HelloProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = make_reply(data)
        if reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors of a vanished client must not stop the server


async def serve(addr: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(
        HelloProtocol, local_addr=(addr, port), family=family
    )
    print("READY", flush=True)
    try:
        await stop
    finally:
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", default=DEFAULT_ADDR)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.addr, args.port))
    else:
        asyncio.run(serve(args.addr, args.port))


if __name__ == "__main__":
    main()
