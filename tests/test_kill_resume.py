"""Kill -9 training processes at random moments, many times, and resume each time.

A real process trains (the training loop, or the `lmlab train` command) and is killed with SIGKILL after a
seeded random delay, or at a seeded random point inside a checkpoint write (see tests/kill_worker.py).
After every kill the latest checkpoint on disk must load (weights, optimizer and state), and the
next process resumes from it (taking over the lock file the killed one left in the run folder). When a run finally completes, its whole loss history -- the final loss
included -- must equal, bit for bit, that of a run that was never interrupted (CPU, same seed).
The processes are forked from a server that has imported torch once, so 20+ kills take seconds.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ddp_worker import TinyLM

from lmlab.checkpoint import latest_checkpoint, load_checkpoint
from lmlab.train import TrainConfig, make_optimizer

HERE = Path(__file__).resolve().parent
SAVE_POINTS = 7  # flushes per checkpoint write: 3 files, the folder, after the rename, `latest`, after it
HISTORY_FIELDS = ("steps", "train_losses", "lrs", "grad_norms", "tokens", "val_steps", "val_losses", "tokens_seen")


class ForkServer:
    """tests/kill_worker.py running as a process; ``run`` forks one training process from it."""

    def __init__(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", LMLAB_PROGRESS="0", PYTHONPATH=os.pathsep.join(
            [str(HERE.parent), str(HERE), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, str(HERE / "kill_worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("eof")

    def next_line(self, timeout: float = 120) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the training process sent nothing for 120 s") from None
        assert line != "eof", "the fork server died"
        return line

    def start(self, command: dict) -> int:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        while not (line := self.next_line()).startswith("pid "):
            pass
        return int(line.split()[1])

    def run(self, command: dict, kill_after: float | None = None, from_first_save: bool = True) -> tuple[int, list[str]]:
        """Fork one training process; SIGKILL it ``kill_after`` seconds after its first checkpoint write
        began (or after its start). Returns its exit code (-9: killed) and what it printed; ``self.timing``
        is (seconds from the start to the first checkpoint write, seconds from the start to the end)."""
        pid = self.start(command)
        started = time.monotonic()
        first_save = None
        seen, killed = [], False
        t0 = None if from_first_save else started  # the clock starts at the first checkpoint write
        while True:
            wait = 120.0
            if kill_after is not None and not killed and t0 is not None:
                wait = max(0.0, t0 + kill_after - time.monotonic())
            try:
                line = self.lines.get(timeout=wait)
            except queue.Empty:
                if kill_after is None or killed or t0 is None:
                    raise AssertionError(f"the training process sent nothing for 120 s: {seen[-5:]}") from None
                try:
                    os.kill(pid, signal.SIGKILL)  # the moment has come
                except ProcessLookupError:
                    pass  # it finished first and the server reaped it: its "exit" line is on its way
                killed = True
                continue
            assert line != "eof", "the fork server died"
            seen.append(line)
            if line == "save-point 1" and first_save is None:
                first_save = time.monotonic() - started
                t0 = time.monotonic() if t0 is None else t0
            if f"exit {pid} " in line:  # (a child killed while printing leaves its line without a newline)
                self.timing = (first_save, time.monotonic() - started)
                return int(line.split(f"exit {pid} ")[1].split()[0]), seen

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server():
    s = ForkServer()
    yield s
    s.close()


@dataclass
class Campaign:
    """What happened: kills survived, kills inside a checkpoint write, leftovers seen, runs completed."""

    kills: int = 0
    kills_in_write: int = 0
    kills_before_first_checkpoint: int = 0
    stale_locks: int = 0  # kills that left the run folder's lock behind (the next process took it over)
    leftovers_seen: set[str] = field(default_factory=set)
    completed: list[dict] = field(default_factory=list)


def kill_campaign(server: ForkServer, new_run, command_for, check_latest, min_kills: int, seed: int,
                  timing: tuple[float, float]) -> Campaign:
    """Kill the run's processes ``min_kills`` times, resuming after each, then let the last run finish.

    ``new_run()`` gives a fresh run folder; ``command_for(run, kill_at)`` the fork-server command that
    starts or resumes it; ``check_latest(run)`` loads the latest checkpoint (None when there is none).
    A run that completes before enough kills is checked too and a new one starts. ``timing`` is
    ``ForkServer.timing`` of an uninterrupted run: random delays are drawn within its length.
    """
    first_save, total = timing
    rng = random.Random(seed)
    out = Campaign()
    run = new_run()
    while True:
        kill_at, delay, from_first_save = None, None, True
        if out.kills < min_kills:
            mode = rng.choice(["write", "write", "time", "time", "start"])
            if mode == "write":  # at a flush point of the first or second checkpoint this process writes
                kill_at = rng.randint(1, 2 * SAVE_POINTS)
            elif mode == "time":
                delay = rng.uniform(0.0, total - first_save)
            else:  # from the process start: loading, resuming, the first steps
                delay, from_first_save = rng.uniform(0.0, first_save), False
        code, printed = server.run(command_for(run, kill_at), kill_after=delay, from_first_save=from_first_save)
        errors = [line for line in printed if line.startswith("error ")]
        assert not errors, errors
        if code == 0:
            history = json.loads((run["history"]).read_text())
            out.completed.append(history)
            if out.kills >= min_kills:
                return out
            run = new_run()
            continue
        assert code == -signal.SIGKILL, f"the training process ended with {code}: {printed[-5:]}"
        out.kills += 1
        out.kills_in_write += kill_at is not None and f"save-point {kill_at}" in printed
        if run["checkpoints"].is_dir():
            out.leftovers_seen |= {p.name[:9] for p in run["checkpoints"].glob(".*")}  # ".tmp-step"...
        out.stale_locks += (run["checkpoints"] / ".lock").is_file() or (run["dir"] / ".lock").is_file()
        step = check_latest(run)
        out.kills_before_first_checkpoint += step is None


def record_campaign(record, name: str, result: Campaign) -> None:
    """The counts, in the JUnit XML report (pytest --junitxml): kills survived, kills inside a write..."""
    record(f"{name}_kills_survived", result.kills)
    record(f"{name}_kills_inside_a_checkpoint_write", result.kills_in_write)
    record(f"{name}_kills_before_the_first_checkpoint", result.kills_before_first_checkpoint)
    record(f"{name}_runs_completed_after_kills", len(result.completed))
    record(f"{name}_stale_locks_taken_over", result.stale_locks)


def assert_same_history(got: dict, expected: dict) -> None:
    for name in HISTORY_FIELDS:
        assert got[name] == expected[name], name  # exact: bit-identical floats


def assert_tidy(folder: Path) -> None:
    """Only step-* folders and the latest file: no temporary leftovers of killed writes, no lock."""
    names = sorted(p.name for p in folder.iterdir())
    assert names and all(n.startswith("step-") or n == "latest" for n in names), names


def assert_tidy_run(run_dir: Path) -> None:
    """A run folder of the loop test: its checkpoints (as assert_tidy) and history.json."""
    names = sorted(p.name for p in run_dir.iterdir())
    assert all(n.startswith("step-") or n in ("latest", "history.json") for n in names), names


# ---------------------------------------------------------------------------------------------------- loop


def test_kill_the_training_loop_20_times_and_resume_bit_identically(server, tmp_path, record_testsuite_property):
    """lmlab.train.train, 24 steps with a checkpoint every 2, killed 20+ times."""
    counter = iter(range(1000))

    def new_run():
        d = tmp_path / f"run{next(counter)}"
        return {"dir": d, "checkpoints": d, "history": d / "history.json"}

    def command_for(run, kill_at):
        return {"kind": "loop", "dir": str(run["dir"]), "kill_at": kill_at}

    def check_latest(run):
        latest = latest_checkpoint(run["dir"])
        if latest is None:
            return None
        model = TinyLM(dropout=0.1)
        ckpt = load_checkpoint(run["dir"], model, make_optimizer(model, TrainConfig()))
        assert ckpt.path == latest and ckpt.step == int(latest.name.removeprefix("step-"))
        assert ckpt.state["history"]["steps"][-1] == ckpt.step and len(ckpt.state["rng_states"]) == 1
        return ckpt.step

    reference = new_run()
    reference["dir"].mkdir()
    code, printed = server.run(command_for(reference, None))
    assert code == 0, printed
    expected = json.loads(reference["history"].read_text())
    assert expected["steps"][-1] == 24

    result = kill_campaign(server, new_run, command_for, check_latest, min_kills=20, seed=2024,
                           timing=server.timing)
    record_campaign(record_testsuite_property, "loop", result)
    assert result.kills >= 20
    assert result.kills_in_write >= 5, result  # some kills certainly landed inside a checkpoint write
    assert ".tmp-step" in result.leftovers_seen  # a write was cut short ...
    assert result.stale_locks >= 10, result  # killed trainers left their lock: the next one took it over
    for history in result.completed:
        assert_same_history(history, expected)
        assert history["train_losses"][-1] == expected["train_losses"][-1]  # the final loss, bit for bit
    for run_dir in tmp_path.glob("run*"):
        if (run_dir / "history.json").is_file():
            assert_tidy_run(run_dir)  # ... and its leftovers were removed by the next save


# ---------------------------------------------------------------------------------------------------- CLI


def test_kill_the_lmlab_train_command_and_resume_bit_identically(server, tmp_path, data_dir, record_testsuite_property):
    """`lmlab train` on tinyshakespeare (a tiny GPT), killed 8+ times, resumed with --resume each time."""
    counter = iter(range(1000))
    argv = ["train", "--corpus", "tinyshakespeare", "--model", "gpt", "--preset", "cpu", "--n-layer", "1",
            "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--max-steps", "16",
            "--eval-every", "8", "--checkpoint-every", "2", "--dropout", "0.1", "--threads", "1", "--seed", "5",
            "--no-progress"]

    def new_run():
        d = tmp_path / f"run{next(counter)}"
        return {"dir": d, "checkpoints": d / "checkpoints", "history": d / "history.json"}

    def command_for(run, kill_at):
        resume = ["--resume"] if (run["dir"] / "run.json").is_file() else []
        return {"kind": "cli", "argv": [*argv, "--out", str(run["dir"]), *resume], "kill_at": kill_at}

    def check_latest(run):
        if latest_checkpoint(run["checkpoints"]) is None:
            return None
        ckpt = load_checkpoint(run["checkpoints"])  # the GPT is rebuilt from the checkpoint's model spec
        load_checkpoint(ckpt.path, ckpt.model, make_optimizer(ckpt.model, TrainConfig()))
        return ckpt.step

    reference = new_run()
    code, printed = server.run(command_for(reference, None))
    assert code == 0, printed
    expected = json.loads(reference["history"].read_text())
    assert expected["steps"][-1] == 16

    result = kill_campaign(server, new_run, command_for, check_latest, min_kills=8, seed=7,
                           timing=server.timing)
    record_campaign(record_testsuite_property, "cli", result)
    assert result.kills >= 8 and result.kills_in_write >= 2 and result.stale_locks >= 4, result
    for history in result.completed:
        assert_same_history(history, expected)
    for run_dir in tmp_path.glob("run*"):
        if (run_dir / "history.json").is_file():
            assert_tidy(run_dir / "checkpoints")
