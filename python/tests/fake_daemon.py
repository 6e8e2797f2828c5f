"""A fake kv-tierd for handshake tests: it answers the HelloRequest with a chosen HelloReply
(protocol/handshake.h) and passes no fds — or never answers at all."""
from __future__ import annotations

import os
import socket
import struct
import threading

HELLO_REQUEST_BYTES = 88
REPLY_MAGIC = 0x4B565452  # "KVTR"
# magic, protocol_version, status, ring_entries, region_bytes, sq_offset, cq_offset,
# messages_offset, heap_offset, heap_bytes, session_id, message[256]
REPLY = struct.Struct("<IIII7Q256s")
assert REPLY.size == 328


class FakeDaemon:
    def __init__(self, path: str, *, magic: int = REPLY_MAGIC, protocol_version: int = 1 << 16,
                 status: int = 0, message: str = "", silent: bool = False) -> None:
        self.path = path
        self.reply = REPLY.pack(magic, protocol_version, status, 0, 0, 0, 0, 0, 0, 0, 0,
                                message.encode()[:255])
        self.silent = silent
        self.hellos: list = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self._stop = threading.Event()
        self._conns: list = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._conns.append(conn)
            data = b""
            while len(data) < HELLO_REQUEST_BYTES:
                chunk = conn.recv(HELLO_REQUEST_BYTES - len(data))
                if not chunk:
                    break
                data += chunk
            self.hellos.append(data)
            if not self.silent:
                conn.sendall(self.reply)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        for c in self._conns:
            c.close()
        self.sock.close()
        os.unlink(self.path)

    def __enter__(self) -> "FakeDaemon":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
