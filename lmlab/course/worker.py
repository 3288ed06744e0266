"""The worker: runs one submission's exercise cells and calls its functions for the grader (``python -m ...``).

Started by `lmlab.course.remote.WorkerSession` inside a `Sandbox`. It reads commands from the grader on
its standard input and answers on its standard output, which it keeps for itself: the learner's code
prints into a buffer, and the file descriptors 0, 1 and 2 it could reach point to /dev/null.

Commands: ``("exec", {"label", "source", "timeout"})`` runs code in the submission's namespace;
``("bind", {"key", "name"})`` takes the function ``name`` the last cell defined as the answer to ``key``;
``("call", {"key", "args", "kwargs", "timeout", "forbidden"})`` calls it with the rules of
`lmlab.exercises.safety.run_call` and answers with the plain result. Graded mode is on from the start
(`install_graded_mode`): the exercise modules are stand-ins without references or solutions.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import pickle
import sys
from typing import Any

__all__ = ["main"]


def main() -> int:
    proto_in, proto_out = os.dup(0), os.dup(1)  # the grader's channel, for this module only
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    from lmlab.exercises.graded import install_graded_mode

    install_graded_mode()
    from lmlab.course.remote import WorkerLost, encode, read_frame, write_frame

    state: dict[str, Any] = {"namespace": {"__name__": "__main__", "__builtins__": builtins}, "functions": {}}
    write_frame(proto_out, encode({"ok": True, "ready": True}))
    while True:
        try:
            command, payload = pickle.loads(read_frame(proto_in))
        except WorkerLost:
            return 0  # the grader closed the channel
        write_frame(proto_out, encode(_answer(state, command, payload)))


def _answer(state: dict[str, Any], command: str, payload: dict) -> dict:
    from lmlab.course.remote import encode
    from lmlab.exercises.failures import CheckFailed
    from lmlab.exercises.safety import BoundedBuffer

    buf = BoundedBuffer()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            reply = _HANDLERS[command](state, payload)
    except CheckFailed as exc:
        reply = {"ok": False, "kind": type(exc).__name__, "message": exc.message, "details": exc.details}
    except Exception as exc:  # noqa: BLE001 - reported to the grader, which decides
        reply = {"ok": False, "kind": "LearnerError", "message": f"{type(exc).__name__}: {exc}"[:500]}
    reply.update(printed=buf.text()[:2000], printed_total=buf.total)
    try:
        encode(reply)
    except Exception:  # noqa: BLE001 - a value that cannot travel
        reply = {"ok": False, "kind": "LearnerError", "message": "the result could not be sent to the grader",
                 "printed": "", "printed_total": 0}
    return reply


def _exec(state: dict[str, Any], payload: dict) -> dict:
    from lmlab.exercises.guards import Rules
    from lmlab.exercises.safety import run_call

    code = compile(payload["source"], payload["label"], "exec")
    namespace = state["namespace"]

    def run_cell() -> None:
        exec(code, namespace)

    run_cell.__name__ = payload["label"]
    run_call(run_cell, (), {}, timeout=payload["timeout"], show_input="", rules=Rules())
    return {"ok": True}


def _bind(state: dict[str, Any], payload: dict) -> dict:
    fn = state["namespace"].get(payload["name"])
    if not callable(fn):
        what = "does not define" if fn is None else "defines, but not as a function,"
        return {"ok": False, "kind": "CheckFailed",
                "message": f"The exercise cell {what} `{payload['name']}`: write the function there."}
    state["functions"][payload["key"]] = fn
    return {"ok": True}


def _call(state: dict[str, Any], payload: dict) -> dict:
    from lmlab.exercises.guards import Rules
    from lmlab.exercises.safety import run_call

    fn = state["functions"][payload["key"]]
    value = run_call(fn, tuple(payload["args"]), dict(payload["kwargs"]), timeout=payload["timeout"], show_input="",
                     rules=Rules(tuple(payload["forbidden"])))
    return {"ok": True, "value": value}


_HANDLERS = {"exec": _exec, "bind": _bind, "call": _call}

if __name__ == "__main__":
    sys.exit(main())
