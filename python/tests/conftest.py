"""Fixtures: a real kv-tierd on a private socket (KVT_BIN_DIR/kv-tierd), clients, a small layout.

Environment (set by the ctest registration, tests/integration/python/CMakeLists.txt):
  KVT_BIN_DIR   directory holding kv-tierd
  KVT_LIBRARY   path of libkvtier.so (the package finds it by itself when installed)
"""
from __future__ import annotations

import os
import pathlib
import signal
import socket as socketlib
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))  # import kvtier from the source tree unless installed first

import kvtier  # noqa: E402


def bin_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KVT_BIN_DIR", REPO / "build" / "bin"))


class Daemon:
    """A kv-tierd child process with its own socket and data directory under tmp."""

    def __init__(self, tmp: pathlib.Path, host_capacity: str = "64MiB", extra=()) -> None:
        self.dir = tmp
        self.socket = str(tmp / "kvt.sock")
        self.log_path = tmp / "daemon.log"
        exe = bin_dir() / "kv-tierd"
        if not exe.exists():
            pytest.fail(f"{exe} not found: build kv-tierd and set KVT_BIN_DIR")
        self.args = [str(exe), "--socket", self.socket, "--data-dir", str(tmp / "data"),
                     "--host-capacity", host_capacity, "--metrics-address", "off", *extra]
        self.proc: "subprocess.Popen | None" = None

    def start(self) -> "Daemon":
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"kv-tierd exited with {self.proc.returncode}:\n{self.log()}")
            s = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return self
            except OSError:
                time.sleep(0.01)
            finally:
                s.close()
        pytest.fail(f"kv-tierd did not listen within 10 s:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        if self.proc is None:
            return -1
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("kvtierd")).start()
    yield d
    assert d.alive(), "kv-tierd died during the module's tests:\n" + d.log()
    assert d.stop() == 0, "kv-tierd must exit cleanly on SIGTERM:\n" + d.log()


@pytest.fixture
def fresh_daemon(tmp_path):
    d = Daemon(tmp_path).start()
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    with kvtier.connect(socket=daemon.socket, timeout=10) as c:
        yield c


LAYOUT = kvtier.Layout(model_id="py-test", num_layers=2, num_kv_heads=2, head_dim=16, dtype="f16",
                       tokens_per_chunk=16)  # 2*2*16*2*16*2 bytes = 4 KiB chunks


@pytest.fixture
def ns(client, request):
    # A model id per test keeps tests from seeing each other's chunks.
    layout = kvtier.Layout(**{**LAYOUT.__dict__, "model_id": f"py-{request.node.name}"})
    with client.namespace(layout) as n:
        yield n


def tokens(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 32000, n, dtype=np.uint32)


def kv(ns, seed: int, chunks: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1_000_003)
    # Random bit patterns (NaNs included): the round trip must be bit-exact, not merely close.
    bits = rng.integers(0, 2**16, (chunks,) + ns.chunk_shape, dtype=np.uint16)
    return bits.view(ns.dtype)
