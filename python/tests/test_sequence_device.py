"""GPU sequences from Python (Sequence(plan, device=...), append_on_device / attend_on_device /
select_on_device, C ABI 1.3/1.5) on any machine: opening on a device without one raises the
documented Unsupported; device buffers (int pointers, __cuda_array_interface__ objects) and streams
are validated with clear InvalidArgument errors before libkvtier sees them; a CPU sequence refuses
the device calls with Unsupported before touching the pointers. With a CUDA device and libcudart
loadable through ctypes, the device calls are also checked against the host-pointer calls
(test_device_calls_match_host_calls; skipped, visibly, otherwise)."""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
import pytest

import kvtier
from kvtier._device import DeviceArrayView, device_buffer, stream_handle

Q_HEADS, KV_HEADS, HEAD_DIM = 4, 2, 32

PLAN = f"""kvt-sequence-plan 1
model py-seq-device
shape layers=4,q_heads={Q_HEADS},kv_heads={KV_HEADS},head_dim={HEAD_DIM}
layer 0 full
layer 1 kivi bits=4,group=32,residual=32
layer 2 offload
layer 3 sparse budget=64,sinks=4,recent=16,channels=4,scorer=sketch,sketch_bits=2,sketch_group=32
"""


class FakeCudaArray:
    """Just the __cuda_array_interface__ of a device array (never dereferenced by these tests)."""

    def __init__(self, shape, typestr="<f4", ptr=0x7F0000001000, strides=None, readonly=False, stream=None):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (ptr, readonly),
                                         "strides": strides, "version": 3, "stream": stream}


class FakeStream:
    def __init__(self, handle: int) -> None:
        self.cuda_stream = handle


def kv(tokens: int = 3, **kw) -> FakeCudaArray:
    return FakeCudaArray((tokens, KV_HEADS, HEAD_DIM), **kw)


def query(**kw) -> FakeCudaArray:
    return FakeCudaArray((Q_HEADS, HEAD_DIM), **kw)


@pytest.fixture
def cpu_seq():
    with kvtier.Sequence(PLAN) as s:
        yield s


def have_device() -> bool:
    try:
        with kvtier.Sequence(PLAN, device=0):
            return True
    except kvtier.Unsupported:
        return False


def test_open_on_device_without_one_is_unsupported():
    if have_device():
        pytest.skip("a CUDA device is visible: the GPU test below covers it")
    with pytest.raises(kvtier.Unsupported) as e:
        kvtier.Sequence(PLAN, device=0)
    assert "cuda" in str(e.value).lower()


def test_bad_device_arguments():
    for bad in (-2, True, "0", 1.0, 2**31):
        with pytest.raises(kvtier.InvalidArgument):
            kvtier.Sequence(PLAN, device=bad)
    with kvtier.Sequence(PLAN, device=-1) as s:  # -1 is the CPU, as in the C ABI
        assert s.device is None
        assert "cpu" in repr(s)


def test_cpu_sequence_refuses_device_calls_after_checking_them(cpu_seq):
    with pytest.raises(kvtier.Unsupported) as e:
        cpu_seq.append_on_device(0, kv(), kv())
    assert "CPU" in str(e.value)
    with pytest.raises(kvtier.Unsupported):
        cpu_seq.append_on_device(0, 0x7F0000001000, 0x7F0000002000, tokens=2)
    cpu_seq.append(0, np.ones((1, KV_HEADS, HEAD_DIM), np.float32), np.ones((1, KV_HEADS, HEAD_DIM), np.float32))
    with pytest.raises(kvtier.Unsupported):
        cpu_seq.attend_on_device(0, query(), query())
    with pytest.raises(kvtier.Unsupported):
        cpu_seq.select_on_device(0, query(), stream=FakeStream(0))
    assert cpu_seq.attend(0, np.ones((Q_HEADS, HEAD_DIM), np.float32)).shape == (Q_HEADS, HEAD_DIM)


def test_device_buffer_validation(cpu_seq):
    cases = [
        (lambda: cpu_seq.append_on_device(0, kv(typestr="<f2"), kv()), "float32"),
        (lambda: cpu_seq.append_on_device(0, kv(typestr="<f8"), kv()), "float32"),
        (lambda: cpu_seq.append_on_device(0, FakeCudaArray((3, KV_HEADS + 1, HEAD_DIM)), kv()), "shape"),
        (lambda: cpu_seq.append_on_device(0, FakeCudaArray((0, KV_HEADS, HEAD_DIM)), kv(0)), "tokens >= 1"),
        (lambda: cpu_seq.append_on_device(0, kv(3), kv(4)), "differ"),
        (lambda: cpu_seq.append_on_device(0, kv(3), kv(3), tokens=2), "tokens=2"),
        (lambda: cpu_seq.append_on_device(0, kv(strides=(4, 4 * 3, 4 * 3 * KV_HEADS)), kv()), "C-contiguous"),
        (lambda: cpu_seq.append_on_device(0, kv(ptr=0), kv()), "null"),
        (lambda: cpu_seq.append_on_device(0, 0x1000, 0x2000), "tokens="),
        (lambda: cpu_seq.append_on_device(0, 0, 0x2000, tokens=1), "not a valid address"),
        (lambda: cpu_seq.append_on_device(0, np.zeros((3, KV_HEADS, HEAD_DIM), np.float32), kv()),
         "not device memory"),
        (lambda: cpu_seq.append_on_device(0, kv(), kv(), stream="default"), "stream"),
        (lambda: cpu_seq.append_on_device(9, kv(), kv()), "layer"),
        (lambda: cpu_seq.attend_on_device(0, FakeCudaArray((Q_HEADS + 1, HEAD_DIM)), query()), "shape"),
        (lambda: cpu_seq.attend_on_device(0, query(), query(readonly=True)), "read-only"),
        (lambda: cpu_seq.attend_on_device(0, query(typestr="<i4"), query()), "float32"),
        (lambda: cpu_seq.select_on_device(0, FakeCudaArray((HEAD_DIM, Q_HEADS))), "shape"),
        (lambda: cpu_seq.select_on_device(0, [1.0] * (Q_HEADS * HEAD_DIM)), "not device memory"),
    ]
    for call, words in cases:
        with pytest.raises(kvtier.InvalidArgument) as e:
            call()
        assert words in str(e.value), str(e.value)


def test_contiguous_strides_and_one_token_shape_are_accepted(cpu_seq):
    # Explicit C-contiguous strides and the [kv_heads, head_dim] one-token form pass validation
    # (the CPU sequence then refuses: Unsupported, not InvalidArgument).
    row = 4 * KV_HEADS * HEAD_DIM
    with pytest.raises(kvtier.Unsupported):
        cpu_seq.append_on_device(0, kv(2, strides=(row, 4 * HEAD_DIM, 4)), kv(2))
    with pytest.raises(kvtier.Unsupported):
        cpu_seq.append_on_device(0, FakeCudaArray((KV_HEADS, HEAD_DIM)), FakeCudaArray((KV_HEADS, HEAD_DIM)))


def test_streams():
    a = device_buffer(kv(stream=7), "keys")
    assert stream_handle(None, a) == 7  # the array's own stream
    assert stream_handle(None, device_buffer(kv(), "keys")) == 0  # legacy default
    assert stream_handle(5, a) == 5
    assert stream_handle(FakeStream(9), a) == 9

    class CupyLike:
        ptr = 11
    assert stream_handle(CupyLike()) == 11
    for bad in (-1, True, object()):
        with pytest.raises(kvtier.InvalidArgument):
            stream_handle(bad)


def test_device_array_view_interface():
    v = DeviceArrayView(0x1000, (5, KV_HEADS, HEAD_DIM), (HEAD_DIM, 5 * HEAD_DIM, 1), 0)
    cai = v.__cuda_array_interface__
    assert cai["typestr"] == "<f2" and cai["data"] == (0x1000, True)
    assert cai["strides"] == (2 * HEAD_DIM, 2 * 5 * HEAD_DIM, 2)
    assert cai["stream"] == 1  # the legacy default stream, as interface v3 spells it
    assert DeviceArrayView(0x1000, (1, 1, 1), (1, 1, 1), 42).__cuda_array_interface__["stream"] == 42


# ---- with a device: the device calls against the host calls ------------------------------------
class Cudart:
    """The few CUDA runtime calls this test needs, through ctypes (no GPU framework required)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("cudart")
        candidates = [name] if name else []
        candidates += ["libcudart.so", "libcudart.so.13", "libcudart.so.12"]
        self.lib = None
        for c in candidates:
            try:
                self.lib = ctypes.CDLL(c)
                break
            except OSError:
                continue
        if self.lib is None:
            pytest.skip("libcudart not loadable through ctypes")

    def malloc(self, nbytes: int) -> int:
        p = ctypes.c_void_p()
        assert self.lib.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(nbytes)) == 0
        return p.value

    def free(self, p: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(p))

    def upload(self, a: np.ndarray) -> int:
        p = self.malloc(a.nbytes)
        assert self.lib.cudaMemcpy(ctypes.c_void_p(p), a.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(a.nbytes),
                                   1) == 0  # cudaMemcpyHostToDevice
        return p

    def download(self, p: int, shape, dtype) -> np.ndarray:
        out = np.empty(shape, dtype)
        assert self.lib.cudaDeviceSynchronize() == 0
        assert self.lib.cudaMemcpy(out.ctypes.data_as(ctypes.c_void_p), ctypes.c_void_p(p),
                                   ctypes.c_size_t(out.nbytes), 2) == 0  # cudaMemcpyDeviceToHost
        return out

    def download_strided(self, view: DeviceArrayView, tokens: int) -> np.ndarray:
        tstride, hstride = view.strides[0] // 2, view.strides[1] // 2
        last = (tokens - 1) * tstride + (KV_HEADS - 1) * hstride + HEAD_DIM
        flat = self.download(view.ptr, (last,), np.float16)
        return np.lib.stride_tricks.as_strided(flat, (tokens, KV_HEADS, HEAD_DIM), view.strides).copy()


def test_device_calls_match_host_calls():
    if not have_device():
        pytest.skip("no CUDA device (or libkvtier without CUDA)")
    cuda = Cudart()
    rng = np.random.default_rng(3)
    prompt = 150
    k = rng.standard_normal((prompt + 1, KV_HEADS, HEAD_DIM)).astype(np.float32)
    v = rng.standard_normal(k.shape).astype(np.float32)
    q = rng.standard_normal((Q_HEADS, HEAD_DIM)).astype(np.float32)
    host = kvtier.Sequence(PLAN, device=0)
    dev = kvtier.Sequence(PLAN, device=0)
    dk, dv, dq = cuda.upload(k), cuda.upload(v), cuda.upload(q)
    dout = cuda.malloc(q.nbytes)
    try:
        row = KV_HEADS * HEAD_DIM * 4
        for layer in range(4):
            host.append(layer, k, v)
            assert dev.append_on_device(layer, dk, dv, tokens=prompt) == prompt
            assert dev.append_on_device(layer, dk + prompt * row, dv + prompt * row, tokens=1) == 1
        for layer in range(4):
            want = host.attend(layer, q)
            dev.attend_on_device(layer, dq, dout)
            got = cuda.download(dout, q.shape, np.float32)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * (1 + np.abs(want).max()),
                                       err_msg=f"layer {layer}")
            segs = dev.select_on_device(layer, dq)
            ref = host.select(layer, q)
            assert len(segs) == len(ref)
            for s, r in zip(segs, ref):
                assert s.memory in ("device", "mapped_host")
                gk, gv = cuda.download_strided(s.keys, s.tokens), cuda.download_strided(s.values, s.tokens)
                if layer == 1:  # kivi: dequantized on the device vs on the host; one fp16 step apart at most
                    np.testing.assert_allclose(gk.astype(np.float32), r.keys.astype(np.float32), rtol=1e-3, atol=1e-3)
                    np.testing.assert_allclose(gv.astype(np.float32), r.values.astype(np.float32), rtol=1e-3, atol=1e-3)
                else:  # the same bytes
                    np.testing.assert_array_equal(gk, r.keys)
                    np.testing.assert_array_equal(gv, r.values)
        assert host.suspend() == dev.suspend()  # the same state, bit for bit
    finally:
        for p in (dk, dv, dq, dout):
            cuda.free(p)
        host.close()
        dev.close()
