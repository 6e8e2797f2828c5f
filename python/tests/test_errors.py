"""Every error path raises the right exception, with the status and a readable message."""
from __future__ import annotations

import struct

import numpy as np
import pytest

import kvtier
from conftest import Daemon, kv, tokens
from fake_daemon import FakeDaemon


def check(excinfo, cls, status, *words):
    e = excinfo.value
    assert type(e) is cls, repr(e)
    assert isinstance(e, kvtier.KvtError)
    assert e.status == status and e.code == int(status)
    for w in words:
        assert w in e.message, e.message
    assert str(e).startswith(status.name + ": ")


# ---- connecting ---------------------------------------------------------------------------------
def test_no_daemon_is_disconnected(tmp_path):
    with pytest.raises(kvtier.Disconnected) as e:
        kvtier.connect(socket=str(tmp_path / "nobody.sock"))
    check(e, kvtier.Disconnected, kvtier.Status.DISCONNECTED, "no kv-tierd listening")
    assert isinstance(e.value, ConnectionError)


@pytest.mark.parametrize("kwargs,words", [
    ({"tenant": "bad tenant!"}, ["tenant"]),
    ({"tenant": "x" * 64}, ["tenant"]),
    ({"ring_entries": 3}, ["power of two"]),
    ({"heap_bytes": 1 << 50}, ["heap_bytes"]),
])
def test_bad_client_options_are_invalid_argument(daemon, kwargs, words):
    with pytest.raises(kvtier.InvalidArgument) as e:
        kvtier.connect(socket=daemon.socket, **kwargs)
    check(e, kvtier.InvalidArgument, kvtier.Status.INVALID_ARGUMENT, *words)
    assert isinstance(e.value, ValueError)


def test_negative_timeout_is_invalid_argument(daemon):
    with pytest.raises(kvtier.InvalidArgument, match="timeout"):
        kvtier.connect(socket=daemon.socket, timeout=-1)


def test_incompatible_daemon_protocol_is_refused(tmp_path):
    """A client built for ABI/protocol 1 refuses a daemon speaking protocol 2, with both versions
    in the message (the C-level twin is tests/integration/core/bad_input_test.cc)."""
    with FakeDaemon(str(tmp_path / "v2.sock"), protocol_version=(2 << 16) | 3) as fake:
        with pytest.raises(kvtier.ProtocolMismatch) as e:
            kvtier.connect(socket=fake.path, timeout=5)
        ours = "%d.%d" % kvtier.protocol_version()
        check(e, kvtier.ProtocolMismatch, kvtier.Status.PROTOCOL_MISMATCH, "daemon speaks protocol 2.3",
              f"this libkvtier speaks {ours}")
        # The client announced its own version: the daemon can refuse it too.
        magic, version = struct.unpack_from("<II", fake.hellos[0])
        assert (magic, version >> 16) == (0x4B565431, 1)


def test_a_peer_that_is_not_kv_tierd_is_refused(tmp_path):
    with FakeDaemon(str(tmp_path / "http.sock"), magic=0x50545448) as fake:
        with pytest.raises(kvtier.ProtocolMismatch, match="not kv-tierd"):
            kvtier.connect(socket=fake.path, timeout=5)


def test_a_silent_daemon_times_out(tmp_path):
    with FakeDaemon(str(tmp_path / "silent.sock"), silent=True) as fake:
        with pytest.raises(kvtier.Timeout) as e:
            kvtier.connect(socket=fake.path, timeout=0.3)
        assert e.value.status == kvtier.Status.TIMEOUT and isinstance(e.value, TimeoutError)


ALL_CLASSES = {
    kvtier.Status.INVALID_ARGUMENT: kvtier.InvalidArgument,
    kvtier.Status.NOT_FOUND: kvtier.NotFound,
    kvtier.Status.ALREADY_EXISTS: kvtier.AlreadyExists,
    kvtier.Status.RESOURCE_EXHAUSTED: kvtier.ResourceExhausted,
    kvtier.Status.TIMEOUT: kvtier.Timeout,
    kvtier.Status.IO_ERROR: kvtier.IoError,
    kvtier.Status.CORRUPTION: kvtier.Corruption,
    kvtier.Status.PROTOCOL_MISMATCH: kvtier.ProtocolMismatch,
    kvtier.Status.PERMISSION_DENIED: kvtier.PermissionDenied,
    kvtier.Status.DISCONNECTED: kvtier.Disconnected,
    kvtier.Status.UNSUPPORTED: kvtier.Unsupported,
    kvtier.Status.BUSY: kvtier.Busy,
    kvtier.Status.INTERNAL: kvtier.InternalError,
}


@pytest.mark.parametrize("status", list(ALL_CLASSES), ids=lambda s: s.name)
def test_every_status_from_the_library_maps_to_its_exception(tmp_path, status):
    """A daemon refusing the handshake with each status: the code travels through libkvtier's C
    ABI and kvt_last_error_message() into the matching exception."""
    with FakeDaemon(str(tmp_path / "r.sock"), status=int(status), message=f"refused with {status.name}") as fake:
        with pytest.raises(kvtier.KvtError) as e:
            kvtier.connect(socket=fake.path, timeout=5)
    check(e, ALL_CLASSES[status], status, "daemon refused the connection", f"refused with {status.name}")


def test_unknown_status_keeps_its_code():
    from kvtier._errors import make_error
    e = make_error(99, "from the future")
    assert type(e) is kvtier.KvtError and e.code == 99


# ---- namespaces -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,words", [
    ({"num_layers": 0}, ["layer"]),
    ({"model_id": ""}, ["model"]),
    ({"tokens_per_chunk": 0}, ["tokens_per_chunk"]),
    ({"head_dim": -1}, ["head_dim"]),
])
def test_bad_layouts_are_invalid_argument(client, kwargs, words):
    base = dict(model_id="m", num_layers=2, num_kv_heads=2, head_dim=16, dtype="f16", tokens_per_chunk=16)
    with pytest.raises(kvtier.InvalidArgument) as e:
        client.namespace(**{**base, **kwargs})
    for w in words:
        assert w in e.value.message, e.value.message


def test_bad_dtype_and_arguments(client):
    with pytest.raises(kvtier.InvalidArgument, match="dtype"):
        kvtier.Layout(model_id="m", num_layers=1, num_kv_heads=1, head_dim=8, dtype="int8")
    with pytest.raises(kvtier.InvalidArgument, match="namespace"):
        client.namespace(model_id="m", layers=3)


# ---- block calls ------------------------------------------------------------------------------
def test_kv_shape_dtype_and_size_are_checked(ns):
    t = tokens(1, 32)
    good = kv(ns, 1, 2)
    with pytest.raises(kvtier.InvalidArgument, match=r"shape \(2, 2, 2, 16, 4, 8\)"):
        ns.store(t, good.reshape(2, 2, 2, 16, 4, 8))
    with pytest.raises(kvtier.InvalidArgument, match="dtype float32"):
        ns.store(t, good.astype(np.float32))
    with pytest.raises(kvtier.InvalidArgument, match="holds 1 chunks but the tokens cover 2"):
        ns.store(t, good[:1])
    with pytest.raises(kvtier.InvalidArgument, match="not a whole number of chunks"):
        ns.store(t, bytes(ns.chunk_bytes + 1))
    with pytest.raises(kvtier.InvalidArgument, match="numpy array, a buffer-protocol object or a DLPack"):
        ns.store(t, object())
    with pytest.raises(kvtier.InvalidArgument, match="kv\\[1\\]"):
        ns.store_batch([(t, good), (t, good[:1])])


@pytest.mark.parametrize("bad,words", [
    (np.array([-1, 2, 3]), "uint32"),
    (np.array([2**33]), "uint32"),
    (np.zeros((2, 16), np.uint32), "one-dimensional"),
    (np.zeros(16, np.float32), "integers"),
    ([1, "x"], "integers"),
])
def test_bad_tokens_are_invalid_argument(ns, bad, words):
    with pytest.raises(kvtier.InvalidArgument, match=words):
        ns.lookup(bad)


def test_closed_objects_are_refused(daemon):
    c = kvtier.connect(socket=daemon.socket)
    ns = c.namespace(model_id="closed", num_layers=1, num_kv_heads=1, head_dim=8, tokens_per_chunk=4)
    ns.close()
    with pytest.raises(kvtier.InvalidArgument, match="namespace is closed"):
        ns.lookup([1, 2, 3, 4])
    c.close()
    c.close()  # idempotent
    for call in (c.stats, lambda: c.empty(4096), lambda: c.namespace(ns.layout)):
        with pytest.raises(kvtier.InvalidArgument, match="client is closed"):
            call()


def test_full_host_tier_of_pinned_chunks_is_resource_exhausted(tmp_path):
    d = Daemon(tmp_path, host_capacity="16MiB").start()
    try:
        with kvtier.connect(socket=d.socket) as c:
            ns = c.namespace(model_id="fill", num_layers=2, num_kv_heads=2, head_dim=16, tokens_per_chunk=16)
            with pytest.raises(kvtier.ResourceExhausted) as e:
                for i in range(64):  # 64 x 256 chunks x 4 KiB = 64 MiB > 16 MiB, all pinned
                    t = tokens(10_000 + i, 256 * 16)
                    ns.store(t, kv(ns, i, 256))
                    assert ns.pin(t) == t.size
            assert e.value.message
            assert c.stats().pinned_chunks > 0
    finally:
        assert d.stop() == 0, d.log()


def test_daemon_gone_is_disconnected(tmp_path):
    d = Daemon(tmp_path).start()
    c = kvtier.connect(socket=d.socket, timeout=5)
    ns = c.namespace(model_id="gone", num_layers=1, num_kv_heads=1, head_dim=8, tokens_per_chunk=4)
    assert ns.lookup([1, 2, 3, 4]) == 0
    d.kill()
    with pytest.raises(kvtier.Disconnected) as e:
        for _ in range(3):  # the first call may still race the socket's closing
            ns.store([1, 2, 3, 4], np.zeros((1,) + ns.chunk_shape, np.float16))
    assert e.value.message
    c.close()


# ---- the library itself -----------------------------------------------------------------------
def _import_with_library(path: str) -> "subprocess.CompletedProcess":
    import os
    import subprocess
    import sys
    from conftest import REPO
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kvtier\n"
            "try:\n    kvtier.version()\nexcept kvtier.KvtError as e:\n"
            "    print(type(e).__name__, '|', e.message); sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code, str(REPO / "python")], capture_output=True, text=True,
                          env={**os.environ, "KVT_LIBRARY": path}, timeout=60)


def test_missing_library_is_library_not_found(tmp_path):
    r = _import_with_library(str(tmp_path / "libkvtier.so.1"))
    assert r.returncode == 3, r.stderr
    assert r.stdout.startswith("LibraryNotFound | KVT_LIBRARY=") and "no such file" in r.stdout


def test_a_library_of_another_abi_major_is_refused(tmp_path):
    """Semantic versioning of the C ABI: this package (ABI 1) refuses a libkvtier 2.x."""
    import shutil
    import subprocess
    from kvtier import _native
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a stand-in libkvtier 2.0")
    source = tmp_path / "fake.c"
    stubs = "".join(f"void {name}(void) {{}}\n" for name in _native._PROTOTYPES if name != "kvt_version")
    source.write_text("#include <stdint.h>\n" + stubs +
                      "void kvt_version(uint32_t* a, uint32_t* b, uint32_t* c) { *a = 2; *b = 0; *c = 0; }\n")
    lib = tmp_path / "libkvtier.so.2"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    r = _import_with_library(str(lib))
    assert r.returncode == 3, r.stderr
    assert r.stdout.startswith("ProtocolMismatch | ") and "implements C ABI 2.0.0" in r.stdout, r.stdout
