"""ctypes declarations of the C ABI in include/kvt/kvt.h, and how libkvtier is found.

The library is looked up, first hit wins:
  1. $KVT_LIBRARY (a path to libkvtier.so*), an error if it does not load;
  2. next to this package: kvtier/lib/libkvtier.so.<abi major> (a wheel built with
     KVTIER_BUNDLE_LIBRARY), then kvtier/lib/libkvtier.so;
  3. the dynamic loader: libkvtier.so.<abi major> (LD_LIBRARY_PATH, ldconfig cache), which is
     where `make install` puts it.
ctypes releases the GIL for the duration of every foreign call, so a blocking call in one
thread never stalls the others.
"""
from __future__ import annotations

import ctypes
import os
import threading
from ctypes import POINTER, Structure, c_char, c_char_p, c_int, c_int32, c_int64, c_uint32, c_uint64, c_void_p

from ._errors import LibraryNotFound, ProtocolMismatch, Unsupported

#: The C ABI major this package is written against (KVT_ABI_VERSION_MAJOR).
ABI_MAJOR = 1
#: The oldest ABI minor providing every function declared here.
ABI_MINOR_MIN = 0


class ClientOptions(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("socket_path", c_char_p),
        ("tenant", c_char_p),
        ("heap_bytes", c_uint64),
        ("ring_entries", c_uint32),
        ("timeout_ns", c_int64),
    ]


class Layout(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("model_id", c_char_p),
        ("num_layers", c_uint32),
        ("num_kv_heads", c_uint32),
        ("head_dim", c_uint32),
        ("dtype", c_int),  # kvt_dtype_t
        ("tokens_per_chunk", c_uint32),
    ]


class TokenSpan(Structure):
    _fields_ = [("tokens", c_void_p), ("num_tokens", c_uint64)]


STATS_FIELDS = ("uptime_ns", "clients", "host_capacity_bytes", "host_used_bytes", "host_chunks",
                "pinned_chunks", "hits", "misses", "stores", "lookups", "retrieves", "evictions",
                "bad_requests", "nvme_capacity_bytes", "nvme_used_bytes", "nvme_chunks")


#: Appended in C ABI 1.1: the sequence plane (a 1.0 library leaves them 0).
SEQUENCE_STATS_FIELDS = ("sequences", "policy_bytes", "policy_layer_tokens", "fetch_steps", "fetch_bytes",
                         "transfer_hidden_ns", "transfer_exposed_ns")


#: Appended in C ABI 1.2: the GPU tier (0 without one).
GPU_STATS_FIELDS = ("gpu_capacity_bytes", "gpu_used_bytes", "gpu_chunks", "gpu_pinned_chunks")
#: Appended in C ABI 1.6: shared-heap bytes held by in-client sequences' host tiers.
HEAP_STATS_FIELDS = ("sequence_host_tier_heap_bytes",)


class DaemonStats(Structure):
    _fields_ = [("struct_size", c_uint32), ("protocol_version", c_uint32)] + [
        (name, c_uint64) for name in STATS_FIELDS] + [
        ("sequences", c_uint64), ("policy_bytes", c_uint64 * 4), ("policy_layer_tokens", c_uint64 * 4),
        ("fetch_steps", c_uint64), ("fetch_bytes", c_uint64), ("transfer_hidden_ns", c_uint64),
        ("transfer_exposed_ns", c_uint64)] + [(name, c_uint64) for name in GPU_STATS_FIELDS + HEAP_STATS_FIELDS]


class KvSegment(Structure):
    """kvt_kv_segment_t: fp16 bits; element (t, h, c) at keys[t * token_stride + h * head_stride + c]."""

    _fields_ = [("keys", c_void_p), ("values", c_void_p), ("tokens", c_int64), ("token_stride", c_int64),
                ("head_stride", c_int64)]


class DeviceKvSegment(Structure):
    """kvt_device_kv_segment_t (C ABI 1.5): as KvSegment, device pointers; memory: kvt_kv_memory_t."""

    _fields_ = [("keys", c_void_p), ("values", c_void_p), ("tokens", c_int64), ("token_stride", c_int64),
                ("head_stride", c_int64), ("memory", c_uint32), ("reserved", c_uint32)]


class DeviceSelection(Structure):
    """kvt_device_selection_t (C ABI 1.5)."""

    _fields_ = [("struct_size", c_uint32), ("count", c_uint32), ("tokens", c_int64),
                ("segments", DeviceKvSegment * 4)]


#: kvt_kv_memory_t names, by value.
KV_MEMORY = ("device", "mapped_host")


class NamespaceInfo(Structure):
    _fields_ = [
        ("tenant", c_char * 64),
        ("model_id", c_char * 256),
        ("num_layers", c_uint32),
        ("num_kv_heads", c_uint32),
        ("head_dim", c_uint32),
        ("dtype", c_uint32),
        ("tokens_per_chunk", c_uint32),
        ("reserved", c_uint32),
        ("chunks", c_uint64),
        ("bytes", c_uint64),
    ]


class GpuPool(Structure):
    _fields_ = [("struct_size", c_uint32), ("device", c_int32), ("capacity_bytes", c_uint64),
                ("device_base", c_void_p)]


_u32p = POINTER(c_uint32)
_u64p = POINTER(c_uint64)
_vpp = POINTER(c_void_p)
S = c_int  # kvt_status_t

# name: (restype, argtypes)
_PROTOTYPES = {
    "kvt_status_name": (c_char_p, [c_int]),
    "kvt_last_error_message": (c_char_p, []),
    "kvt_version": (None, [_u32p, _u32p, _u32p]),
    "kvt_protocol_version": (c_uint32, []),
    "kvt_client_options_init": (None, [POINTER(ClientOptions)]),
    "kvt_client_open": (S, [POINTER(ClientOptions), _vpp]),
    "kvt_client_close": (None, [c_void_p]),
    "kvt_layout_init": (None, [POINTER(Layout)]),
    "kvt_namespace_open": (S, [c_void_p, POINTER(Layout), _vpp]),
    "kvt_namespace_close": (None, [c_void_p]),
    "kvt_namespace_chunk_bytes": (c_uint64, [c_void_p]),
    "kvt_namespace_tokens_per_chunk": (c_uint32, [c_void_p]),
    "kvt_block_store": (S, [c_void_p, c_void_p, c_uint64, c_void_p, c_uint64, _u64p]),
    "kvt_block_lookup": (S, [c_void_p, c_void_p, c_uint64, _u64p]),
    "kvt_block_retrieve": (S, [c_void_p, c_void_p, c_uint64, c_void_p, c_uint64, _u64p]),
    "kvt_block_remove": (S, [c_void_p, c_void_p, c_uint64, _u64p]),
    "kvt_block_pin": (S, [c_void_p, c_void_p, c_uint64, _u64p]),
    "kvt_block_unpin": (S, [c_void_p, c_void_p, c_uint64, _u64p]),
    "kvt_block_store_async": (S, [c_void_p, c_void_p, c_uint64, c_void_p, c_uint64, _vpp]),
    "kvt_block_lookup_async": (S, [c_void_p, c_void_p, c_uint64, _vpp]),
    "kvt_block_retrieve_async": (S, [c_void_p, c_void_p, c_uint64, c_void_p, c_uint64, _vpp]),
    "kvt_op_poll": (S, [c_void_p, _u64p]),
    "kvt_op_wait": (S, [c_void_p, c_int64, _u64p]),
    "kvt_op_release": (None, [c_void_p]),
    "kvt_block_lookup_batch": (S, [c_void_p, POINTER(TokenSpan), c_uint64, _u64p]),
    "kvt_block_store_batch": (S, [c_void_p, POINTER(TokenSpan), _vpp, _u64p, c_uint64, _u64p]),
    "kvt_buffer_alloc": (S, [c_void_p, c_uint64, _vpp]),
    "kvt_buffer_free": (None, [c_void_p, c_void_p]),
    "kvt_daemon_stats": (S, [c_void_p, POINTER(DaemonStats)]),
    "kvt_daemon_evict": (S, [c_void_p, c_uint64, _u64p]),
    "kvt_daemon_list_namespaces": (S, [c_void_p, POINTER(NamespaceInfo), c_uint64, _u64p]),
    # The sequence plane (runs in this process).
    "kvt_sequence_open": (S, [c_char_p, _vpp]),
    "kvt_sequence_close": (None, [c_void_p]),
    "kvt_sequence_append": (S, [c_void_p, c_uint32, c_void_p, c_void_p, c_uint32]),
    "kvt_sequence_attend": (S, [c_void_p, c_uint32, c_void_p, c_void_p]),
    "kvt_sequence_select": (S, [c_void_p, c_uint32, c_void_p, POINTER(KvSegment), c_uint32, _u32p]),
    "kvt_sequence_hint_next": (S, [c_void_p, c_uint32, c_void_p]),
    "kvt_sequence_suspend": (S, [c_void_p, _vpp, _u64p]),
    "kvt_sequence_resume": (S, [c_void_p, c_void_p, c_uint64]),
    "kvt_sequence_image_free": (None, [c_void_p]),
}

# Added after C ABI 1.0: declared when the library has them; optional() says whether it does.
_OPTIONAL_PROTOTYPES = {
    "kvt_sequence_attach": (S, [c_void_p, c_void_p]),
    "kvt_default_socket_path": (c_uint64, [c_char_p, c_uint64]),
    # Added in C ABI 1.2.
    "kvt_sequence_suspend_to_file": (S, [c_void_p, c_char_p]),
    "kvt_sequence_resume_from_file": (S, [c_void_p, c_char_p]),
    "kvt_gpu_pool_map": (S, [c_void_p, POINTER(GpuPool)]),
    "kvt_block_gpu_pin": (S, [c_void_p, c_void_p, c_uint64, c_void_p, c_uint64, _u64p]),
    "kvt_block_gpu_unpin": (S, [c_void_p, c_void_p, c_uint64, _u64p]),
    # Added in C ABI 1.3.
    "kvt_sequence_open_on_device": (S, [c_char_p, c_int32, _vpp]),
    "kvt_sequence_attend_on_device": (S, [c_void_p, c_uint32, c_void_p, c_void_p, c_void_p]),
    # Added in C ABI 1.4.
    "kvt_sequence_observe": (S, [c_void_p, c_uint32, c_void_p, c_uint32]),
    # Added in C ABI 1.5.
    "kvt_sequence_append_on_device": (S, [c_void_p, c_uint32, c_void_p, c_void_p, c_uint32, c_void_p]),
    "kvt_sequence_select_on_device": (S, [c_void_p, c_uint32, c_void_p, c_void_p, POINTER(DeviceSelection)]),
    "kvt_sequence_open_in_client": (S, [c_void_p, c_char_p, c_int32, POINTER(c_void_p)]),
}

_lock = threading.Lock()
_lib: "ctypes.CDLL | None" = None
_lib_path: "str | None" = None


def _candidates() -> "list[tuple[str, bool]]":
    """(name or path, explicit) in lookup order; explicit ones must load."""
    env = os.environ.get("KVT_LIBRARY")
    if env:
        return [(env, True)]
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
    out = [(os.path.join(here, f"libkvtier.so.{ABI_MAJOR}"), False),
           (os.path.join(here, "libkvtier.so"), False)]
    out.append((f"libkvtier.so.{ABI_MAJOR}", False))
    return out


def _load() -> "tuple[ctypes.CDLL, str]":
    tried = []
    for name, explicit in _candidates():
        if os.sep in name and not os.path.exists(name):
            if explicit:
                raise LibraryNotFound(f"KVT_LIBRARY={name}: no such file")
            tried.append(f"{name} (absent)")
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            if explicit:
                raise LibraryNotFound(f"KVT_LIBRARY={name} does not load: {e}") from e
            tried.append(f"{name} ({e})")
    raise LibraryNotFound("libkvtier not found; set KVT_LIBRARY to the path of libkvtier.so, or install "
                          "it (make install) where the dynamic loader looks. Tried: " + "; ".join(tried))


def lib() -> ctypes.CDLL:
    """The loaded libkvtier, with prototypes declared and its ABI version checked."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        handle, path = _load()
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(handle, name)
            except AttributeError as e:
                raise ProtocolMismatch(f"{path} lacks {name}: it is older than C ABI "
                                       f"{ABI_MAJOR}.{ABI_MINOR_MIN}") from e
            fn.restype = restype
            fn.argtypes = argtypes
        for name, (restype, argtypes) in _OPTIONAL_PROTOTYPES.items():
            fn = getattr(handle, name, None)
            if fn is not None:
                fn.restype = restype
                fn.argtypes = argtypes
        major, minor, patch = c_uint32(), c_uint32(), c_uint32()
        handle.kvt_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
        if major.value != ABI_MAJOR or minor.value < ABI_MINOR_MIN:
            raise ProtocolMismatch(
                f"{path} implements C ABI {major.value}.{minor.value}.{patch.value}; this kvtier package "
                f"needs {ABI_MAJOR}.x with x >= {ABI_MINOR_MIN}")
        _lib, _lib_path = handle, path
        return handle


def library_path() -> str:
    """Where the loaded libkvtier came from (loads it if needed)."""
    lib()
    assert _lib_path is not None
    return _lib_path


def optional(name: str):
    """A C ABI 1.x (x >= 1) function of the loaded library, or None when it is older."""
    if name not in _OPTIONAL_PROTOTYPES:
        raise KeyError(name)
    return getattr(lib(), name, None)


def required(name: str, abi: str = "1.2"):
    """An optional C ABI function of the loaded library; Unsupported when the library predates it."""
    fn = optional(name)
    if fn is None:
        raise Unsupported(f"{library_path()} predates {name} (C ABI {abi})")
    return fn
