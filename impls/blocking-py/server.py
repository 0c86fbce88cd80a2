"""HELLO server: a blocking Python recvfrom/sendto loop."""

from __future__ import annotations

import argparse
import socket

from bench.protocol import DEFAULT_ADDR, DEFAULT_PORT, make_reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", default=DEFAULT_ADDR)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((args.addr, args.port))
    print("READY", flush=True)
    try:
        while True:
            data, peer = sock.recvfrom(65536)
            reply = make_reply(data)
            if reply is None:
                continue
            # a try costs nothing per request where a context manager would (3.11)
            try:  # noqa: SIM105
                sock.sendto(reply, peer)
            except OSError:
                pass  # refused by the kernel (a broadcast source, no route): no reply, go on
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
