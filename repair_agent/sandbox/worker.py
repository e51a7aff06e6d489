"""The host's side of the warm test worker (`tools/warm_worker.py`, which runs in the warm
container): start it through the Docker API with its stdin attached, send it one JSON request per
line, read its answers from Docker's multiplexed stream; and say which candidates it cannot take."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import PurePosixPath

# files that change how pytest starts or what is installed: the worker imported those once
from .tools.warm_worker import STARTUP_FILES

SCRIPT = "warm_worker.py"


class WorkerDied(Exception):
    """The worker exited, garbled its answer, or gave none before the deadline."""


def refusal(overlay: dict[str, str] | None) -> str:
    """Why the worker cannot run tests with this overlay ("" when it can)."""
    for rel in overlay or {}:
        name = PurePosixPath(rel).name
        if name in STARTUP_FILES:
            return f"the candidate changes {rel}"
        if not name.endswith(".py"):
            return f"the candidate changes {rel}, which is not Python source"
    return ""


class JsonLines:
    """One JSON line each way per request. A transport gives `_send(data)` and `_read(deadline)`
    (the next bytes of the worker's stdout, maybe none) and calls `_hello` once started."""

    _out = b""

    def _hello(self, start_timeout: float) -> None:
        try:
            self.hello = self._answer(time.monotonic() + start_timeout)  # after its imports
        except WorkerDied:
            self.close()
            raise

    def request(self, msg: dict, timeout: float) -> dict:
        try:
            self._send(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            raise WorkerDied(f"could not send it the request ({exc})") from exc
        return self._answer(time.monotonic() + timeout)

    def _answer(self, deadline: float) -> dict:
        while b"\n" not in self._out:
            self._out += self._read(deadline)
        line, _, self._out = self._out.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError as exc:
            raise WorkerDied(f"it sent a garbled answer: {line[:200]!r}") from exc


class Worker(JsonLines):
    """One worker process in one container, for the length of a task.

    `exec_start(socket=True)` hands over the exec's raw socket: requests are written to it (the
    worker's stdin) and its output comes back in Docker's frames (8-byte header: stream, size)."""

    def __init__(self, api, container_id: str, cmd: list[str], start_timeout: float = 300):
        self.container_id = container_id
        exec_id = api.exec_create(container_id, cmd, stdin=True, stdout=True, stderr=True,
                                  workdir="/workspace")["Id"]
        self._io = api.exec_start(exec_id, socket=True)
        self._sock = getattr(self._io, "_sock", self._io)  # the socket under docker's SocketIO
        self._pending, self._err = bytearray(), bytearray()
        self._hello(start_timeout)

    def _send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        try:  # its stdin ends: the worker leaves its loop and exits
            self._io.close()
            self._sock.close()
        except OSError:
            pass

    def _read(self, deadline: float) -> bytes:
        """One frame: stdout's bytes, or none where it was stderr's (kept for the exit message)."""
        stream, size = struct.unpack(">BxxxL", self._recv(8, deadline))
        data = self._recv(size, deadline)
        if stream == 2:
            self._err = (self._err + data)[-4096:]
            return b""
        return data

    def _recv(self, n: int, deadline: float) -> bytes:
        while len(self._pending) < n:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise socket.timeout
                self._sock.settimeout(left)
                chunk = self._sock.recv(1 << 16)
            except socket.timeout:
                raise WorkerDied("it gave no answer before the deadline") from None
            except OSError as exc:
                raise WorkerDied(f"its connection failed ({exc})") from exc
            if not chunk:
                last = bytes(self._err).decode(errors="replace").strip().splitlines()[-1:]
                raise WorkerDied("it exited" + (f": {last[0][:300]}" if last else ""))
            self._pending += chunk
        data = bytes(self._pending[:n])
        del self._pending[:n]
        return data
