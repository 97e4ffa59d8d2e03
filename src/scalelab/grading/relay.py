"""Bytes between a sandbox's own loopback and a unix socket, while a command runs beside them.

A sandboxed kernel and its lane's sandboxed Spark Connect server (connect_lanes.py) each have a network
namespace of their own, with only their own ``lo``: neither can reach the other's ports. The one thing
they share is a unix socket in the lane's folder, bound into both sandboxes. Inside each, this relay
runs the sandbox's real command as its child:

    python -m scalelab.grading.relay tcp:15002 unix:/LANE/run/connect.sock -- KERNEL...
        the kernel's side: listens on 127.0.0.1:15002 first, so the kernel finds it ready
    python -m scalelab.grading.relay unix:/LANE/run/connect.sock tcp:15002 -- SERVER...
        the server's side: makes the socket once the server accepts connections (its readiness signal)

and exits with the command's status once the command ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
CHUNK = 1 << 16


def _listening(address: str) -> socket.socket:
    kind, _, where = address.partition(":")
    if kind == "tcp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, int(where)))
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(where)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(where)
    sock.listen(64)
    return sock


async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, _, where = address.partition(":")
    if kind == "tcp":
        return await asyncio.open_connection(HOST, int(where))
    return await asyncio.open_unix_connection(where)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _relay(listener: socket.socket, target: str, child: subprocess.Popen) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            other_reader, other_writer = await _open(target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, other_writer), _pipe(other_reader, writer))

    if listener.family == socket.AF_UNIX:
        server = await asyncio.start_unix_server(connection, sock=listener)
    else:
        server = await asyncio.start_server(connection, sock=listener)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, child.wait)


def _accepts(address: str) -> bool:
    port = int(address.partition(":")[2])
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--" or {argv[0].partition(":")[0], argv[1].partition(":")[0]} != {"tcp", "unix"}:
        print("usage: python -m scalelab.grading.relay tcp:PORT unix:PATH -- COMMAND...  (or unix:PATH tcp:PORT)",
              file=sys.stderr)
        return 2
    listen, target, command = argv[0], argv[1], argv[3:]
    if listen.startswith("tcp:"):
        listener = _listening(listen)
        child = subprocess.Popen(command)
    else:
        child = subprocess.Popen(command)
        while not _accepts(target):
            if child.poll() is not None:
                return child.returncode
            time.sleep(0.2)
        listener = _listening(listen)
    try:
        asyncio.run(_relay(listener, target, child))
    except KeyboardInterrupt:
        child.kill()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
