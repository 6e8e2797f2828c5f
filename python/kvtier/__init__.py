"""kvtier — Python client of kv-tierd, the KV-cache tiering daemon.

    import numpy as np, kvtier
    with kvtier.connect() as client:
        ns = client.namespace(model_id="llama-3.1-8b@abc", num_layers=32, num_kv_heads=8,
                              head_dim=128, dtype="f16", tokens_per_chunk=16)
        kv = ns.empty(chunks=4)            # shared memory: zero copy
        ...fill kv...
        ns.store(tokens[:64], kv)
        hit = ns.lookup(tokens)            # tokens whose KV is cached
        ns.retrieve_into(tokens[:hit], kv)
        with kvtier.Sequence(plan_text, client=client) as seq:   # the sequence plane, in-process
            seq.append(layer, keys, values); out = seq.attend(layer, query)

Built on libkvtier's C ABI through ctypes (one ABI for C, C++ and Python). See README.md.
"""
from ._client import (Client, DaemonStats, GpuPins, GpuPool, Layout, Namespace, NamespaceInfo, Op, connect,
                      default_socket_path, protocol_version, version)
from ._errors import (AlreadyExists, Busy, Corruption, Disconnected, InternalError, InvalidArgument,
                      IoError, KvtError, LibraryNotFound, NotFound, PermissionDenied, ProtocolMismatch,
                      ResourceExhausted, Status, Timeout, Unsupported)
from ._device import DeviceArrayView
from ._native import ABI_MAJOR, library_path
from ._sequence import POLICIES, DeviceKvSegment, KvSegment, Sequence

__version__ = "0.1.0"

__all__ = [
    "ABI_MAJOR", "AlreadyExists", "Busy", "Client", "Corruption", "DaemonStats", "DeviceArrayView",
    "DeviceKvSegment", "Disconnected",
    "GpuPins", "GpuPool", "InternalError", "InvalidArgument", "IoError", "KvSegment", "KvtError", "Layout",
    "LibraryNotFound", "Namespace", "NamespaceInfo", "NotFound", "Op", "POLICIES", "PermissionDenied",
    "ProtocolMismatch", "ResourceExhausted", "Sequence", "Status", "Timeout", "Unsupported", "connect",
    "default_socket_path", "library_path", "protocol_version", "version", "__version__",
]
