"""Zero-copy buffers (kvt_buffer_alloc as numpy arrays), the buffer protocol and DLPack."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import kvtier
from conftest import kv, tokens


class FakeTensor:
    """A minimal DLPack producer (what torch.Tensor offers), backed by a numpy array."""

    def __init__(self, array: np.ndarray, device=(1, 0)) -> None:
        self.array = array
        self.device = device

    def __dlpack__(self, stream=None):
        return self.array.__dlpack__()

    def __dlpack_device__(self):
        return self.device


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_shared_arrays_round_trip_in_place(ns):
    t = tokens(1, 64)
    src = ns.empty(4)
    assert src.shape == (4,) + ns.chunk_shape and src.dtype == np.float16
    assert address(src) % 4096 == 0  # 4 KiB aligned, in the client's shared heap
    src[...] = kv(ns, 1, 4)
    assert ns.store(t, src) == 4
    dst = ns.empty(4)
    assert ns.retrieve_into(t, dst) == 64
    assert dst.tobytes() == src.tobytes()
    assert not np.shares_memory(src, dst)


def test_shared_buffer_is_freed_when_its_last_view_goes(client):
    before = client.empty(1 << 20)
    addr = address(before)
    view = before[4096:]
    del before
    gc.collect()
    again = client.empty(1 << 20)
    assert address(again) != addr  # still held by `view`
    del view, again
    gc.collect()
    # Everything freed: the whole default heap (64 MiB) can be taken again, twice over in turns.
    for _ in range(2):
        big = client.empty(48 << 20)
        del big
        gc.collect()


def test_heap_exhaustion_is_resource_exhausted(daemon):
    with kvtier.connect(socket=daemon.socket, heap_bytes=4 << 20) as c:
        keep = c.empty(3 << 20)
        with pytest.raises(kvtier.ResourceExhausted) as e:
            c.empty(3 << 20)
        assert e.value.status == kvtier.Status.RESOURCE_EXHAUSTED and e.value.message
        del keep


def test_shared_arrays_outlive_close(daemon):
    c = kvtier.connect(socket=daemon.socket)
    ns = c.namespace(model_id="outlive", num_layers=1, num_kv_heads=1, head_dim=8, tokens_per_chunk=4)
    arr = ns.empty(2)
    arr[...] = 1.5
    c.close()
    assert c.closed
    assert float(arr.sum()) == 1.5 * arr.size  # still mapped: the connection closes with the last view
    with pytest.raises(kvtier.InvalidArgument, match="closed"):
        ns.lookup([1, 2, 3, 4])
    del arr
    gc.collect()


def test_dlpack_producer_in_and_out_without_copies(ns):
    t = tokens(2, 32)
    data = kv(ns, 2, 2)
    assert ns.store(t, FakeTensor(data)) == 2
    target = np.zeros_like(data)
    assert ns.retrieve_into(t, FakeTensor(target)) == 32
    assert target.tobytes() == data.tobytes()  # written into the producer's own memory
    assert ns.lookup(FakeTensor(t)) == 32  # DLPack integer tokens too


def test_shared_arrays_export_dlpack(ns):
    arr = ns.empty(1)
    view = np.from_dlpack(arr)  # what torch.from_dlpack(arr) does: no copy
    assert np.shares_memory(view, arr)


def test_device_tensors_are_refused_clearly(ns):
    gpu = FakeTensor(kv(ns, 3, 1), device=(2, 0))  # kDLCUDA
    with pytest.raises(kvtier.InvalidArgument, match="host memory"):
        ns.store(tokens(3, 16), gpu)


def test_no_hidden_copies_for_non_contiguous_or_read_only(ns):
    t = tokens(4, 32)
    data = kv(ns, 4, 4)[::2]  # two chunks, strided
    with pytest.raises(kvtier.InvalidArgument, match="C-contiguous"):
        ns.store(t, data)
    ro = np.zeros((2,) + ns.chunk_shape, np.float16)
    ro.flags.writeable = False
    with pytest.raises(kvtier.InvalidArgument, match="read-only"):
        ns.retrieve_into(t, ro)
    with pytest.raises(kvtier.InvalidArgument, match="read-only"):
        ns.retrieve_into(t, bytes(2 * ns.chunk_bytes))
