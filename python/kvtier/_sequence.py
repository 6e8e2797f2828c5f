"""Sequence: the sequence plane (kvt_sequence_* of include/kvt/kvt.h) for one live sequence.

A sequence keeps every layer's KV as a per-model plan says (full, offload, KIVI-quantized, TailorKV
sparse) and runs inside this process: no daemon round trip on the decode path. Attached to a
:class:`Client` (``Sequence(plan, client=...)`` or :meth:`Sequence.attach`), it reports its figures
to that client's kv-tierd for its metrics and ``Client.stats()``: open sequences, KV bytes per token
by policy, bytes fetched per decode step, transfer time hidden behind compute.

Arrays: float32 in and out (keys post-RoPE), C-contiguous, shapes checked:
    keys / values   [tokens, kv_heads, head_dim]  (or [kv_heads, head_dim] for one token)
    query / out     [q_heads, head_dim]
numpy arrays, buffer-protocol objects and host DLPack tensors (torch CPU tensors) are passed by
address, never copied by kvtier; a float16 or strided array raises InvalidArgument instead of
being converted behind your back.

Threads: one thread at a time per sequence (calls are serialized by a lock; ctypes drops the GIL).

GPU (``Sequence(plan, device=0)``, C ABI 1.3/1.5): the layers live on that CUDA device; append /
attend / select keep taking host arrays, and append_on_device / attend_on_device /
select_on_device take device memory (int pointers or ``__cuda_array_interface__`` objects, see
kvtier._device) and a CUDA stream, and return without waiting. Without CUDA in libkvtier or
without a visible device, opening one raises Unsupported; the device calls on a CPU sequence
raise Unsupported too (after checking their arguments).
"""
from __future__ import annotations

import ctypes
import os
import threading
from ctypes import byref, c_uint32, c_uint64, c_void_p
from typing import Any, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _native
from ._client import Client, _as_array, _check
from ._device import DeviceArrayView, DeviceBuffer, check_shape, device_buffer, stream_handle
from ._errors import InvalidArgument

#: Layer policies, in kvt_layer_policy_t order (the index of DaemonStats.policy_bytes). The plan
#: kinds "tale" and "kvcompose" are counted under "kivi" and "full" (sequence/sequence_plan.h).
POLICIES = ("full", "offload", "kivi", "sparse")

_PLAN_MAGIC = "kvt-sequence-plan"
_SHAPE_DEFAULTS = {"q_heads": 32, "kv_heads": 8, "head_dim": 128}  # sequence/sequence_plan.h


class KvSegment(NamedTuple):
    """One run of selected tokens: fp16 keys and values [tokens, kv_heads, head_dim] (copies)."""

    keys: np.ndarray
    values: np.ndarray


class DeviceKvSegment(NamedTuple):
    """One run of select_on_device's tokens: fp16 keys and values [tokens, kv_heads, head_dim] as
    device views (``__cuda_array_interface__``; ``.ptr`` is the address), no copies, valid until the
    next call on the sequence. memory: "device" (device memory) or "mapped_host" (pinned host
    memory mapped for the device: a kernel reads it over PCIe)."""

    keys: DeviceArrayView
    values: DeviceArrayView
    tokens: int
    memory: str


def _plan_text(plan: Union[str, bytes, "os.PathLike[str]"]) -> str:
    if isinstance(plan, bytes):
        plan = plan.decode("utf-8")
    if isinstance(plan, os.PathLike) or (isinstance(plan, str) and not plan.lstrip().startswith(_PLAN_MAGIC)
                                         and "\n" not in plan):
        path = os.fspath(plan)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise InvalidArgument(f"sequence plan {path!r}: {e.strerror or e}") from None
    if not isinstance(plan, str):
        raise InvalidArgument(f"plan must be the plan text or a path to it, not {type(plan).__name__}")
    return plan


def _parse_shape(text: str) -> Tuple[int, int, int, List[str]]:
    """(q_heads, kv_heads, head_dim, policy per layer) of a plan libkvtier accepted."""
    shape = dict(_SHAPE_DEFAULTS)
    policies: List[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if line[0] == "shape" and len(line) > 1:
            for kv in line[1].split(","):
                key, _, value = kv.partition("=")
                if key in shape:
                    shape[key] = int(value)
        elif line[0] == "layer" and len(line) > 2:
            policies.append(line[2])
    return shape["q_heads"], shape["kv_heads"], shape["head_dim"], policies


class Sequence:
    """One live sequence (kvt_sequence_t). Use as a context manager, or call close().

    plan: the plan's text ("kvt-sequence-plan 1" ..., as ``kvt-llama plan`` writes it) or a path
    to a plan file. client: a :class:`Client` to report this sequence's figures to (optional).
    device: a CUDA device ordinal to keep the layers on (None or -1: the CPU); Unsupported
    without CUDA in libkvtier or without a visible device, InvalidArgument for an ordinal the
    machine lacks (C ABI 1.3).
    in_client: keep the host tier (offload layers' K/V, sparse layers' K, V and transposed keys)
    in `client`'s shared heap, the daemon's arena (C ABI 1.5, kvt_sequence_open_in_client); the
    C client then stays open until this sequence closes. A heap too small for an append raises
    ResourceExhausted and loses nothing; open the Client with a larger ``heap_bytes``.
    """

    def __init__(
        self,
        plan: Union[str, bytes, "os.PathLike[str]"],
        client: Optional[Client] = None,
        device: Optional[int] = None,
        *,
        in_client: bool = False,
    ) -> None:
        if device is not None and (isinstance(device, bool) or not isinstance(device, (int, np.integer))
                                   or not -1 <= int(device) < 2**31):
            raise InvalidArgument(f"device must be a CUDA device ordinal >= 0 (or None / -1 for the CPU), "
                                  f"not {device!r}")
        device = None if device is None or int(device) == -1 else int(device)
        text = _plan_text(plan)
        lib = _native.lib()
        out = c_void_p()
        self._heap_handle: Any = None
        if in_client:
            if client is None:
                raise InvalidArgument("in_client=True needs a client")
            fn = _native.required("kvt_sequence_open_in_client", "1.5")
            handle = client._handle
            _check(fn(handle.require(), text.encode("utf-8"), -1 if device is None else device, byref(out)))
            handle.add_buffer()  # the host tier is the client's mapping: keep it open until close()
            self._heap_handle = handle
        elif device is None:
            _check(lib.kvt_sequence_open(text.encode("utf-8"), byref(out)))
        else:
            fn = _native.required("kvt_sequence_open_on_device", "1.3")
            _check(fn(text.encode("utf-8"), device, byref(out)))
        self._ptr: Optional[int] = out.value
        #: The CUDA device the layers live on, or None for a CPU sequence.
        self.device: Optional[int] = device
        self._lock = threading.Lock()
        self._client: Optional[Client] = client if in_client else None
        self._suspended = False
        self.plan_text = text
        self.q_heads, self.kv_heads, self.head_dim, self.policies = _parse_shape(text)
        self.num_layers = len(self.policies)
        if client is not None and not in_client:
            try:
                self.attach(client)
            except BaseException:
                self.close()
                raise

    # ---- shapes -----------------------------------------------------------------------------
    @property
    def kv_shape(self) -> Tuple[int, int]:
        """[kv_heads, head_dim]: one token's keys (or values); append takes [tokens, *kv_shape]."""
        return (self.kv_heads, self.head_dim)

    @property
    def query_shape(self) -> Tuple[int, int]:
        """[q_heads, head_dim]: a query, and attend's output."""
        return (self.q_heads, self.head_dim)

    @property
    def suspended(self) -> bool:
        return self._suspended

    def _require(self) -> int:
        if self._ptr is None:
            raise InvalidArgument("the sequence is closed")
        return self._ptr

    def _layer(self, layer: int) -> int:
        if not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < self.num_layers:
            raise InvalidArgument(f"layer {layer!r} outside [0, {self.num_layers})")
        return int(layer)

    def _f32(self, obj: Any, what: str, shape: Tuple[int, ...], writable: bool = False) -> np.ndarray:
        arr = _as_array(obj, what, writable)
        if arr.dtype != np.float32:
            raise InvalidArgument(f"{what} must be float32, got {arr.dtype} (kvtier never converts behind "
                                  "your back: pass x.astype(np.float32))")
        if tuple(arr.shape) != shape:
            raise InvalidArgument(f"{what} must have shape {list(shape)}, got {list(arr.shape)}")
        return arr

    def _kv(self, obj: Any, what: str) -> np.ndarray:
        arr = _as_array(obj, what, writable=False)
        if arr.ndim == 2:
            arr = arr.reshape((1,) + tuple(arr.shape))
        if arr.ndim != 3 or tuple(arr.shape[1:]) != self.kv_shape or arr.shape[0] == 0:
            raise InvalidArgument(f"{what} must have shape [tokens, {self.kv_heads}, {self.head_dim}] with "
                                  f"tokens >= 1, got {list(arr.shape)}")
        return self._f32(arr, what, tuple(arr.shape))

    # ---- the decode path --------------------------------------------------------------------
    def append(self, layer: int, keys: Any, values: Any) -> int:
        """Appends tokens' keys (post-RoPE) and values to `layer`: [tokens, kv_heads, head_dim]
        float32 each (prefill in bulk, or one decode token). Returns the tokens appended."""
        layer = self._layer(layer)
        k = self._kv(keys, "keys")
        v = self._kv(values, "values")
        if k.shape != v.shape:
            raise InvalidArgument(f"keys {list(k.shape)} and values {list(v.shape)} differ in shape")
        if k.shape[0] >= 2**30:
            raise InvalidArgument("append: too many tokens at once")
        with self._lock:
            _check(_native.lib().kvt_sequence_append(self._require(), layer, k.ctypes.data, v.ctypes.data,
                                                     k.shape[0]))
        return int(k.shape[0])

    def attend(self, layer: int, query: Any, out: Any = None) -> np.ndarray:
        """One decode step's attention of `layer` over what it keeps: query [q_heads, head_dim]
        float32; writes and returns out (a new array unless given, float32 [q_heads, head_dim])."""
        layer = self._layer(layer)
        q = self._f32(query, "query", self.query_shape)
        result = np.empty(self.query_shape, np.float32) if out is None else out
        o = self._f32(result, "out", self.query_shape, writable=True)
        with self._lock:
            _check(_native.lib().kvt_sequence_attend(self._require(), layer, q.ctypes.data, o.ctypes.data))
        return result  # the caller's own object when given (a DLPack tensor stays one)

    def select(self, layer: int, query: Any) -> List[KvSegment]:
        """What `layer` would attend to for `query`, for an engine running its own attention
        kernel: fp16 (keys, values) segments [tokens, kv_heads, head_dim] in attention order
        (sparse layers: sinks, the gathered dominant tokens, the recent window). Copies: the
        library's buffers are reused by the next call."""
        layer = self._layer(layer)
        q = self._f32(query, "query", self.query_shape)
        segs = (_native.KvSegment * 8)()
        count = c_uint32(0)
        with self._lock:
            ptr = self._require()
            _check(_native.lib().kvt_sequence_select(ptr, layer, q.ctypes.data, segs, 8, byref(count)))
            if count.value > 8:
                segs = (_native.KvSegment * count.value)()
                _check(_native.lib().kvt_sequence_select(ptr, layer, q.ctypes.data, segs, count.value,
                                                         byref(count)))
            return [KvSegment(self._segment(s.keys, s), self._segment(s.values, s))
                    for s in segs[: count.value]]

    def _segment(self, address: Optional[int], s: Any) -> np.ndarray:
        shape = (int(s.tokens), self.kv_heads, self.head_dim)
        if shape[0] == 0 or not address:
            return np.empty(shape, np.float16)
        # The furthest element, to size a view of the library's memory.
        last = (shape[0] - 1) * s.token_stride + (shape[1] - 1) * s.head_stride + shape[2]
        raw = np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctypes.c_uint16)), shape=(last,))
        view = np.lib.stride_tricks.as_strided(raw.view(np.float16), shape=shape,
                                               strides=(2 * s.token_stride, 2 * s.head_stride, 2))
        return np.array(view, copy=True)

    def hint_next(self, layer: int, speculative_query: Any) -> None:
        """A speculative query [q_heads, head_dim] for `layer` (computed while the previous layer
        runs), so its channel rows are prefetched behind compute; optional."""
        layer = self._layer(layer)
        q = self._f32(speculative_query, "speculative_query", self.query_shape)
        with self._lock:
            _check(_native.lib().kvt_sequence_hint_next(self._require(), layer, q.ctypes.data))

    def observe(self, layer: int, queries: Any) -> None:
        """After prefill: the prompt's last queries [window, q_heads, head_dim] (post-RoPE) for
        `layer`; "tale" and "kvcompose" layers compress on them, other kinds ignore them (C ABI 1.4)."""
        layer = self._layer(layer)
        arr = _as_array(queries, "queries", False)
        if arr.ndim != 3 or arr.shape[0] == 0:
            raise InvalidArgument(f"queries must have shape [window, {self.q_heads}, {self.head_dim}] with window >= 1, "
                                  f"got {list(arr.shape)}")
        q = self._f32(arr, "queries", (arr.shape[0],) + tuple(self.query_shape))
        fn = _native.required("kvt_sequence_observe", "1.4")
        with self._lock:
            _check(fn(self._require(), layer, q.ctypes.data, int(q.shape[0])))

    # ---- device pointers (GPU sequences) ----------------------------------------------------
    def append_on_device(self, layer: int, keys: Any, values: Any, tokens: Optional[int] = None,
                         stream: Any = None) -> int:
        """Appends keys and values already in device memory of the sequence's device:
        [tokens, kv_heads, head_dim] float32 (or [kv_heads, head_dim] for one token), as
        ``__cuda_array_interface__`` objects or int pointers (then `tokens` is required). Enqueued
        after `stream`'s work so far (see kvtier._device for streams); returns without waiting,
        `stream`'s later work sees the rows appended. Returns the tokens appended (C ABI 1.5)."""
        layer = self._layer(layer)
        k = device_buffer(keys, "keys")
        v = device_buffer(values, "values")
        n = self._device_tokens(k, "keys", tokens)
        if self._device_tokens(v, "values", tokens) != n:
            raise InvalidArgument(f"keys {list(k.shape or ())} and values {list(v.shape or ())} differ in tokens")
        fn = _native.required("kvt_sequence_append_on_device", "1.5")
        s = stream_handle(stream, k, v)
        with self._lock:
            _check(fn(self._require(), layer, k.ptr, v.ptr, n, s or None))
        return n

    def attend_on_device(self, layer: int, query: Any, out: Any, stream: Any = None) -> None:
        """Attention with query and out [q_heads, head_dim] float32 in device memory (objects with
        ``__cuda_array_interface__`` or int pointers), enqueued on `stream`; returns without
        waiting: out is ready when the stream reaches this point (C ABI 1.3)."""
        layer = self._layer(layer)
        q = device_buffer(query, "query")
        o = device_buffer(out, "out", writable=True)
        check_shape(q, "query", self.query_shape)
        check_shape(o, "out", self.query_shape)
        fn = _native.required("kvt_sequence_attend_on_device", "1.3")
        s = stream_handle(stream, q, o)
        with self._lock:
            _check(fn(self._require(), layer, q.ptr, o.ptr, s or None))

    def select_on_device(self, layer: int, query: Any, stream: Any = None) -> List[DeviceKvSegment]:
        """What `layer` would attend to for a device `query` [q_heads, head_dim] float32, as device
        views (no copies) in attention order; ordered on `stream` like append_on_device. Valid until
        the next call on this sequence: read them on `stream` (C ABI 1.5)."""
        layer = self._layer(layer)
        q = device_buffer(query, "query")
        check_shape(q, "query", self.query_shape)
        fn = _native.required("kvt_sequence_select_on_device", "1.5")
        s = stream_handle(stream, q)
        sel = _native.DeviceSelection()
        sel.struct_size = ctypes.sizeof(sel)
        with self._lock:
            _check(fn(self._require(), layer, q.ptr, s or None, byref(sel)))
        out = []
        for g in sel.segments[: sel.count]:
            shape = (int(g.tokens), self.kv_heads, self.head_dim)
            strides = (int(g.token_stride), int(g.head_stride), 1)
            memory = _native.KV_MEMORY[g.memory] if g.memory < len(_native.KV_MEMORY) else f"memory {g.memory}"
            out.append(DeviceKvSegment(DeviceArrayView(g.keys or 0, shape, strides, s),
                                       DeviceArrayView(g.values or 0, shape, strides, s), int(g.tokens), memory))
        return out

    def _device_tokens(self, buf: DeviceBuffer, what: str, tokens: Optional[int]) -> int:
        """Tokens of a [tokens, kv_heads, head_dim] device buffer (raw pointers: `tokens`)."""
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer))
                                   or not 1 <= int(tokens) < 2**30):
            raise InvalidArgument(f"tokens must be an int in [1, 2**30), not {tokens!r}")
        if buf.shape is None:
            if tokens is None:
                raise InvalidArgument(f"{what} is a raw device pointer: pass tokens= as well")
            return int(tokens)
        shape = buf.shape if len(buf.shape) != 2 else (1,) + buf.shape
        if len(shape) != 3 or tuple(shape[1:]) != self.kv_shape or not 1 <= shape[0] < 2**30:
            raise InvalidArgument(f"{what} must have shape [tokens, {self.kv_heads}, {self.head_dim}] with "
                                  f"tokens >= 1, got {list(buf.shape)}")
        if tokens is not None and int(tokens) != shape[0]:
            raise InvalidArgument(f"tokens={tokens} but {what} holds {shape[0]}")
        return int(shape[0])

    # ---- suspend / resume -------------------------------------------------------------------
    def suspend(self) -> bytes:
        """Moves the whole state into an image (bytes) and frees it; afterwards only resume() and
        close() are allowed. resume(image) restores the sequence bit for bit."""
        image = c_void_p()
        nbytes = c_uint64(0)
        lib = _native.lib()
        with self._lock:
            _check(lib.kvt_sequence_suspend(self._require(), byref(image), byref(nbytes)))
            try:
                data = ctypes.string_at(image.value, nbytes.value) if nbytes.value else b""
            finally:
                lib.kvt_sequence_image_free(image)
            self._suspended = True
        return data

    def resume(self, image: Any) -> None:
        """Restores a suspend() image (bytes or any buffer-protocol object)."""
        try:
            view = memoryview(image).cast("B")
        except TypeError:
            raise InvalidArgument(f"image must be bytes or a buffer, not {type(image).__name__}") from None
        buf = np.frombuffer(view, np.uint8) if view.nbytes else np.empty(0, np.uint8)
        with self._lock:
            _check(_native.lib().kvt_sequence_resume(self._require(), buf.ctypes.data if buf.size else None,
                                                     buf.size))
            self._suspended = False

    def suspend_to_file(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Suspends to a file on local storage (NVMe) instead of memory: written beside `path`,
        fsync'd and renamed over it; the sequence's memory is then freed. A full disk raises
        ResourceExhausted and leaves the sequence live. Needs C ABI 1.2."""
        fn = _native.required("kvt_sequence_suspend_to_file")
        with self._lock:
            _check(fn(self._require(), os.fsencode(path)))
            self._suspended = True

    def resume_from_file(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Resumes, bit for bit, from a suspend_to_file() file (left in place). A truncated or
        corrupt file raises Corruption, a foreign one InvalidArgument; either way the sequence stays
        suspended and can be resumed from a good copy. Needs C ABI 1.2."""
        fn = _native.required("kvt_sequence_resume_from_file")
        with self._lock:
            _check(fn(self._require(), os.fsencode(path)))
            self._suspended = False

    # ---- reporting --------------------------------------------------------------------------
    def attach(self, client: Optional[Client]) -> None:
        """Reports this sequence's figures to `client`'s kv-tierd (None: stop reporting). Costs a
        few atomic adds per call, no round trip. Unsupported from a daemon older than protocol 1.1."""
        attach = _native.required("kvt_sequence_attach", "1.1")
        cptr = None if client is None else client._handle.require()
        with self._lock:
            _check(attach(self._require(), cptr))
            self._client = client  # keeps the connection open while we report through it

    # ---- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Waits for the sequence's transfers and frees it (idempotent)."""
        with self._lock:
            ptr, self._ptr = self._ptr, None
            if ptr is not None:
                _native.lib().kvt_sequence_close(ptr)
            self._client = None
            handle, self._heap_handle = self._heap_handle, None
        if handle is not None:
            handle.free_buffer(None)  # may close a C client whose close() waited for us

    def __enter__(self) -> "Sequence":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else ("suspended" if self._suspended else "live")
        where = "cpu" if self.device is None else f"cuda:{self.device}"
        return (f"<kvtier.Sequence {state} {where} layers={self.num_layers} q_heads={self.q_heads} "
                f"kv_heads={self.kv_heads} head_dim={self.head_dim} policies={','.join(sorted(set(self.policies)))}>")
