"""Training processes for tests/test_kill_resume.py, started fast by forking a process that has
already imported torch and lmlab (a "fork server": importing torch costs seconds, forking milliseconds).

Run as ``python tests/kill_worker.py``; it reads one JSON command per line on stdin and answers on stdout:

    {"kind": "loop", "dir": RUN_DIR, "kill_at": K}     -> "pid N", then (from the child) "save-point k" lines,
    {"kind": "cli", "argv": [...], "kill_at": K}           then "exit N CODE" once the child has ended

- "loop": ``lmlab.train.train`` on ``TinyLM`` (tests/ddp_worker.py) with checkpoints in RUN_DIR, resuming
  from the latest one; at the end the history goes to RUN_DIR/history.json.
- "cli": ``lmlab.cli.main(argv)``, the code behind the ``lmlab`` command.

Each child is a real process: the test kills it with SIGKILL at a random moment. The child reports each
point of a checkpoint write (after each file and folder is flushed: before the rename, after it, around
the ``latest`` file) as ``save-point k``; with ``kill_at`` set it SIGKILLs itself at point ``kill_at``, so
some kills land inside a checkpoint write for certain. CODE is the child's exit status (-9: killed).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch
from ddp_worker import TinyLM, make_batches

import lmlab.checkpoint
import lmlab.cli
import lmlab.data
import lmlab.files
import lmlab.models
import lmlab.repro
import lmlab.train

LOOP_CONFIG = {"max_steps": 24, "lr": 1e-2, "warmup_steps": 4, "log_every": 1, "eval_every": 6, "eval_batches": 2,
               "seed": 3, "grad_clip": 1.0, "progress": False, "device": "cpu", "checkpoint_every": 2,
               "keep_checkpoints": 2}


def loop_config(run_dir: str | None) -> lmlab.train.TrainConfig:
    """The run's settings; without a folder, no checkpoints."""
    config = dict(LOOP_CONFIG, checkpoint_dir=run_dir)
    if run_dir is None:
        config["checkpoint_every"] = None
    return lmlab.train.TrainConfig(**config)


def run_loop(run_dir: str | None) -> dict:
    """The training run of the "loop" kind (uninterrupted when run_dir is None); returns its history."""
    torch.manual_seed(0)
    model = TinyLM(dropout=0.1)  # dropout: resuming must restore the random-number generator too
    train_b, val_b = make_batches()
    history = lmlab.train.train(model, train_b, val_b, loop_config(run_dir), resume=run_dir is not None)
    return history.to_dict()


def _install_save_points(kill_at: int | None) -> None:
    """Report (and maybe die at) every flush of a checkpoint write."""
    count = [0]

    def point() -> None:
        count[0] += 1
        os.write(1, f"save-point {count[0]}\n".encode())
        if kill_at is not None and count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    fsync_file, fsync_dir = lmlab.files.fsync_file, lmlab.files.fsync_dir

    def file_then_point(path):
        fsync_file(path)
        point()

    def dir_then_point(path):
        fsync_dir(path)
        point()

    lmlab.files.fsync_file = file_then_point  # checkpoints flush through lmlab.files
    lmlab.files.fsync_dir = dir_then_point


def _child(command: dict) -> int:
    torch.set_num_threads(1)
    _install_save_points(command.get("kill_at"))
    if command["kind"] == "loop":
        history = run_loop(command["dir"])
        with open(os.path.join(command["dir"], "history.json"), "w") as f:
            json.dump(history, f)
        return 0
    return lmlab.cli.main(command["argv"])


def _warm_up() -> None:
    """Import now, once, what training imports on first use (torch._dynamo alone takes seconds)."""
    import safetensors.torch  # noqa: F401
    import tqdm.auto  # noqa: F401

    import lmlab.tokenizers  # the CLI's

    lmlab.train.make_optimizer(TinyLM(), loop_config(None))


def main() -> None:
    torch.set_num_threads(1)
    os.environ["LMLAB_PROGRESS"] = "0"
    _warm_up()
    for line in sys.stdin:
        command = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the child: run, then leave without running the parent's cleanup
            code = 1
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)  # keep the test output clean (the CLI prints its progress there)
                sys.stdin.close()
                code = _child(command)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 - reported to the test as the exit status
                import traceback

                os.write(1, ("error " + traceback.format_exc().replace("\n", " | ") + "\n").encode())
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.write(1, f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        os.write(1, f"\nexit {pid} {code}\n".encode())  # on its own line even after a cut-off one


if __name__ == "__main__":
    main()
