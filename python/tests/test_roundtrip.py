"""numpy arrays through a real kv-tierd: sync, async, batches, pins, operator view."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import kvtier
from conftest import kv, tokens


def test_version_matches_header():
    assert kvtier.version()[0] == kvtier.ABI_MAJOR == 1
    assert kvtier.protocol_version()[0] == 1
    assert kvtier.library_path()


def test_store_lookup_retrieve_round_trip_is_bit_exact(ns):
    t = tokens(1, 5 * 16 + 7)  # 5 whole chunks; the 7 trailing tokens are ignored
    data = kv(ns, 1, 5)
    assert ns.store(t, data) == 5
    assert ns.store(t, data) == 0  # already present
    assert ns.lookup(t) == 80
    out = ns.retrieve(t)
    assert out.shape == (5,) + ns.chunk_shape and out.dtype == np.float16
    assert out.view(np.uint16).tobytes() == data.view(np.uint16).tobytes()


def test_prefix_semantics(ns):
    t = tokens(2, 64)
    ns.store(t[:32], kv(ns, 2, 2))
    assert ns.lookup(t) == 32  # the stored prefix of a longer request
    other = t.copy()
    other[0] ^= 1
    assert ns.lookup(other) == 0  # chained keys: a different first chunk misses everything
    assert ns.retrieve(other).shape[0] == 0  # a miss is not an error
    out = np.zeros((1,) + ns.chunk_shape, np.float16)
    assert ns.retrieve_into(t, out) == 16  # at most out's chunks
    assert out.tobytes() == kv(ns, 2, 2)[:1].tobytes()


def test_accepts_lists_flat_bytes_and_other_integer_dtypes(ns):
    t = tokens(3, 32)
    data = kv(ns, 3, 2)
    assert ns.store([int(x) for x in t], data.tobytes()) == 2  # bytes: the buffer protocol
    assert ns.lookup(t.astype(np.int64)) == 32
    flat = bytearray(2 * ns.chunk_bytes)
    assert ns.retrieve_into(t, flat) == 32
    assert bytes(flat) == data.tobytes()
    flat_u8 = np.zeros(2 * ns.chunk_bytes, np.uint8)
    assert ns.retrieve_into(t, flat_u8) == 32 and flat_u8.tobytes() == data.tobytes()


def test_remove_pin_unpin(ns, client):
    t = tokens(4, 48)
    ns.store(t, kv(ns, 4, 3))
    assert ns.pin(t) == 48
    assert client.stats().pinned_chunks >= 3
    assert ns.unpin(t) == 48
    assert ns.remove(t[:32]) == 2
    assert ns.lookup(t) == 0


def test_async_store_lookup_retrieve(ns):
    t = tokens(5, 64)
    data = kv(ns, 5, 4)
    op = ns.store_async(t, data)
    assert op.wait() == 4
    assert op.done and op.poll() == 4 and op.wait() == 4  # the result stays
    lookup = ns.lookup_async(t)
    while (matched := lookup.poll()) is None:
        pass
    assert matched == 64
    out = ns.empty(4)
    with ns.retrieve_async(t, out) as op:
        assert op.wait(timeout=10) == 64
    assert out.tobytes() == data.tobytes()
    assert "done" in repr(op) or "released" in repr(op)


def test_dropped_pending_op_keeps_its_buffers_alive(ns):
    t = tokens(6, 16 * 8)
    ops = [ns.store_async(t, kv(ns, 6, 8)) for _ in range(4)]  # temporaries: only the ops hold them
    del ops  # released while possibly pending: kvtier keeps the arrays until the client closes
    assert ns.lookup(t) in (0, 128)
    assert ns.retrieve(t).shape[0] in (0, 8)


def test_batches(ns):
    ts = [tokens(100 + i, 32) for i in range(5)]
    kvs = [kv(ns, 100 + i, 2) for i in range(5)]
    assert ns.store_batch(zip(ts[:4], kvs[:4])) == 8
    assert ns.lookup_batch(ts) == [32, 32, 32, 32, 0]
    assert ns.lookup_batch([]) == []
    for t, d in zip(ts[:4], kvs[:4]):
        assert ns.retrieve(t).tobytes() == d.tobytes()


def test_many_threads_share_a_client(client, ns):
    errors = []

    def worker(w: int) -> None:
        try:
            for i in range(20):
                t = tokens(1000 * w + i, 32)
                d = kv(ns, 1000 * w + i, 2)
                ns.store(t, d)
                assert ns.retrieve(t).tobytes() == d.tobytes()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors


def test_stats_namespaces_evict(client, ns):
    t = tokens(7, 32)
    ns.store(t, kv(ns, 7, 2))
    ns.lookup(t)
    s = client.stats()
    assert s.protocol_version >> 16 == 1
    assert s.clients >= 1 and s.host_chunks >= 2 and s.stores >= 1 and s.lookups >= 1
    assert 0.0 <= s.hit_rate <= 1.0
    infos = {i.model_id: i for i in client.list_namespaces()}
    mine = infos[ns.layout.model_id]
    assert (mine.tenant, mine.dtype, mine.tokens_per_chunk, mine.head_dim) == ("default", "f16", 16, 16)
    assert mine.chunks >= 2
    assert client.evict() >= 2  # all unpinned chunks (the test runs as the daemon's user)
    # Evicted from host memory: the host tier is empty; the chunks may live on in the NVMe tier
    # (demoted), and then come back bit-exact.
    assert client.stats().host_chunks == 0
    if ns.lookup(t) == 32:
        assert ns.retrieve(t).tobytes() == kv(ns, 7, 2).tobytes()  # bit-exact (NaNs included)


@pytest.mark.parametrize("dtype,numpy_dtype", [("f32", np.float32), ("bf16", np.uint16),
                                               (np.float16, np.float16)])
def test_other_dtypes(client, dtype, numpy_dtype):
    layout = kvtier.Layout(model_id=f"dtype-{dtype}", num_layers=1, num_kv_heads=1, head_dim=8,
                           dtype=dtype, tokens_per_chunk=4)
    with client.namespace(layout) as n:
        assert n.dtype == numpy_dtype
        assert n.chunk_bytes == 1 * 2 * 4 * 1 * 8 * np.dtype(numpy_dtype).itemsize
        t = tokens(8, 8)
        data = np.random.default_rng(8).integers(0, 255, 2 * n.chunk_bytes, dtype=np.uint8)
        arr = data.view(numpy_dtype).reshape((2,) + n.chunk_shape)
        assert n.store(t, arr) == 2
        assert n.retrieve(t).tobytes() == data.tobytes()
