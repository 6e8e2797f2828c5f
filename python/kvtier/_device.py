"""Device pointers for the GPU sequence calls (Sequence.append_on_device, attend_on_device,
select_on_device): what kvtier accepts as device memory and as a CUDA stream, without importing
any GPU framework.

A device buffer is either
  * an int: a raw device pointer (the caller vouches for its size, dtype and device), or
  * any object exposing ``__cuda_array_interface__`` (CuPy, Numba, PyTorch CUDA tensors, ...):
    its shape, dtype (float32 only) and strides (C-contiguous only) are checked, never converted.
A stream is None, an int (a cudaStream_t; 0 is the legacy default stream, 1 and 2 CUDA's
cudaStreamLegacy and cudaStreamPerThread handles), or an object with a ``cuda_stream`` (PyTorch)
or ``ptr`` (CuPy) attribute. None takes the stream named by the first array's interface (version
3 "stream" key), else the legacy default stream.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

from ._errors import InvalidArgument

_HINT = ("pass an int device pointer or an object with __cuda_array_interface__ (CuPy, Numba, a "
         "PyTorch CUDA tensor); host arrays go to append()/attend()/select()")


class DeviceBuffer(NamedTuple):
    """A checked device buffer: its address, shape (None for a raw int) and producer's stream."""

    ptr: int
    shape: Optional[Tuple[int, ...]]
    stream: Optional[int]


def device_buffer(obj: Any, what: str, writable: bool = False) -> DeviceBuffer:
    """The address (and shape, for an array interface) of a float32 C-contiguous device buffer."""
    if isinstance(obj, bool):
        raise InvalidArgument(f"{what} must be a device pointer, not a bool")
    if isinstance(obj, int):
        if obj <= 0 or obj >= 1 << 64:
            raise InvalidArgument(f"{what}: device pointer {obj:#x} is not a valid address")
        return DeviceBuffer(int(obj), None, None)
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is None:
        kind = type(obj).__module__ + "." + type(obj).__name__
        raise InvalidArgument(f"{what} is a {kind}, not device memory: {_HINT}")
    if not isinstance(cai, dict) or "shape" not in cai or "typestr" not in cai or "data" not in cai:
        raise InvalidArgument(f"{what}: malformed __cuda_array_interface__ (needs shape, typestr, data)")
    shape = tuple(int(n) for n in cai["shape"])
    typestr = str(cai["typestr"])
    if typestr not in ("<f4", "=f4"):
        raise InvalidArgument(f"{what} must be float32 (typestr '<f4'), got typestr {typestr!r} (kvtier never "
                              "converts behind your back: cast it to float32 on the device first)")
    strides = cai.get("strides")
    if strides is not None:
        expected, step = [], 4
        for n in reversed(shape):
            expected.append(step)
            step *= n
        if tuple(int(s) for s in strides) != tuple(reversed(expected)) and _elements(shape) > 1:
            raise InvalidArgument(f"{what} must be C-contiguous (shape {list(shape)}, strides {list(strides)}): "
                                  "pass a contiguous copy")
    if cai.get("mask") is not None:
        raise InvalidArgument(f"{what}: masked arrays are not supported")
    data = cai["data"]
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise InvalidArgument(f"{what}: __cuda_array_interface__ data must be (pointer, read_only)")
    ptr, readonly = int(data[0] or 0), bool(data[1])
    if writable and readonly:
        raise InvalidArgument(f"{what} is read-only; the call writes it")
    if ptr == 0 and _elements(shape) > 0:
        raise InvalidArgument(f"{what}: null device pointer")
    stream = cai.get("stream")
    return DeviceBuffer(ptr, shape, None if stream is None else int(stream))


def _elements(shape: Tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def check_shape(buf: DeviceBuffer, what: str, shape: Tuple[int, ...]) -> None:
    """InvalidArgument unless an array interface's shape is `shape` (raw pointers are not checked)."""
    if buf.shape is not None and buf.shape != tuple(shape):
        raise InvalidArgument(f"{what} must have shape {list(shape)}, got {list(buf.shape)}")


def stream_handle(stream: Any, *buffers: DeviceBuffer) -> int:
    """The cudaStream_t value for `stream` (see the module docstring)."""
    if stream is None:
        for b in buffers:
            if b.stream is not None:
                return b.stream
        return 0
    if isinstance(stream, bool):
        raise InvalidArgument("stream must be a cudaStream_t (int) or a stream object, not a bool")
    if isinstance(stream, int):
        if stream < 0 or stream >= 1 << 64:
            raise InvalidArgument(f"stream {stream} is not a cudaStream_t")
        return stream
    for attr in ("cuda_stream", "ptr", "handle"):
        value = getattr(stream, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if value is not None and hasattr(value, "value"):  # numba: a ctypes c_void_p
            return int(value.value or 0)
    raise InvalidArgument(f"stream must be an int cudaStream_t or an object with cuda_stream / ptr, not "
                          f"{type(stream).__name__}")


class DeviceArrayView:
    """A read-only fp16 device array kvtier hands back (select_on_device): exposes
    ``__cuda_array_interface__`` (version 3) so CuPy, Numba or PyTorch can wrap it without a copy
    (``torch.as_tensor(view, device="cuda")``, ``cupy.asarray(view)``). Its stream is the one the
    selection was ordered on. Valid until the next call on the sequence."""

    def __init__(self, ptr: int, shape: Tuple[int, ...], strides_elems: Tuple[int, ...], stream: int) -> None:
        self.ptr = ptr
        self.shape = shape
        self.strides = tuple(2 * s for s in strides_elems)  # bytes
        self._stream = stream

    @property
    def __cuda_array_interface__(self) -> dict:
        # Interface v3: stream 0 is not allowed; the legacy default stream is 1.
        return {"shape": self.shape, "typestr": "<f2", "data": (self.ptr, True), "strides": self.strides,
                "version": 3, "stream": self._stream if self._stream else 1}

    def __repr__(self) -> str:
        return f"<kvtier.DeviceArrayView float16 {list(self.shape)} at {self.ptr:#x}>"
