"""A Python engine process killed (SIGKILL) mid-stream leaves the daemon healthy: its pins and
buffers are released, other clients carry on, and the daemon still shuts down cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import kvtier
from conftest import REPO, kv, tokens

WORKER = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, sys.argv[2])
    import kvtier
    c = kvtier.connect(socket=sys.argv[1])
    ns = c.namespace(model_id="victim", num_layers=2, num_kv_heads=2, head_dim=16, tokens_per_chunk=16)
    rng = np.random.default_rng(0)
    buf = ns.empty(16)                                    # shared heap in use
    first = rng.integers(0, 32000, 256, dtype=np.uint32)
    buf[...] = 1
    ns.store(first, buf)
    ns.pin(first)                                         # a lease the daemon must drop
    print("ready", flush=True)
    ops = []
    i = 0
    while True:                                           # stream async stores until killed
        t = rng.integers(0, 32000, 256, dtype=np.uint32)
        ops.append(ns.store_async(t, buf))
        if len(ops) > 32:
            ops.pop(0).wait()
        i += 1
""")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_sigkill_mid_stream_leaves_daemon_healthy(fresh_daemon):
    d = fresh_daemon
    with kvtier.connect(socket=d.socket) as observer:
        ns = observer.namespace(model_id="bystander", num_layers=2, num_kv_heads=2, head_dim=16,
                                tokens_per_chunk=16)
        t = tokens(1, 64)
        data = kv(ns, 1, 4)
        ns.store(t, data)
        assert ns.pin(t) == 64  # the victims' streams would evict it otherwise (LRU)
        victims = []
        for _ in range(3):
            p = subprocess.Popen([sys.executable, "-c", WORKER, d.socket, str(REPO / "python")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ})
            line = p.stdout.readline()
            assert line.strip() == "ready", p.stderr.read()
            victims.append(p)
        assert wait_for(lambda: observer.stats().clients == 4)
        assert observer.stats().pinned_chunks >= 4 + 16
        time.sleep(0.2)  # let the streams run
        for p in victims:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            assert p.returncode == -signal.SIGKILL

        assert d.alive(), d.log()
        assert wait_for(lambda: observer.stats().clients == 1), observer.stats()
        # The session's client count drops as its thread ends, just before its lease is released.
        assert wait_for(lambda: observer.stats().pinned_chunks == 4), \
            f"the dead clients' pins must be released (only ours stay): {observer.stats()}"
        assert observer.stats().stores > 0
        # Everyone else is served as before, and what was stored is intact.
        assert ns.retrieve(t).tobytes() == data.tobytes()
        t2 = tokens(2, 64)
        assert ns.store(t2, kv(ns, 2, 4)) == 4
        assert observer.evict() > 0  # the victims' chunks are evictable: nothing of theirs stays pinned
        assert ns.retrieve(t).tobytes() == data.tobytes()  # ours are pinned
        with kvtier.connect(socket=d.socket) as again:  # new clients get in
            assert again.stats().clients == 2
    assert d.stop() == 0, "kv-tierd must exit cleanly after losing clients:\n" + d.log()
