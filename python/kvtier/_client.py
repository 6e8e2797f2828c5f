"""Client, Namespace, Op: the block plane of kv-tierd over libkvtier's C ABI.

Memory: every buffer handed to a call is passed to libkvtier by address, without a copy on the
Python side. Arrays from :meth:`Client.empty` / :meth:`Namespace.empty` live in the client's
shared heap, and the daemon reads or writes them in place (zero copy); any other host buffer is
staged by libkvtier through the heap (one copy). Async ops keep their token and data buffers
alive until they complete, even if the Op object is dropped.

Threads: a Client and its Namespaces may be used from many threads at once (libkvtier is
thread-safe; ctypes drops the GIL during each call).
"""
from __future__ import annotations

import ctypes
import math
import threading
import weakref
from ctypes import byref, c_uint64, c_void_p
from dataclasses import dataclass, fields
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._errors import InvalidArgument, Status, Timeout, Unsupported, make_error

# ------------------------------------------------------------------------------------------------
# dtypes
# ------------------------------------------------------------------------------------------------
_DTYPE_CODES = {"f16": 1, "bf16": 2, "f32": 3}
_DTYPE_ALIASES = {
    "f16": "f16", "float16": "f16", "half": "f16", "fp16": "f16",
    "bf16": "bf16", "bfloat16": "bf16",
    "f32": "f32", "float32": "f32", "float": "f32", "fp32": "f32",
}
_DTYPE_NAMES = {v: k for k, v in _DTYPE_CODES.items()}


def _dtype_name(dtype: Any) -> str:
    """'f16' | 'bf16' | 'f32' from a string, a numpy dtype, or anything with a dtype-ish str()."""
    if isinstance(dtype, int) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    key = str(dtype).lower()
    if key.startswith("torch."):
        key = key[len("torch."):]
    if key in _DTYPE_ALIASES:
        return _DTYPE_ALIASES[key]
    try:
        key = np.dtype(dtype).name
    except TypeError:
        pass
    if key in _DTYPE_ALIASES:
        return _DTYPE_ALIASES[key]
    raise InvalidArgument(f"unsupported KV dtype {dtype!r}: use 'f16', 'bf16' or 'f32'")


def _numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of arrays this package creates for a layout dtype (bf16: raw uint16 bits)."""
    return np.dtype({"f16": np.float16, "bf16": np.uint16, "f32": np.float32}[name])


def _dtype_accepts(name: str, dt: np.dtype) -> bool:
    if name == "f16":
        return dt == np.float16
    if name == "f32":
        return dt == np.float32
    # numpy has no bfloat16: accept ml_dtypes' bfloat16 or the raw bits as (u)int16.
    return dt.itemsize == 2 and (dt.name == "bfloat16" or dt in (np.uint16, np.int16))


# ------------------------------------------------------------------------------------------------
# Buffers: numpy, the buffer protocol, DLPack
# ------------------------------------------------------------------------------------------------
_DLPACK_HOST_DEVICES = (1, 3)  # kDLCPU, kDLCUDAHost (pinned host memory)
_DLPACK_DEVICE_NAMES = {2: "CUDA", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI", 10: "ROCm",
                        13: "CUDA managed", 14: "oneAPI"}


def _as_array(obj: Any, what: str, writable: bool) -> np.ndarray:
    """A numpy view of obj's memory, never a copy. obj: an ndarray, a DLPack producer (torch
    tensor, jax array, ...) in host memory, or any buffer-protocol object."""
    if isinstance(obj, np.ndarray):
        arr = obj
        if writable and not arr.flags.writeable:
            raise InvalidArgument(f"{what} is a read-only array; retrieve needs a writable one")
    elif hasattr(obj, "__dlpack__"):
        if hasattr(obj, "__dlpack_device__"):
            device = tuple(obj.__dlpack_device__())
            if int(device[0]) not in _DLPACK_HOST_DEVICES:
                kind = _DLPACK_DEVICE_NAMES.get(int(device[0]), f"device type {int(device[0])}")
                raise InvalidArgument(
                    f"{what} lives on {kind} device {int(device[1])} (DLPack {device}), not in host memory: "
                    "kv-tierd has no GPU tier yet, so kvtier takes host buffers only; copy it to host "
                    "memory first (torch: t.cpu())")
        try:
            arr = np.from_dlpack(obj)
        except (TypeError, BufferError, RuntimeError, ValueError) as e:
            raise InvalidArgument(
                f"{what}: numpy cannot view this DLPack tensor ({e}); for bfloat16 pass a uint16/int16 "
                "view of it (torch: t.view(torch.int16))") from e
        # DLPack has no read-only flag, so numpy marks imported arrays read-only; the producer's
        # tensor is writable, and only its address goes to libkvtier.
    else:
        try:
            view = memoryview(obj)
        except TypeError:
            raise InvalidArgument(f"{what} must be a numpy array, a buffer-protocol object or a DLPack "
                                  f"tensor, not {type(obj).__name__}") from None
        if writable and view.readonly:
            raise InvalidArgument(f"{what} is a read-only buffer; retrieve needs a writable one")
        arr = np.asarray(view)
    if not arr.flags.c_contiguous:
        raise InvalidArgument(f"{what} must be C-contiguous (shape {arr.shape}, strides {arr.strides}); "
                              "kvtier never copies behind your back: pass np.ascontiguousarray(x)")
    return arr


def _tokens(tokens: Any) -> np.ndarray:
    """Token ids as a contiguous uint32 array (no copy when they already are)."""
    if isinstance(tokens, np.ndarray) and tokens.dtype == np.uint32 and tokens.ndim == 1 \
            and tokens.flags.c_contiguous:
        return tokens
    if hasattr(tokens, "__dlpack__") and not isinstance(tokens, np.ndarray):
        tokens = _as_array(tokens, "tokens", writable=False)
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise InvalidArgument(f"tokens must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, np.uint32)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"tokens must be integers, got dtype {arr.dtype}")
    if (arr.dtype.kind == "i" and int(arr.min()) < 0) or int(arr.max()) > 0xFFFFFFFF:
        raise InvalidArgument("token ids must fit in uint32 (0 .. 4294967295)")
    return np.ascontiguousarray(arr, dtype=np.uint32)


def _ptr(arr: np.ndarray) -> Optional[int]:
    return arr.ctypes.data if arr.size else None


class _SharedBlock:
    """One kvt_buffer_alloc allocation; numpy views keep it alive, the last one frees it."""

    def __init__(self, handle: "_ClientHandle", ptr: int, nbytes: int) -> None:
        self._handle = handle
        self.ptr = ptr
        self.nbytes = nbytes
        self.__array_interface__ = {"data": (ptr, False), "shape": (nbytes,), "typestr": "|u1",
                                    "version": 3}

    def __del__(self) -> None:
        try:
            self._handle.free_buffer(self.ptr)
        except Exception:  # interpreter shutdown
            pass


# ------------------------------------------------------------------------------------------------
# The client handle: closes the C client once nothing refers to its shared memory
# ------------------------------------------------------------------------------------------------
class _ClientHandle:
    """Owns a kvt_client_t. Namespaces, ops and shared buffers hold a reference; the C client
    closes when Client.close() was called and no shared buffer is alive (their memory is the
    client's mapping), or when the last reference goes."""

    def __init__(self, ptr: int, timeout_ns: int) -> None:
        self.ptr: Optional[int] = ptr
        self.timeout_ns = timeout_ns
        self.closing = False
        self.lock = threading.Lock()
        self.children: "weakref.WeakSet[Any]" = weakref.WeakSet()  # Namespaces and Ops
        self.live_buffers = 0
        self.orphans: List[Any] = []  # keep-alives of released pending ops

    def require(self) -> int:
        ptr = self.ptr
        if ptr is None or self.closing:
            raise InvalidArgument("the kvtier client is closed")
        return ptr

    def add_buffer(self) -> None:
        with self.lock:
            self.live_buffers += 1

    def free_buffer(self, ptr: int) -> None:
        with self.lock:
            self.live_buffers -= 1
            if self.ptr is not None:
                _native.lib().kvt_buffer_free(self.ptr, ptr)
            close_now = self.closing and self.live_buffers == 0
        if close_now:
            self._close_c()

    def close(self) -> None:
        with self.lock:
            if self.closing:
                return
            self.closing = True
            children = list(self.children)
            close_now = self.live_buffers == 0
        for child in children:  # namespaces and ops must go before the client
            child._detach()
        if close_now:
            self._close_c()

    def _close_c(self) -> None:
        with self.lock:
            ptr, self.ptr = self.ptr, None
        if ptr is not None:
            _native.lib().kvt_client_close(ptr)
        self.orphans.clear()  # abandoned ops can no longer touch their buffers

    def __del__(self) -> None:
        try:
            self.closing = True
            for child in list(self.children):
                child._detach()
            self._close_c()
        except Exception:
            pass


def _check(status: int) -> None:
    if status != 0:
        raise make_error(status, _native.lib().kvt_last_error_message().decode("utf-8", "replace"))


def _timeout_ns(timeout: Optional[float], default: int) -> int:
    if timeout is None:
        return default
    if timeout == math.inf:
        return -1
    if not (timeout >= 0):
        raise InvalidArgument(f"timeout must be >= 0 seconds (or None / math.inf), got {timeout!r}")
    return int(timeout * 1e9)


# ------------------------------------------------------------------------------------------------
# Public value types
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """A cache layout: one namespace. Chunk shape [num_layers, 2, tokens_per_chunk, num_kv_heads,
    head_dim] of dtype ('f16', 'bf16', 'f32', or a numpy/torch dtype)."""

    model_id: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: str = "f16"
    tokens_per_chunk: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))

    @property
    def chunk_shape(self) -> Tuple[int, int, int, int, int]:
        return (self.num_layers, 2, self.tokens_per_chunk, self.num_kv_heads, self.head_dim)

    @property
    def numpy_dtype(self) -> np.dtype:
        return _numpy_dtype(self.dtype)

    @property
    def chunk_bytes(self) -> int:
        return int(np.prod(self.chunk_shape)) * self.numpy_dtype.itemsize


@dataclass(frozen=True)
class DaemonStats:
    """kvt_daemon_stats_t. protocol_version: major << 16 | minor."""

    protocol_version: int
    uptime_ns: int
    clients: int
    host_capacity_bytes: int
    host_used_bytes: int
    host_chunks: int
    pinned_chunks: int
    hits: int
    misses: int
    stores: int
    lookups: int
    retrieves: int
    evictions: int
    bad_requests: int
    nvme_capacity_bytes: int
    nvme_used_bytes: int
    nvme_chunks: int
    # The sequence plane, summed over the sequences clients attached (Sequence.attach); tuples are
    # indexed like kvtier.POLICIES (full, offload, kivi, sparse). 0 from a daemon older than 1.1.
    sequences: int = 0
    policy_bytes: Tuple[int, ...] = (0, 0, 0, 0)
    policy_layer_tokens: Tuple[int, ...] = (0, 0, 0, 0)
    fetch_steps: int = 0
    fetch_bytes: int = 0
    transfer_hidden_ns: int = 0
    transfer_exposed_ns: int = 0
    # The GPU tier (kv-tierd --gpu-pool-bytes); 0 without one or from a daemon older than 1.2.
    gpu_capacity_bytes: int = 0
    gpu_used_bytes: int = 0
    gpu_chunks: int = 0
    gpu_pinned_chunks: int = 0
    # Bytes of the clients' shared heaps held by in-client sequences' host tiers
    # (Sequence(..., in_client=True)); 0 from a daemon older than 1.3.
    sequence_host_tier_heap_bytes: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    @property
    def policy_bytes_per_token(self) -> "dict[str, float]":
        """KV bytes held per token and layer, by policy (only policies holding tokens)."""
        names = ("full", "offload", "kivi", "sparse")
        return {n: b / t for n, b, t in zip(names, self.policy_bytes, self.policy_layer_tokens) if t}

    @property
    def transfer_hidden_share(self) -> float:
        """Share of the sequences' transfer time hidden behind compute (0 when none)."""
        total = self.transfer_hidden_ns + self.transfer_exposed_ns
        return self.transfer_hidden_ns / total if total else 0.0


@dataclass(frozen=True)
class NamespaceInfo:
    """One entry of Client.list_namespaces()."""

    tenant: str
    model_id: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: str
    tokens_per_chunk: int
    chunks: int
    bytes: int


@dataclass(frozen=True)
class GpuPool:
    """The daemon's GPU pool as mapped into this process (Client.map_gpu_pool()): a chunk pinned
    at `offset` lies at device address device_base + offset on CUDA device `device`."""

    device: int
    capacity_bytes: int
    device_base: int


@dataclass(frozen=True)
class GpuPins:
    """What Namespace.gpu_pin() pinned: the prefix tokens covered (0 is a miss) and each pinned
    chunk's byte offset in the GPU pool, in prefix order."""

    tokens: int
    offsets: List[int]


# ------------------------------------------------------------------------------------------------
# Op
# ------------------------------------------------------------------------------------------------
class Op:
    """An asynchronous block operation. Its buffers stay referenced (and must stay untouched)
    until it completes. Result: stored chunks (store), matched tokens (lookup), retrieved tokens
    (retrieve). Usable as a context manager; dropping a pending Op lets it finish in the
    background with its buffers kept alive until then (or until the client closes)."""

    def __init__(self, handle: _ClientHandle, ptr: int, kind: str, keepalive: Tuple[Any, ...]) -> None:
        self._handle = handle
        self._ptr: Optional[int] = ptr
        self.kind = kind
        self._keepalive: Optional[Tuple[Any, ...]] = keepalive
        self._result: Optional[int] = None
        self._error: Optional[BaseException] = None
        handle.children.add(self)

    @property
    def done(self) -> bool:
        """True once the op finished (successfully or not). Does not poll: see poll()."""
        return self._result is not None or self._error is not None

    def _finish(self, status: int, value: int) -> int:
        self._keepalive = None
        if status != 0:
            self._error = make_error(status, _native.lib().kvt_last_error_message().decode("utf-8", "replace"))
            raise self._error
        self._result = value
        return value

    def _outcome(self) -> int:
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def poll(self) -> Optional[int]:
        """None while pending; the result once complete (raises the op's error if it failed)."""
        if self.done:
            return self._outcome()
        if self._ptr is None:
            raise InvalidArgument("the op was released before it completed")
        value = c_uint64(0)
        status = _native.lib().kvt_op_poll(self._ptr, byref(value))
        if status == Status.BUSY:
            return None
        return self._finish(status, value.value)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Waits for completion and returns the result. timeout: seconds (None: the client's
        default, math.inf: forever). Raises Timeout if it passes; the op is still pending then
        and may be waited for again."""
        if self.done:
            return self._outcome()
        if self._ptr is None:
            raise InvalidArgument("the op was released before it completed")
        value = c_uint64(0)
        status = _native.lib().kvt_op_wait(self._ptr, _timeout_ns(timeout, -1), byref(value))
        if status == Status.TIMEOUT:
            raise Timeout(_native.lib().kvt_last_error_message().decode("utf-8", "replace")
                          or f"{self.kind} op still pending after {timeout} s", status)
        return self._finish(status, value.value)

    def release(self) -> None:
        """Frees the handle. A pending op finishes in the background; its buffers stay alive."""
        ptr, self._ptr = self._ptr, None
        if ptr is None:
            return
        if not self.done and self._keepalive is not None:
            with self._handle.lock:
                self._handle.orphans.append(self._keepalive)
            self._keepalive = None
        if self._handle.ptr is not None:
            _native.lib().kvt_op_release(ptr)

    def _detach(self) -> None:  # the client is closing: it frees leftover ops itself
        self.release()

    def __enter__(self) -> "Op":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "done" if self.done else ("released" if self._ptr is None else "pending")
        return f"<kvtier.Op {self.kind} {state}>"


# ------------------------------------------------------------------------------------------------
# Namespace
# ------------------------------------------------------------------------------------------------
KvBuffer = Any  # np.ndarray | buffer-protocol object | DLPack tensor
Tokens = Any    # Sequence[int] | np.ndarray | DLPack integer tensor


class Namespace:
    """One cache layout opened on a client (kvt_namespace_t). KV buffers are either
    [chunks, num_layers, 2, tokens_per_chunk, num_kv_heads, head_dim] of the layout's dtype, or
    flat bytes (1-D, itemsize 1) holding whole chunks back to back. Only whole chunks of tokens
    take part: tokens after the last multiple of tokens_per_chunk are ignored."""

    def __init__(self, client: "Client", layout: Layout) -> None:
        self._client = client
        self._handle = client._handle
        self.layout = layout
        cptr = self._handle.require()
        lib = _native.lib()
        c_layout = _native.Layout()
        lib.kvt_layout_init(byref(c_layout))
        model = layout.model_id.encode("utf-8")
        c_layout.model_id = model
        for name in ("num_layers", "num_kv_heads", "head_dim", "tokens_per_chunk"):
            value = getattr(layout, name)
            if not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 0xFFFFFFFF:
                raise InvalidArgument(f"layout.{name} must be an integer in 0 .. 2^32-1, got {value!r}")
            setattr(c_layout, name, int(value))
        c_layout.dtype = _DTYPE_CODES[layout.dtype]
        out = c_void_p()
        _check(lib.kvt_namespace_open(cptr, byref(c_layout), byref(out)))
        self._ptr: Optional[int] = out.value
        self.chunk_bytes: int = int(lib.kvt_namespace_chunk_bytes(self._ptr))
        self.tokens_per_chunk: int = int(lib.kvt_namespace_tokens_per_chunk(self._ptr))
        self._handle.children.add(self)

    # ---- properties -------------------------------------------------------------------------
    @property
    def chunk_shape(self) -> Tuple[int, int, int, int, int]:
        """[num_layers, 2, tokens_per_chunk, num_kv_heads, head_dim]."""
        return self.layout.chunk_shape

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of arrays this namespace creates (bf16: uint16 holding the raw bits)."""
        return self.layout.numpy_dtype

    def _require(self) -> int:
        self._handle.require()
        if self._ptr is None:
            raise InvalidArgument("the namespace is closed")
        return self._ptr

    # ---- checks -----------------------------------------------------------------------------
    def _kv(self, kv: KvBuffer, what: str, writable: bool) -> Tuple[np.ndarray, int]:
        """(array view, whole chunks it holds), after checking shape and dtype."""
        arr = _as_array(kv, what, writable)
        shape = self.chunk_shape
        if arr.ndim == 1 and arr.dtype.itemsize == 1:
            if arr.nbytes % self.chunk_bytes:
                raise InvalidArgument(f"{what} holds {arr.nbytes} bytes, not a whole number of chunks of "
                                      f"{self.chunk_bytes} bytes")
            return arr, arr.nbytes // self.chunk_bytes
        if arr.ndim != 6 or tuple(arr.shape[1:]) != shape:
            raise InvalidArgument(
                f"{what} has shape {tuple(arr.shape)}; this namespace wants [chunks, layers, 2, "
                f"tokens_per_chunk, kv_heads, head_dim] = [N, {', '.join(map(str, shape))}] or flat bytes")
        if not _dtype_accepts(self.layout.dtype, arr.dtype):
            raise InvalidArgument(f"{what} has dtype {arr.dtype}; this namespace stores {self.layout.dtype}"
                                  f" (numpy {self.dtype})")
        return arr, arr.shape[0]

    def _whole_chunks(self, toks: np.ndarray) -> int:
        return toks.size // self.tokens_per_chunk

    def _store_args(self, tokens: Tokens, kv: KvBuffer, what: str = "kv") -> Tuple[np.ndarray, np.ndarray]:
        toks = _tokens(tokens)
        arr, chunks = self._kv(kv, what, writable=False)
        want = self._whole_chunks(toks)
        if chunks != want:
            raise InvalidArgument(f"{what} holds {chunks} chunks but the tokens cover {want} whole chunks "
                                  f"({toks.size} tokens, {self.tokens_per_chunk} per chunk)")
        return toks, arr

    # ---- synchronous ------------------------------------------------------------------------
    def store(self, tokens: Tokens, kv: KvBuffer) -> int:
        """Stores the KV of the whole chunks of tokens; returns the chunks newly stored (chunks
        already present are skipped). Raises ResourceExhausted if nothing more can be evicted
        (after storing the leading chunks that fit)."""
        toks, arr = self._store_args(tokens, kv)
        out = c_uint64(0)
        _check(_native.lib().kvt_block_store(self._require(), _ptr(toks), toks.size, _ptr(arr), arr.nbytes,
                                             byref(out)))
        return out.value

    def lookup(self, tokens: Tokens) -> int:
        """The number of leading tokens (a multiple of tokens_per_chunk) whose chunks are present."""
        toks = _tokens(tokens)
        out = c_uint64(0)
        _check(_native.lib().kvt_block_lookup(self._require(), _ptr(toks), toks.size, byref(out)))
        return out.value

    def retrieve_into(self, tokens: Tokens, out: KvBuffer) -> int:
        """Copies the longest present prefix (at most out's chunks) into out, bit-exact, and
        returns its length in tokens; 0 is a miss. out is written in place (a numpy array, a
        writable buffer, or a host DLPack tensor)."""
        toks = _tokens(tokens)
        arr, _ = self._kv(out, "out", writable=True)
        got = c_uint64(0)
        _check(_native.lib().kvt_block_retrieve(self._require(), _ptr(toks), toks.size, _ptr(arr), arr.nbytes,
                                                byref(got)))
        return got.value

    def retrieve(self, tokens: Tokens) -> np.ndarray:
        """The longest present prefix as a new array [chunks, *chunk_shape] (chunks may be 0)."""
        toks = _tokens(tokens)
        out = self.empty(self._whole_chunks(toks), shared=False)
        got = self.retrieve_into(toks, out)
        return out[: got // self.tokens_per_chunk]

    def remove(self, tokens: Tokens) -> int:
        """Removes every stored chunk of the prefix (pinned ones too); returns the chunks removed."""
        return self._simple("kvt_block_remove", tokens)

    def pin(self, tokens: Tokens) -> int:
        """Pins the present chunks of the longest present prefix (a lease of this client);
        returns the tokens pinned."""
        return self._simple("kvt_block_pin", tokens)

    def unpin(self, tokens: Tokens) -> int:
        return self._simple("kvt_block_unpin", tokens)

    def gpu_pin(self, tokens: Tokens, max_chunks: Optional[int] = None) -> GpuPins:
        """Makes the longest present prefix's chunks (at most max_chunks; None: all of them)
        resident in the daemon's GPU pool and pins them there for this client. Balance it with
        gpu_unpin(). Unsupported without a GPU pool (kv-tierd --gpu-pool-bytes). ResourceExhausted
        when the pool is full of pinned chunks: the leading chunks that fit stay pinned, and the
        exception's `pins` attribute says which."""
        toks = _tokens(tokens)
        whole = self._whole_chunks(toks)
        limit = whole if max_chunks is None else int(max_chunks)
        if limit < 0:
            raise InvalidArgument(f"max_chunks must be >= 0, got {max_chunks!r}")
        offsets = np.zeros(max(limit, 1), dtype=np.uint64)
        pinned = c_uint64(0)
        fn = _native.required("kvt_block_gpu_pin")
        status = fn(self._require(), _ptr(toks), toks.size, _ptr(offsets), limit, byref(pinned))
        pins = GpuPins(tokens=pinned.value,
                       offsets=[int(o) for o in offsets[: pinned.value // self.tokens_per_chunk]])
        if status != 0:
            error = make_error(status, _native.lib().kvt_last_error_message().decode("utf-8", "replace"))
            error.pins = pins  # type: ignore[attr-defined]
            raise error
        return pins

    def gpu_unpin(self, tokens: Tokens) -> int:
        """Gives back one GPU pin of each chunk of the prefix that this client holds; returns the
        prefix tokens unpinned."""
        toks = _tokens(tokens)
        out = c_uint64(0)
        _check(_native.required("kvt_block_gpu_unpin")(self._require(), _ptr(toks), toks.size, byref(out)))
        return out.value

    def _simple(self, fn: str, tokens: Tokens) -> int:
        toks = _tokens(tokens)
        out = c_uint64(0)
        _check(getattr(_native.lib(), fn)(self._require(), _ptr(toks), toks.size, byref(out)))
        return out.value

    # ---- asynchronous -----------------------------------------------------------------------
    def _submit(self, kind: str, toks: np.ndarray, arr: Optional[np.ndarray], keep: Tuple[Any, ...]) -> Op:
        lib = _native.lib()
        op = c_void_p()
        ns = self._require()
        if kind == "store":
            assert arr is not None
            _check(lib.kvt_block_store_async(ns, _ptr(toks), toks.size, _ptr(arr), arr.nbytes, byref(op)))
        elif kind == "lookup":
            _check(lib.kvt_block_lookup_async(ns, _ptr(toks), toks.size, byref(op)))
        else:
            assert arr is not None
            _check(lib.kvt_block_retrieve_async(ns, _ptr(toks), toks.size, _ptr(arr), arr.nbytes, byref(op)))
        return Op(self._handle, op.value, kind, (toks, arr) + keep)

    def store_async(self, tokens: Tokens, kv: KvBuffer) -> Op:
        """store() without waiting. kv must stay untouched until the op completes."""
        toks, arr = self._store_args(tokens, kv)
        return self._submit("store", toks, arr, (kv,))

    def lookup_async(self, tokens: Tokens) -> Op:
        return self._submit("lookup", _tokens(tokens), None, ())

    def retrieve_async(self, tokens: Tokens, out: KvBuffer) -> Op:
        """retrieve_into() without waiting; out is valid once the op completes."""
        toks = _tokens(tokens)
        arr, _ = self._kv(out, "out", writable=True)
        return self._submit("retrieve", toks, arr, (out,))

    # ---- batches ----------------------------------------------------------------------------
    def lookup_batch(self, token_lists: Iterable[Tokens]) -> List[int]:
        """lookup() of many prefixes, submitted together; matched tokens for each."""
        toks = [_tokens(t) for t in token_lists]
        spans = (_native.TokenSpan * max(len(toks), 1))()
        for i, t in enumerate(toks):
            spans[i].tokens = _ptr(t)
            spans[i].num_tokens = t.size
        out = (c_uint64 * max(len(toks), 1))()
        _check(_native.lib().kvt_block_lookup_batch(self._require(), spans, len(toks), out))
        return [int(out[i]) for i in range(len(toks))]

    def store_batch(self, items: Iterable[Tuple[Tokens, KvBuffer]]) -> int:
        """store() of many (tokens, kv) pairs, submitted together; total chunks newly stored."""
        pairs = [self._store_args(t, kv, f"kv[{i}]") for i, (t, kv) in enumerate(items)]
        n = max(len(pairs), 1)
        spans = (_native.TokenSpan * n)()
        kvs = (c_void_p * n)()
        sizes = (c_uint64 * n)()
        for i, (t, a) in enumerate(pairs):
            spans[i].tokens = _ptr(t)
            spans[i].num_tokens = t.size
            kvs[i] = _ptr(a)
            sizes[i] = a.nbytes
        out = c_uint64(0)
        _check(_native.lib().kvt_block_store_batch(self._require(), spans, kvs, sizes, len(pairs), byref(out)))
        return out.value

    # ---- buffers ----------------------------------------------------------------------------
    def empty(self, chunks: int, shared: bool = True) -> np.ndarray:
        """An uninitialised array [chunks, *chunk_shape] of this namespace's dtype. shared=True
        (default): in the client's shared heap, so store/retrieve with it are zero copy;
        shared=False: ordinary process memory."""
        shape = (int(chunks),) + self.chunk_shape
        if not shared:
            return np.empty(shape, self.dtype)
        return self._client.empty(int(chunks) * self.chunk_bytes).view(self.dtype).reshape(shape)

    # ---- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None and self._handle.ptr is not None:
            _native.lib().kvt_namespace_close(ptr)

    def _detach(self) -> None:
        self.close()

    def __enter__(self) -> "Namespace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<kvtier.Namespace {self.layout}>"


# ------------------------------------------------------------------------------------------------
# Client
# ------------------------------------------------------------------------------------------------
class Client:
    """One connection to kv-tierd (kvt_client_t). Prefer :func:`connect` as a context manager."""

    def __init__(self, socket: Optional[str] = None, tenant: Optional[str] = None, heap_bytes: int = 0,
                 ring_entries: int = 0, timeout: Optional[float] = None) -> None:
        lib = _native.lib()
        opts = _native.ClientOptions()
        lib.kvt_client_options_init(byref(opts))
        socket_b = None if socket is None else str(socket).encode()
        tenant_b = None if tenant is None else str(tenant).encode()
        opts.socket_path = socket_b
        opts.tenant = tenant_b
        if not 0 <= int(heap_bytes) < 2**64 or not 0 <= int(ring_entries) < 2**32:
            raise InvalidArgument("heap_bytes and ring_entries must be non-negative")
        opts.heap_bytes = int(heap_bytes)
        opts.ring_entries = int(ring_entries)
        opts.timeout_ns = _timeout_ns(timeout, 0)
        if timeout is not None and opts.timeout_ns == 0:
            opts.timeout_ns = 1  # 0 would mean "the default"
        out = c_void_p()
        _check(lib.kvt_client_open(byref(opts), byref(out)))
        self._handle = _ClientHandle(out.value, opts.timeout_ns)

    @property
    def closed(self) -> bool:
        return self._handle.closing

    def namespace(self, layout: Optional[Layout] = None, **kwargs: Any) -> Namespace:
        """Opens a namespace: namespace(Layout(...)) or namespace(model_id=..., num_layers=...,
        num_kv_heads=..., head_dim=..., dtype='f16', tokens_per_chunk=16)."""
        if layout is None:
            try:
                layout = Layout(**kwargs)
            except TypeError as e:
                raise InvalidArgument(f"namespace(): {e}") from None
        elif kwargs:
            raise InvalidArgument("namespace(): give a Layout or keyword arguments, not both")
        return Namespace(self, layout)

    def empty(self, nbytes: int) -> np.ndarray:
        """A uint8 array of nbytes (rounded up to 4 KiB) in this client's shared heap
        (kvt_buffer_alloc): the daemon reads and writes it in place. Freed when the last view of
        it goes; the client's mapping stays until then, even after close()."""
        if int(nbytes) <= 0:
            raise InvalidArgument(f"buffer size must be positive, got {nbytes}")
        cptr = self._handle.require()
        out = c_void_p()
        _check(_native.lib().kvt_buffer_alloc(cptr, int(nbytes), byref(out)))
        self._handle.add_buffer()
        block = _SharedBlock(self._handle, out.value, int(nbytes))
        return np.asarray(block)

    def stats(self) -> DaemonStats:
        s = _native.DaemonStats()
        s.struct_size = ctypes.sizeof(s)
        _check(_native.lib().kvt_daemon_stats(self._handle.require(), byref(s)))
        values = {}
        for f in fields(DaemonStats):
            v = getattr(s, f.name)
            values[f.name] = tuple(int(x) for x in v) if isinstance(v, ctypes.Array) else int(v)
        return DaemonStats(**values)

    def evict(self, nbytes: Optional[int] = None) -> int:
        """Evicts unpinned chunks, oldest first, until nbytes are freed (None: all); returns the
        chunks evicted. Needs the daemon's uid or root."""
        out = c_uint64(0)
        amount = 2**64 - 1 if nbytes is None else int(nbytes)
        _check(_native.lib().kvt_daemon_evict(self._handle.require(), amount, byref(out)))
        return out.value

    def map_gpu_pool(self) -> GpuPool:
        """Maps the daemon's GPU pool into this process through CUDA IPC (once; later calls return
        the same mapping, valid until the client closes). Unsupported without a GPU pool, a GPU,
        or a CUDA build."""
        pool = _native.GpuPool()
        pool.struct_size = ctypes.sizeof(pool)
        _check(_native.required("kvt_gpu_pool_map")(self._handle.require(), byref(pool)))
        return GpuPool(device=int(pool.device), capacity_bytes=int(pool.capacity_bytes),
                       device_base=int(pool.device_base or 0))

    def list_namespaces(self) -> List[NamespaceInfo]:
        """Namespaces opened since the daemon started (needs the daemon's uid or root)."""
        cptr = self._handle.require()
        capacity = 16
        while True:
            arr = (_native.NamespaceInfo * capacity)()
            count = c_uint64(0)
            _check(_native.lib().kvt_daemon_list_namespaces(cptr, arr, capacity, byref(count)))
            if count.value <= capacity:
                break
            capacity = count.value
        return [NamespaceInfo(tenant=e.tenant.decode(), model_id=e.model_id.decode(), num_layers=e.num_layers,
                              num_kv_heads=e.num_kv_heads, head_dim=e.head_dim,
                              dtype=_DTYPE_NAMES.get(e.dtype, str(e.dtype)),
                              tokens_per_chunk=e.tokens_per_chunk, chunks=e.chunks, bytes=e.bytes)
                for e in arr[: count.value]]

    def close(self) -> None:
        """Closes every namespace and op of this client, then the connection (the daemon
        releases its pins). Shared arrays from empty() stay valid; the connection closes when the
        last of them goes."""
        self._handle.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<kvtier.Client {'closed' if self.closed else 'open'}>"


def connect(socket: Optional[str] = None, tenant: Optional[str] = None, heap_bytes: int = 0,
            ring_entries: int = 0, timeout: Optional[float] = None) -> Client:
    """Connects to kv-tierd. socket: None for :func:`default_socket_path` (libkvtier's search:
    $KVT_SOCKET, the system daemon's /run/kv-tierd/kv-tierd.sock, $XDG_RUNTIME_DIR, /tmp); tenant:
    None for "default"; heap_bytes: the shared heap (0: 64 MiB); ring_entries: ring depth, a power
    of two (0: 256); timeout: seconds for every blocking call (None: 10 s)."""
    return Client(socket=socket, tenant=tenant, heap_bytes=heap_bytes, ring_entries=ring_entries,
                  timeout=timeout)


def default_socket_path() -> str:
    """The socket connect() uses when none is given, resolved by libkvtier itself (so C, C++ and
    Python agree): $KVT_SOCKET; else /run/kv-tierd/kv-tierd.sock when a socket is there (the
    system daemon of the packaged systemd unit); else $XDG_RUNTIME_DIR/kv-tierd.sock; else
    /tmp/kv-tierd-<uid>.sock."""
    fn = _native.optional("kvt_default_socket_path")
    if fn is None:
        raise Unsupported(f"{_native.library_path()} predates kvt_default_socket_path (C ABI 1.1)")
    n = int(fn(None, 0))
    buf = ctypes.create_string_buffer(n + 1)
    n = int(fn(buf, n + 1))
    return buf.value[:n].decode("utf-8", "surrogateescape")


def version() -> Tuple[int, int, int]:
    """The C ABI version of the loaded libkvtier (semantic: major, minor, patch)."""
    a, b, c = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
    _native.lib().kvt_version(byref(a), byref(b), byref(c))
    return (a.value, b.value, c.value)


def protocol_version() -> Tuple[int, int]:
    """The wire protocol (major, minor) the loaded libkvtier speaks."""
    v = int(_native.lib().kvt_protocol_version())
    return (v >> 16, v & 0xFFFF)
