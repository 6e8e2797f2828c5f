"""The GPU tier from Python against kv-tierd --gpu-pool-simulated (the pool kept in host memory:
pins, offsets and eviction behave as on a GPU; only mapping the pool is impossible), and against a
daemon without a pool."""
from __future__ import annotations

import numpy as np
import pytest

import kvtier
from conftest import Daemon, kv, tokens

POOL_BYTES = 64 * 4096  # 64 chunks of the 4 KiB test layout


@pytest.fixture
def gpu_ns(tmp_path):
    d = Daemon(tmp_path, extra=("--gpu-pool-bytes", str(POOL_BYTES), "--gpu-pool-simulated", "--nvme", "off")).start()
    with kvtier.connect(socket=d.socket, timeout=10) as c:
        with c.namespace(model_id="py-gpu", num_layers=2, num_kv_heads=2, head_dim=16, dtype="f16",
                         tokens_per_chunk=16) as n:
            yield c, n
    assert d.stop() == 0, d.log()


def test_pin_reports_distinct_pool_offsets_and_unpin_balances(gpu_ns):
    client, ns = gpu_ns
    t = tokens(1, 5 * ns.tokens_per_chunk)
    assert ns.store(t, kv(ns, 1, 5)) == 5
    with pytest.raises(kvtier.Unsupported):
        client.map_gpu_pool()  # simulated pool: nothing to map
    pins = ns.gpu_pin(t, max_chunks=3)
    assert pins.tokens == 3 * ns.tokens_per_chunk
    assert len(pins.offsets) == 3
    assert len(set(pins.offsets)) == 3
    for off in pins.offsets:
        assert off % ns.chunk_bytes == 0 and off + ns.chunk_bytes <= POOL_BYTES
    assert client.stats().gpu_pinned_chunks == 3
    again = ns.gpu_pin(t)  # every present chunk; the first three keep their places
    assert again.tokens == t.size and again.offsets[:3] == pins.offsets
    assert ns.gpu_unpin(t) == t.size
    assert ns.gpu_unpin(t) == 3 * ns.tokens_per_chunk  # the first three held two pins each
    assert client.stats().gpu_pinned_chunks == 0
    assert np.array_equal(ns.retrieve(t).view(np.uint16), kv(ns, 1, 5).view(np.uint16))  # bits: NaNs included


def test_a_miss_pins_nothing(gpu_ns):
    _, ns = gpu_ns
    pins = ns.gpu_pin(tokens(2, 2 * ns.tokens_per_chunk))
    assert pins.tokens == 0 and pins.offsets == []


def test_full_pool_raises_with_the_pins_it_made(gpu_ns):
    client, ns = gpu_ns
    chunks = POOL_BYTES // ns.chunk_bytes
    a = tokens(3, (chunks - 2) * ns.tokens_per_chunk)
    b = tokens(4, 4 * ns.tokens_per_chunk)
    ns.store(a, kv(ns, 3, chunks - 2))
    ns.store(b, kv(ns, 4, 4))
    assert ns.gpu_pin(a).tokens == a.size
    with pytest.raises(kvtier.ResourceExhausted) as e:
        ns.gpu_pin(b)
    assert e.value.pins.tokens == 2 * ns.tokens_per_chunk and len(e.value.pins.offsets) == 2
    assert ns.gpu_unpin(b) == 2 * ns.tokens_per_chunk
    assert ns.gpu_unpin(a) == a.size
    assert client.stats().gpu_pinned_chunks == 0


def test_bad_arguments(gpu_ns):
    _, ns = gpu_ns
    with pytest.raises(kvtier.InvalidArgument):
        ns.gpu_pin(tokens(5, 16), max_chunks=-1)


def test_without_a_pool_every_call_is_unsupported(client, ns):
    t = tokens(6, 2 * ns.tokens_per_chunk)
    ns.store(t, kv(ns, 6, 2))
    with pytest.raises(kvtier.Unsupported):
        client.map_gpu_pool()
    with pytest.raises(kvtier.Unsupported):
        ns.gpu_pin(t)
    assert ns.lookup(t) == t.size  # and the host path is untouched
