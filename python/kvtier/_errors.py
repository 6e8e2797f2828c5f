"""Exceptions of the kvtier package: one class per kvt_status_t, all under KvtError.

Every failure of the C ABI becomes an exception carrying the status (``.status``, a
:class:`Status`) and the library's readable message (``.message``, from
``kvt_last_error_message()`` read on the failing thread). A miss is never an error: lookup and
retrieve return 0.
"""
from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """kvt_status_t (include/kvt/kvt.h)."""

    OK = 0
    INVALID_ARGUMENT = 1
    NOT_FOUND = 2
    ALREADY_EXISTS = 3
    RESOURCE_EXHAUSTED = 4
    TIMEOUT = 5
    IO_ERROR = 6
    CORRUPTION = 7
    PROTOCOL_MISMATCH = 8
    PERMISSION_DENIED = 9
    DISCONNECTED = 10
    UNSUPPORTED = 11
    BUSY = 12
    INTERNAL = 13


class KvtError(Exception):
    """Base of every kvtier error. ``status``: a :class:`Status`; ``message``: readable text."""

    status: Status = Status.INTERNAL

    def __init__(self, message: str, status: "Status | int | None" = None) -> None:
        #: the raw kvt_status_t (kept even when it is newer than this package's Status)
        self.code = int(status) if status is not None else int(self.status)
        if status is not None:
            try:
                self.status = Status(status)
            except ValueError:  # a status newer than this package: keep the class's own
                pass
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.status.name}: {self.message}"


class InvalidArgument(KvtError, ValueError):
    """A malformed request: wrong shape, dtype or size, bad handle, bad option."""

    status = Status.INVALID_ARGUMENT


class NotFound(KvtError):
    status = Status.NOT_FOUND


class AlreadyExists(KvtError):
    status = Status.ALREADY_EXISTS


class ResourceExhausted(KvtError):
    """Capacity, quota, ring or shared heap full."""

    status = Status.RESOURCE_EXHAUSTED


class Timeout(KvtError, TimeoutError):
    """The deadline passed. For an async op the operation may still complete: wait again."""

    status = Status.TIMEOUT


class IoError(KvtError):
    status = Status.IO_ERROR


class Corruption(KvtError):
    status = Status.CORRUPTION


class ProtocolMismatch(KvtError):
    """Client library and daemon (or this package and libkvtier) speak incompatible versions."""

    status = Status.PROTOCOL_MISMATCH


class PermissionDenied(KvtError):
    status = Status.PERMISSION_DENIED


class Disconnected(KvtError, ConnectionError):
    """No daemon listening, or the daemon went away."""

    status = Status.DISCONNECTED


class Unsupported(KvtError):
    status = Status.UNSUPPORTED


class Busy(KvtError):
    status = Status.BUSY


class InternalError(KvtError):
    status = Status.INTERNAL


class LibraryNotFound(KvtError, ImportError):
    """libkvtier.so could not be loaded (set KVT_LIBRARY to its path)."""

    status = Status.UNSUPPORTED


_BY_STATUS = {
    cls.status: cls
    for cls in (InvalidArgument, NotFound, AlreadyExists, ResourceExhausted, Timeout, IoError,
                Corruption, ProtocolMismatch, PermissionDenied, Disconnected, Unsupported, Busy,
                InternalError)
}


def error_class(status: int) -> type:
    """The exception class for a kvt_status_t value (KvtError for an unknown one)."""
    try:
        return _BY_STATUS[Status(status)]
    except (ValueError, KeyError):
        return KvtError


def make_error(status: int, message: str) -> KvtError:
    return error_class(status)(message, status)
