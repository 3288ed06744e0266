"""The grader's handle on a learner's functions that run in another process.

In graded mode the learner's exercise functions never run in the grader. A worker process
(`lmlab.course.worker`, in a `Sandbox`) executes the submission's imports and exercise cells, then calls
the functions when the grader asks. The grader keeps the checkers, the references and the hidden cases;
it sends only the inputs of each call and gets back only plain values, so nothing the learner's code does
in the worker (patching a checker, writing a file) can change a grade.

The messages are frames: an 8-byte length, then the payload. From the grader to the worker: a pickle of
``(command, payload)`` (the worker trusts the grader). From the worker to the grader: a ``torch.save`` of
plain data, read back with ``torch.load(weights_only=True)``, which builds only tensors and built-in
containers and never runs code from the message; `Opaque` values travel as tagged dicts.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import struct
import subprocess
import time
from collections.abc import Callable
from typing import Any

import torch

from lmlab.exercises.describe import Opaque
from lmlab.exercises.failures import (
    CheckFailed,
    ForbiddenCall,
    InputChanged,
    LearnerError,
    NotSolved,
    TimeLimitExceeded,
)
from lmlab.exercises.fixtures import parameter_with_grad
from lmlab.exercises.guards import Rules
from lmlab.exercises.safety import CheckedCaller, call_safely

__all__ = ["WorkerLost", "WorkerSession", "RemoteFunction", "write_frame", "read_frame", "encode", "decode", "dumps"]

_HEADER = struct.Struct("!Q")
MAX_FRAME = 512 * 2**20  # a reply larger than this is refused
GRACE = 5.0  # seconds past a call's time limit before the worker is killed
_TAG = "__lmlab__"
_FAILURES = {cls.__name__: cls for cls in (CheckFailed, NotSolved, LearnerError, TimeLimitExceeded, ForbiddenCall,
                                           InputChanged)}


class WorkerLost(Exception):
    """The worker did not answer in time, died, or answered something unreadable; it has been killed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "timeout" | "died" | "garbled"


# ----------------------------------------------------------------------------------------------------
# Frames and values


def write_frame(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd: int, deadline: float | None = None) -> bytes:
    """One frame from `fd`; raises WorkerLost on end of file, past the deadline, or for an oversized frame."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise WorkerLost("garbled", f"the worker sent a message of {size:,} bytes")
    return _read_exactly(fd, size, deadline)


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    parts, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerLost("timeout", "no answer before the time limit")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise WorkerLost("died", "the process stopped")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _Pickler(pickle.Pickler):
    """Pickles a parameter together with its gradient (pickle alone drops ``.grad``)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.nn.Parameter) and obj.grad is not None:
            return parameter_with_grad, (obj.detach(), obj.requires_grad, obj.grad.detach())
        return NotImplemented


def dumps(obj: Any) -> bytes:
    """A pickle for the worker (grader -> worker only)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def _tag(value: Any) -> Any:
    if isinstance(value, Opaque):
        return {_TAG: "opaque", "type": value.type_name, "text": value.text}
    if value is Ellipsis:
        return {_TAG: "ellipsis"}
    if isinstance(value, frozenset):
        return {_TAG: "frozenset", "items": [_tag(v) for v in value]}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_tag(v) for v in value)
    if isinstance(value, dict):
        return {_tag(k): _tag(v) for k, v in value.items()}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get(_TAG), str):
        kind = value[_TAG]
        if kind == "opaque":
            return Opaque(str(value.get("type")), str(value.get("text")))
        if kind == "frozenset":
            return frozenset(_untag(v) for v in value.get("items", []))
        return Ellipsis
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_untag(v) for v in value)
    if isinstance(value, dict):
        return {_untag(k): _untag(v) for k, v in value.items()}
    return value


def encode(value: Any) -> bytes:
    """Plain data as bytes for `decode` (worker -> grader)."""
    buf = io.BytesIO()
    torch.save(_tag(value), buf)
    return buf.getvalue()


def decode(data: bytes) -> Any:
    """The plain data `encode` wrote; builds no object but tensors and built-in values."""
    return _untag(torch.load(io.BytesIO(data), weights_only=True))


# ----------------------------------------------------------------------------------------------------
# The grader's side


class WorkerSession:
    """The worker of one submission: started on first use, restarted (and its log replayed) after a kill."""

    def __init__(self, make_sandbox: Callable[[], Any], *, start_timeout: float = 120.0) -> None:
        self.make_sandbox = make_sandbox
        self.start_timeout = start_timeout
        self.sandbox: Any = None
        self.proc: subprocess.Popen | None = None
        self.log: list[tuple[str, dict, float]] = []  # commands that succeeded: replayed after a restart

    def request(self, command: str, payload: dict, timeout: float, *, remember: bool = False) -> dict:
        """Send one command and wait for its answer; raises WorkerLost (and kills the worker) when it fails.

        A command sent with ``remember=True`` that got an answer is sent again to a restarted worker.
        """
        if self.proc is None:
            self._start()
        reply = self._send(command, payload, timeout)
        if remember:
            self.log.append((command, payload, timeout))
        return reply

    def _start(self) -> None:
        self.sandbox = self.make_sandbox()
        self.proc = self.sandbox.start(["-m", "lmlab.course.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._receive(self.start_timeout)  # "ready"
        for command, payload, timeout in self.log:
            self._send(command, payload, timeout)

    def _send(self, command: str, payload: dict, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            write_frame(self.proc.stdin.fileno(), dumps((command, payload)))
        except OSError:
            self.stop()
            raise WorkerLost("died", "the process stopped") from None
        return self._receive(timeout)

    def _receive(self, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            self.sandbox.note_descendants()
            reply = decode(read_frame(self.proc.stdout.fileno(), time.monotonic() + timeout))
        except WorkerLost:
            self.stop()
            raise
        except Exception as exc:  # noqa: BLE001 - an unreadable answer: the worker is not trusted
            self.stop()
            raise WorkerLost("garbled", f"its answer could not be read ({type(exc).__name__})") from None
        if not isinstance(reply, dict):
            self.stop()
            raise WorkerLost("garbled", "its answer was not a message")
        return reply

    def stop(self) -> None:
        """Kill the worker and everything it started (the next request starts a new one)."""
        if self.sandbox is not None:
            self.sandbox.close()
        self.sandbox, self.proc = None, None


class RemoteFunction(CheckedCaller):
    """The learner's function `name`, bound in the worker under `key`; called by the checkers like a function."""

    def __init__(self, session: WorkerSession, key: str, name: str) -> None:
        self.session = session
        self.key = key
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_safely(self, *args, **kwargs)

    def checked_call(self, args: tuple, kwargs: dict, *, timeout: float, show_input: str, rules: Rules) -> Any:
        payload = {"key": self.key, "args": args, "kwargs": kwargs, "timeout": timeout,
                   "forbidden": tuple(rules.forbidden)}
        try:
            reply = self.session.request("call", payload, timeout + GRACE)
        except WorkerLost as lost:
            if lost.kind == "timeout":
                raise TimeLimitExceeded(f"`{self.__name__}` did not finish within {timeout:g} s, and the grader "
                                        f"stopped it. Look for a loop that never ends or work that grows too fast.",
                                        input=show_input) from None
            raise LearnerError(f"The process running `{self.__name__}` stopped or answered nonsense ({lost}): did "
                               f"your code exit, crash or write to the process's own output?",
                               input=show_input) from None
        if reply.get("ok"):
            return reply.get("value")
        failure = _FAILURES.get(str(reply.get("kind")), LearnerError)
        raise failure(str(reply.get("message", "")), input=show_input, details=reply.get("details"))
