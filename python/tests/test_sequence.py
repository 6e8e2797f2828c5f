"""The sequence plane from Python (kvtier.Sequence over kvt_sequence_*): results checked against a
numpy reference, suspend/resume bit-exact, every bad input a kvtier exception, DLPack in and out
without copies, and the figures an attached sequence reports to a real kv-tierd (Client.stats()
and `kvtierctl stats`), also after its process is killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import kvtier
from conftest import REPO, bin_dir
from test_buffers import FakeTensor

Q_HEADS, KV_HEADS, HEAD_DIM = 4, 2, 32
FP16_KV_BYTES_PER_TOKEN = 2 * KV_HEADS * HEAD_DIM * 2  # K and V, fp16

PLAN = f"""kvt-sequence-plan 1
model py-seq
shape layers=4,q_heads={Q_HEADS},kv_heads={KV_HEADS},head_dim={HEAD_DIM}
layer 0 full
layer 1 kivi bits=4,group=32,residual=32
layer 2 offload
layer 3 sparse budget=64,sinks=4,recent=16,channels=4,scorer=channels   # 44 tokens gathered
"""


def rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def reference_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Grouped-query softmax(q k^T / sqrt(d)) v over fp16-rounded K/V (what a full layer keeps)."""
    k = k.astype(np.float16).astype(np.float64)
    v = v.astype(np.float16).astype(np.float64)
    group = Q_HEADS // KV_HEADS
    out = np.empty((Q_HEADS, HEAD_DIM))
    for h in range(Q_HEADS):
        kh, vh = k[:, h // group, :], v[:, h // group, :]
        s = kh @ q[h].astype(np.float64) / np.sqrt(HEAD_DIM)
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ vh
    return out


def prefill(seq: kvtier.Sequence, tokens: int = 256, seed: int = 0):
    k, v = rand(seed, tokens, KV_HEADS, HEAD_DIM), rand(seed + 1, tokens, KV_HEADS, HEAD_DIM)
    for layer in range(seq.num_layers):
        assert seq.append(layer, k, v) == tokens
    return k, v


def decode(seq: kvtier.Sequence, steps: int, seed: int = 100):
    outs = []
    for s in range(steps):
        k, v = rand(seed + 3 * s, KV_HEADS, HEAD_DIM), rand(seed + 3 * s + 1, KV_HEADS, HEAD_DIM)
        q = rand(seed + 3 * s + 2, Q_HEADS, HEAD_DIM)
        for layer in range(seq.num_layers):
            if layer + 1 < seq.num_layers:
                seq.hint_next(layer + 1, q)
            seq.append(layer, k, v)  # [kv_heads, head_dim]: one token
            outs.append(seq.attend(layer, q))
    return outs


def test_plan_shape_and_a_full_layer_matches_numpy():
    with kvtier.Sequence(PLAN) as seq:
        assert (seq.num_layers, seq.q_heads, seq.kv_heads, seq.head_dim) == (4, Q_HEADS, KV_HEADS, HEAD_DIM)
        assert seq.policies == ["full", "kivi", "offload", "sparse"]
        assert seq.kv_shape == (KV_HEADS, HEAD_DIM) and seq.query_shape == (Q_HEADS, HEAD_DIM)
        k, v = prefill(seq, 100)
        q = rand(7, Q_HEADS, HEAD_DIM)
        for layer in (0, 2):  # full and offload keep every token in fp16
            out = seq.attend(layer, q)
            assert out.dtype == np.float32 and out.shape == (Q_HEADS, HEAD_DIM)
            np.testing.assert_allclose(out, reference_attention(q, k, v), rtol=1e-4, atol=1e-5)
        # KIVI quantizes: close to the reference, not equal.
        kivi = seq.attend(1, q)
        assert 0 < np.abs(kivi - reference_attention(q, k, v)).max() < 0.5


def test_select_returns_the_stored_fp16_kv(tmp_path):
    path = tmp_path / "plan.txt"
    path.write_text(PLAN)
    with kvtier.Sequence(path) as seq:  # a plan file works too
        k, v = prefill(seq, 300)
        segs = seq.select(0, rand(3, Q_HEADS, HEAD_DIM))
        assert len(segs) == 1
        assert segs[0].keys.dtype == np.float16 and segs[0].keys.shape == (300, KV_HEADS, HEAD_DIM)
        assert segs[0].keys.tobytes() == k.astype(np.float16).tobytes()
        assert segs[0].values.tobytes() == v.astype(np.float16).tobytes()
        sparse = seq.select(3, rand(3, Q_HEADS, HEAD_DIM))  # sinks, gathered dominant tokens, recent
        assert [s.keys.shape[0] for s in sparse] == [4, 44, 16]
        assert sparse[0].keys.tobytes() == k[:4].astype(np.float16).tobytes()
        assert sparse[2].values.tobytes() == v[-16:].astype(np.float16).tobytes()


def test_suspend_resume_is_bit_exact():
    with kvtier.Sequence(PLAN) as a, kvtier.Sequence(PLAN) as b:
        prefill(a, 200)
        prefill(b, 200)
        image = a.suspend()
        assert a.suspended and isinstance(image, bytes) and len(image) > 0
        with pytest.raises(kvtier.Unsupported, match="suspended"):
            a.attend(0, rand(1, Q_HEADS, HEAD_DIM))
        a.resume(bytearray(image))
        assert not a.suspended
        for x, y in zip(decode(a, 3), decode(b, 3)):
            assert x.tobytes() == y.tobytes()


def test_suspend_to_file_resumes_bit_exact(tmp_path):
    path = tmp_path / "seq.kvtq"
    with kvtier.Sequence(PLAN) as a, kvtier.Sequence(PLAN) as b:
        prefill(a, 200)
        prefill(b, 200)
        a.suspend_to_file(path)
        assert a.suspended and path.stat().st_size > 0
        assert not (tmp_path / "seq.kvtq.partial").exists()
        with pytest.raises(kvtier.Unsupported, match="suspended"):
            a.attend(0, rand(1, Q_HEADS, HEAD_DIM))
        cut = tmp_path / "cut"
        cut.write_bytes(path.read_bytes()[:1000])
        with pytest.raises(kvtier.Corruption, match="truncated"):
            a.resume_from_file(cut)
        with pytest.raises(kvtier.InvalidArgument, match="not a sequence suspend file"):
            a.resume_from_file(__file__)
        assert a.suspended
        a.resume_from_file(str(path))
        assert not a.suspended
        for x, y in zip(decode(a, 3), decode(b, 3)):
            assert x.tobytes() == y.tobytes()


def test_bad_inputs_raise_kvtier_errors():
    with pytest.raises(kvtier.InvalidArgument, match="unknown layer kind 'nonsense'"):
        kvtier.Sequence("kvt-sequence-plan 1\nshape layers=1\nlayer 0 nonsense\n")
    with pytest.raises(kvtier.InvalidArgument):
        kvtier.Sequence("kvt-sequence-plan 1\nshape layers=1,q_heads=3,kv_heads=2,head_dim=8\nlayer 0 full\n")
    with pytest.raises(kvtier.InvalidArgument, match="no-such-plan"):
        kvtier.Sequence("/no-such-plan.txt")
    seq = kvtier.Sequence(PLAN)
    k = rand(1, 8, KV_HEADS, HEAD_DIM)
    q = rand(2, Q_HEADS, HEAD_DIM)
    with pytest.raises(kvtier.InvalidArgument, match="layer 4 outside"):
        seq.append(4, k, k)
    with pytest.raises(kvtier.InvalidArgument, match="shape"):
        seq.append(0, rand(1, 8, KV_HEADS + 1, HEAD_DIM), rand(1, 8, KV_HEADS + 1, HEAD_DIM))
    with pytest.raises(kvtier.InvalidArgument, match="differ"):
        seq.append(0, k, k[:4])
    with pytest.raises(kvtier.InvalidArgument, match="float32"):
        seq.append(0, k.astype(np.float16), k.astype(np.float16))
    with pytest.raises(kvtier.InvalidArgument, match="C-contiguous"):
        seq.append(0, rand(1, 8, KV_HEADS, 2 * HEAD_DIM)[:, :, ::2], k)
    with pytest.raises(kvtier.InvalidArgument, match="holds no tokens"):
        seq.attend(0, q)  # from libkvtier: nothing appended yet
    seq.append(0, k, k)
    with pytest.raises(kvtier.InvalidArgument, match="shape"):
        seq.attend(0, q[:1])
    with pytest.raises(kvtier.InvalidArgument, match="float32"):
        seq.attend(0, q, out=np.empty((Q_HEADS, HEAD_DIM), np.float64))
    with pytest.raises(kvtier.InvalidArgument, match="read-only"):
        ro = np.empty((Q_HEADS, HEAD_DIM), np.float32)
        ro.flags.writeable = False
        seq.attend(0, q, out=ro)
    with pytest.raises(kvtier.InvalidArgument, match="no GPU tier"):
        seq.attend(0, FakeTensor(q, device=(2, 0)))  # a CUDA tensor
    seq.suspend()
    with pytest.raises(kvtier.Unsupported):
        seq.suspend()
    with pytest.raises(kvtier.Corruption):
        seq.resume(b"not an image at all")
    seq.close()
    seq.close()  # idempotent
    with pytest.raises(kvtier.InvalidArgument, match="closed"):
        seq.attend(0, q)


def test_dlpack_tensors_in_and_out_without_copies():
    with kvtier.Sequence(PLAN) as seq:
        k, v = rand(1, 64, KV_HEADS, HEAD_DIM), rand(2, 64, KV_HEADS, HEAD_DIM)
        seq.append(0, FakeTensor(k), FakeTensor(v))
        q = rand(3, Q_HEADS, HEAD_DIM)
        target = np.zeros((Q_HEADS, HEAD_DIM), np.float32)
        out_tensor = FakeTensor(target)
        assert seq.attend(0, FakeTensor(q), out=out_tensor) is out_tensor
        np.testing.assert_allclose(target, reference_attention(q, k, v), rtol=1e-4, atol=1e-5)
        own = np.empty((Q_HEADS, HEAD_DIM), np.float32)
        assert seq.attend(0, memoryview(q), out=own) is own  # the buffer protocol too


def kvtierctl_stats(socket: str) -> dict:
    out = subprocess.run([str(bin_dir() / "kvtierctl"), "--socket", socket, "stats", "--json"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_attached_sequences_report_to_the_daemon(fresh_daemon):
    d = fresh_daemon
    with kvtier.connect(socket=d.socket, tenant="seq") as client:
        before = client.stats()
        assert before.sequences == 0 and before.fetch_steps == 0
        seq = kvtier.Sequence(PLAN, client=client)
        prefill(seq, 256)
        decode(seq, 5)
        s = client.stats()
        assert s.sequences == 1
        per_token = s.policy_bytes_per_token
        assert per_token["full"] == FP16_KV_BYTES_PER_TOKEN
        assert per_token["offload"] == FP16_KV_BYTES_PER_TOKEN
        assert 0 < per_token["kivi"] < FP16_KV_BYTES_PER_TOKEN
        assert per_token["sparse"] >= FP16_KV_BYTES_PER_TOKEN
        assert s.policy_layer_tokens == (261, 261, 261, 261)
        assert s.fetch_steps == 2 * 5  # offload and sparse, each step
        offload = sum(t * FP16_KV_BYTES_PER_TOKEN for t in range(257, 262))
        assert s.fetch_bytes == offload + 5 * 44 * FP16_KV_BYTES_PER_TOKEN
        assert s.transfer_hidden_ns + s.transfer_exposed_ns > 0
        assert 0.0 <= s.transfer_hidden_share <= 1.0

        table = subprocess.run([str(bin_dir() / "kvtierctl"), "--socket", d.socket, "stats"],
                               capture_output=True, text=True, timeout=20)
        assert table.returncode == 0, table.stderr
        assert "sequences: 1 open" in table.stdout and "in 10 steps" in table.stdout, table.stdout
        assert "sparse" in table.stdout and "bytes/token" in table.stdout, table.stdout
        ctl = kvtierctl_stats(d.socket)["sequence_plane"]
        assert ctl["sequences"] == 1 and ctl["fetch_steps"] == 10
        assert ctl["policies"]["full"] == {"bytes": s.policy_bytes[0], "layer_tokens": 261}

        # Suspended: holds nothing; resumed: holds it again.
        image = seq.suspend()
        assert client.stats().policy_bytes == (0, 0, 0, 0)
        seq.resume(image)
        resumed = client.stats()
        assert resumed.policy_bytes[:3] == s.policy_bytes[:3]  # full, offload, kivi: the same bytes
        # sparse counts its transposed key copy by capacity, which a resume sizes to fit
        assert resumed.policy_bytes_per_token["sparse"] >= FP16_KV_BYTES_PER_TOKEN
        assert resumed.policy_layer_tokens == s.policy_layer_tokens

        # A second sequence adds; detaching and closing withdraw the gauges, totals stay.
        with kvtier.Sequence(PLAN, client=client) as other:
            prefill(other, 10)
            assert client.stats().sequences == 2
            other.attach(None)
            assert client.stats().sequences == 1
        seq.close()
        after = client.stats()
        assert after.sequences == 0 and after.policy_bytes == (0, 0, 0, 0)
        assert after.fetch_steps == 10 and after.fetch_bytes == s.fetch_bytes
    # The counters outlive the session that reported them.
    with kvtier.connect(socket=d.socket) as observer:
        assert observer.stats().fetch_steps == 10


def test_a_sequence_outlives_its_client(fresh_daemon):
    client = kvtier.connect(socket=fresh_daemon.socket)
    seq = kvtier.Sequence(PLAN, client=client)
    prefill(seq, 64)
    client.close()  # reporting stops; the sequence keeps working
    decode(seq, 2)
    seq.close()
    assert fresh_daemon.alive()


VICTIM = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, sys.argv[2])
    import kvtier
    c = kvtier.connect(socket=sys.argv[1], tenant="victim")
    s = kvtier.Sequence(sys.argv[3], client=c)
    rng = np.random.default_rng(0)
    k = rng.standard_normal((128, 2, 32)).astype(np.float32)
    for layer in range(s.num_layers):
        s.append(layer, k, k)
    print("ready", flush=True)
    q = rng.standard_normal((4, 32)).astype(np.float32)
    while True:                                            # decode until killed
        for layer in range(s.num_layers):
            s.append(layer, k[0], k[0])
            s.attend(layer, q)
""")


def test_sigkill_of_a_reporting_process_leaves_the_daemon_healthy(fresh_daemon):
    d = fresh_daemon
    p = subprocess.Popen([sys.executable, "-c", VICTIM, d.socket, str(REPO / "python"), PLAN],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        with kvtier.connect(socket=d.socket) as observer:
            deadline = time.monotonic() + 10
            while observer.stats().fetch_steps < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert observer.stats().sequences == 1
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
            # The session leaves the client count, then retires its figures: wait for both.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                s = observer.stats()
                if s.clients == 1 and s.sequences == 0:
                    break
                time.sleep(0.02)
            s = observer.stats()
            assert s.clients == 1 and s.sequences == 0 and s.policy_bytes == (0, 0, 0, 0)
            assert s.fetch_steps >= 20  # what it reported stays counted
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert d.alive(), d.log()


def test_default_socket_path_is_libkvtiers(monkeypatch, tmp_path):
    monkeypatch.setenv("KVT_SOCKET", str(tmp_path / "explicit.sock"))
    assert kvtier.default_socket_path() == str(tmp_path / "explicit.sock")
    monkeypatch.delenv("KVT_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    system = "/run/kv-tierd/kv-tierd.sock"
    import stat
    try:
        is_system = stat.S_ISSOCK(os.stat(system).st_mode)
    except OSError:
        is_system = False
    assert kvtier.default_socket_path() == (system if is_system else str(tmp_path / "kv-tierd.sock"))
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    if not is_system:
        assert kvtier.default_socket_path() == f"/tmp/kv-tierd-{os.getuid()}.sock"


def test_connect_without_a_socket_uses_the_default_path(daemon, monkeypatch):
    monkeypatch.delenv("KVT_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", os.path.dirname(daemon.socket))
    os.symlink(daemon.socket, os.path.join(os.path.dirname(daemon.socket), "kv-tierd.sock"))
    try:
        if kvtier.default_socket_path() == "/run/kv-tierd/kv-tierd.sock":
            pytest.skip("a system kv-tierd runs on this machine: connect() would reach it first")
        with kvtier.connect() as c:
            assert c.stats().clients >= 1
    finally:
        os.unlink(os.path.join(os.path.dirname(daemon.socket), "kv-tierd.sock"))


def test_tale_and_kvcompose_layers_observe():
    """C ABI 1.4: plan kinds tale and kvcompose; observe compresses them, select is unsupported."""
    plan = ("kvt-sequence-plan 1\nshape layers=2,q_heads=8,kv_heads=2,head_dim=16\n"
            "layer 0 tale window=8,sinks=2\nlayer 1 kvcompose ratio=0.25\n")
    rng = np.random.default_rng(7)
    seq = kvtier.Sequence(plan)
    keys = rng.standard_normal((40, 2, 16), dtype=np.float32)
    values = rng.standard_normal((40, 2, 16), dtype=np.float32)
    for layer in range(2):
        seq.append(layer, keys, values)
        seq.observe(layer, rng.standard_normal((4, 8, 16), dtype=np.float32))
        out = seq.attend(layer, rng.standard_normal((8, 16), dtype=np.float32))
        assert np.isfinite(out).all()
        with pytest.raises(kvtier.Unsupported):
            seq.select(layer, rng.standard_normal((8, 16), dtype=np.float32))
    with pytest.raises(kvtier.InvalidArgument):
        seq.observe(0, np.zeros((8, 16), np.float32))
    image = seq.suspend()
    seq.resume(image)
    assert np.isfinite(seq.attend(1, rng.standard_normal((8, 16), dtype=np.float32))).all()


def test_in_client_sequence_matches_a_local_one_and_outlives_client_close(fresh_daemon):
    """in_client=True (C ABI 1.5): the host tier in the client's shared heap, bit-equal to a
    process-local sequence; client.close() waits for it; a tiny heap raises ResourceExhausted."""
    client = kvtier.connect(socket=fresh_daemon.socket)
    shared = kvtier.Sequence(PLAN, client=client, in_client=True)
    with kvtier.Sequence(PLAN) as local:
        prefill(local, 300)
        prefill(shared, 300)
        for a, b in zip(decode(local, 4), decode(shared, 4)):
            assert np.any(a != 0)
            assert np.array_equal(a, b)
    # The daemon's figures show the heap the host tier holds (ABI 1.6).
    assert client.stats().sequence_host_tier_heap_bytes >= 300 * KV_HEADS * HEAD_DIM * 2 * 2
    client.close()  # the C client stays open for the sequence
    decode(shared, 1)
    shared.close()
    with pytest.raises(kvtier.InvalidArgument):
        kvtier.Sequence(PLAN, in_client=True)

    small = kvtier.connect(socket=fresh_daemon.socket, heap_bytes=1 << 20)
    with kvtier.Sequence(PLAN, client=small, in_client=True) as seq:
        k = rand(5, 512, KV_HEADS, HEAD_DIM)
        with pytest.raises(kvtier.ResourceExhausted, match="heap_bytes"):
            for _ in range(64):
                seq.append(2, k, k)  # the offload layer grows until the heap is full
        seq.attend(2, rand(6, Q_HEADS, HEAD_DIM))  # what was stored still attends
    small.close()
