"""Running a learner's code for grading: an empty folder, a clean environment, a session of its own, no survivors.

Each run (the notebook's kernel, or the process that runs the extracted exercise functions) gets:

- its own **empty folder** as working folder and home, removed afterwards;
- a **clean environment**: none of the teacher's variables (only ``PATH``, locale, the ones the teacher
  names with ``pass_env``), ``LMLAB_GRADED=1`` (graded mode, see `lmlab.exercises.graded`), and a random
  marker ``LMLAB_SANDBOX=<token>`` that every process it starts inherits;
- a **session of its own** (``start_new_session``), so the whole process group can be killed;
- a copy of lmlab without the exercise modules on ``PYTHONPATH`` (`stage_package`): no references or
  worked solutions to import.

`Sandbox.kill` kills the session, every descendant it saw, and every process that carries the run's
marker. A process that left the session (``setsid``), cleared its environment and lost its parent
(a double fork) escapes all three: for those, `Supervision` makes the grader the "child subreaper"
(Linux ``prctl``), so such orphans become the grader's children, and kills them. `Supervision` also makes
the grader non-dumpable while it grades, so that processes of the same user cannot read its memory or
environment through ``/proc`` (root still can: never grade as root).

`DockerSandbox` runs the same commands in a container (``--sandbox docker``): no network, the run's folder
and the staged package as its only mounts, killed with ``docker kill``. `docker_problem` says why docker
cannot be used, if it cannot.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["MARKER_ENV", "Supervision", "Sandbox", "DockerSandbox", "docker_problem", "stage_package",
           "marked_processes"]

MARKER_ENV = "LMLAB_SANDBOX"
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT")
_PR_SET_DUMPABLE, _PR_GET_DUMPABLE, _PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 4, 3, 36, 37


def _prctl(option: int, value: int = 0) -> int | None:
    """Linux prctl(2); None elsewhere or when it fails."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if option == _PR_GET_CHILD_SUBREAPER:
            out = ctypes.c_int(0)
            return out.value if libc.prctl(option, ctypes.byref(out), 0, 0, 0) == 0 else None
        result = libc.prctl(option, value, 0, 0, 0)
        return None if result < 0 else result
    except (OSError, AttributeError):
        return None


def stage_package(dest: Path) -> Path:
    """Copy lmlab into ``dest/lmlab`` without the exercise modules (their references and solutions); return dest."""
    import lmlab

    source = Path(lmlab.__file__).resolve().parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")

    def skip(folder: str, names: list[str]) -> set[str]:
        hidden = set(ignore(folder, names))
        if Path(folder).resolve() == source / "exercises":
            hidden |= {n for n in names if n.startswith("nb") and n.endswith(".py")}
        return hidden

    shutil.copytree(source, dest / "lmlab", ignore=skip)
    return dest


class Supervision:
    """While grading: orphaned processes of the runs come back to the grader and are killed; /proc is closed.

    Use as a context manager around all runs. ``sweep()`` kills every child of the grader that is neither
    one of its runs (started with `launch`) nor a child it had before. Call `grade` from a process that starts no
    other processes while it grades (the command line does).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._roots: set[int] = set()
        self._before: set[int] = set()
        self._restore: list[tuple[int, int]] = []

    def __enter__(self) -> Supervision:
        import psutil

        self._before = {p.pid for p in psutil.Process().children()}
        for get, put, value in ((_PR_GET_CHILD_SUBREAPER, _PR_SET_CHILD_SUBREAPER, 1),
                                (_PR_GET_DUMPABLE, _PR_SET_DUMPABLE, 0)):
            old = _prctl(get)
            if old is not None and _prctl(put, value) is not None:
                self._restore.append((put, old))
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sweep()
        for put, old in reversed(self._restore):
            _prctl(put, old)
        self._restore.clear()

    def launch(self, argv: list[str], **popen: Any) -> subprocess.Popen:
        """Start a run's root process and register it, so that no sweep of another thread mistakes it for an orphan."""
        with self._lock:
            proc = subprocess.Popen(argv, **popen)
            self._roots.add(proc.pid)
        return proc

    def unregister(self, pid: int) -> None:
        with self._lock:
            self._roots.discard(pid)

    def sweep(self) -> None:
        """Kill (and reap) the grader's children that are not its runs: orphans of runs that were killed."""
        import psutil

        with self._lock:
            orphans = [c for c in psutil.Process().children() if c.pid not in self._before | self._roots]
            for child in orphans:
                _kill_tree(child)
        for child in orphans:
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass


def _kill_tree(proc: Any) -> None:
    """SIGKILL a psutil.Process and all its descendants (safe against reused pids)."""
    import psutil

    try:
        victims = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        victims = [proc]
    for v in victims:
        try:
            v.kill()
        except psutil.Error:
            pass


def marked_processes(token: str) -> list[Any]:
    """The processes this user can see whose environment carries ``LMLAB_SANDBOX=token``."""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(MARKER_ENV) == token:
                found.append(p)
        except psutil.Error:
            continue
    return found


class Sandbox:
    """One run of learner code: its own empty folder, a clean environment, a session of its own."""

    python = sys.executable

    def __init__(self, supervision: Supervision, package_path: Path, pass_env: tuple[str, ...] = ()) -> None:
        self.supervision = supervision
        self.dir = Path(tempfile.mkdtemp(prefix="lmlab-run-"))
        self.token = secrets.token_hex(16)
        self.package_path = package_path
        self.env = self._environment(pass_env)
        self.proc: subprocess.Popen | None = None
        self._seen: list[Any] = []

    def _environment(self, pass_env: tuple[str, ...]) -> dict[str, str]:
        env = {k: os.environ[k] for k in (*_KEEP_ENV, *pass_env) if k in os.environ}
        (self.dir / "tmp").mkdir()
        env.update(HOME=str(self.dir), TMPDIR=str(self.dir / "tmp"), PYTHONPATH=str(self.package_path),
                   PYTHONNOUSERSITE="1", LMLAB_GRADED="1", LMLAB_PROGRESS="0", MPLBACKEND="Agg",
                   HF_HUB_OFFLINE="1", PYDEVD_DISABLE_FILE_VALIDATION="1", **{MARKER_ENV: self.token})
        return env

    def start(self, argv: list[str], *, stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
              stderr: Any = subprocess.DEVNULL) -> subprocess.Popen:
        """Start ``argv`` (a Python command: ``["-m", "lmlab.course.worker"]``) in the run's folder and session."""
        self.proc = self.supervision.launch([self.python, *argv], cwd=self.dir, env=self.env, stdin=stdin,
                                            stdout=stdout, stderr=stderr, start_new_session=True, close_fds=True)
        return self.proc

    def note_descendants(self) -> None:
        """Remember the run's descendants now (called while it runs), to kill them even if they leave its session."""
        import psutil

        if self.proc is not None and self.proc.poll() is None:
            try:
                self._seen += psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                pass

    def kill(self) -> None:
        """Kill everything the run started: its session, the descendants seen, every process with its marker."""
        self.note_descendants()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        for _ in range(10):
            victims = [*self._seen, *marked_processes(self.token)]
            self._seen = []
            if not victims:
                break
            for v in victims:
                _kill_tree(v)
            time.sleep(0.05)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.supervision.unregister(self.proc.pid)
        self.supervision.sweep()

    def close(self) -> None:
        """Kill what is left and remove the run's folder."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def docker_problem() -> str | None:
    """None when docker can run containers here; otherwise what is wrong, in words."""
    exe = shutil.which("docker")
    if exe is None:
        return "docker is not installed (there is no `docker` command on PATH)"
    try:
        run = subprocess.run([exe, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker info` did not answer ({type(exc).__name__})"
    if run.returncode != 0:
        last = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no message"]
        return f"docker is installed but its engine does not answer (`docker info`: {last[0][:200]})"
    return None


class DockerSandbox(Sandbox):
    """A `Sandbox` whose commands run in a container: no network, only the run's folder and lmlab mounted."""

    def __init__(self, supervision: Supervision, package_path: Path, image: str,
                 pass_env: tuple[str, ...] = ()) -> None:
        super().__init__(supervision, package_path, pass_env)
        self.image = image
        self.name = f"lmlab-grade-{self.token[:12]}"

    def start(self, argv: list[str], *, stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
              stderr: Any = subprocess.DEVNULL) -> subprocess.Popen:
        inside = dict(self.env, HOME="/work", TMPDIR="/tmp", PYTHONPATH="/opt/lmlab")
        inside.pop("PATH", None)
        flags = ["--rm", "-i", "--name", self.name, "--network", "none", "--pids-limit", "512", "--cap-drop", "ALL",
                 "--security-opt", "no-new-privileges", "--tmpfs", "/tmp", "--user", f"{os.getuid()}:{os.getgid()}",
                 "-v", f"{self.dir}:/work", "-v", f"{self.package_path}:/opt/lmlab:ro", "-w", "/work"]
        env_flags = [item for k, v in sorted(inside.items()) for item in ("-e", f"{k}={v}")]
        self.proc = self.supervision.launch(["docker", "run", *flags, *env_flags, self.image, "python", *argv],
                                            stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)
        return self.proc

    def kill(self) -> None:
        try:
            subprocess.run(["docker", "kill", self.name], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass  # the container is gone, or docker does not answer: the processes are killed below anyway
        super().kill()
