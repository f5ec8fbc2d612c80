"""The worker processes of a study on one machine: how many, starting and replacing them,
passing on Ctrl-C, and making sure none outlives the main process."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

EXIT_RETIRED = 75  # a worker that ran search.trials_per_process trials: start a fresh one
EXIT_STORAGE_LOST = 3  # a worker lost the study storage (the first one to lose it said why)
DEADLINE_ENV = "RECSYS_SWEEP_DEADLINE"
PARENT_ENV = "RECSYS_SWEEP_PARENT"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
EXIT_ORPHANED = 143  # as if SIGTERM had ended it
ORPHAN_GRACE_S = 15.0
# Set by SIGTERM/SIGINT. The KeyboardInterrupt the handler raises can land where it is
# swallowed (a garbage-collection callback prints "Exception ignored in ..." and goes on: seen
# as a worker that outlived its killed parent and ran four more trials), so the trial loop and
# the per-epoch callback also look at this flag and raise it again from a safe place.
STOP = threading.Event()


def request_stop(signum: int, frame: object) -> None:
    STOP.set()
    if orphaned() and hasattr(signal, "alarm"):
        arm_kernel_timer()
    raise KeyboardInterrupt(f"signal {signum}")


def orphaned() -> bool:
    """A worker whose main process is gone."""
    parent = os.environ.get(PARENT_ENV)
    return bool(parent) and os.getppid() != int(parent)


def arm_kernel_timer() -> None:
    """End this process in ORPHAN_GRACE_S seconds by the kernel's own timer (SIGALRM, left at
    its default action: terminate). A watching thread cannot promise it: once the interpreter
    starts shutting down it freezes every daemon thread, and an exit held up after that (a
    library's teardown) left an orphan running past its killed parent for over a minute."""
    signal.alarm(int(ORPHAN_GRACE_S) + 1)


def stop_on_signals() -> None:
    """SIGTERM (the kernel's, when the main process dies; or `kill`) and Ctrl-C stop the
    process through `request_stop`. A SIGINT that was ignored when the process started (a
    background job of a non-interactive shell) stays ignored."""
    signal.signal(signal.SIGTERM, request_stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, request_stop)


def check_stop() -> None:
    """Raise the interrupt again if a signal asked to stop (see STOP)."""
    if STOP.is_set():
        raise KeyboardInterrupt("stop requested")


def worker_count(requested: int, cores: int) -> tuple[int, str | None]:
    """At most one worker process per core: each loads TensorFlow (~1 GB) and trains with at
    least one thread, so more only adds memory and contention."""
    if requested <= cores:
        return requested, None
    return cores, (f"search.n_workers={requested} is more than this machine's {cores} cores: "
                   f"starting {cores} worker(s)")


def run_workers(argv: list[str], n_workers: int, deadline: float | None) -> int:
    """Start n_workers worker processes on the study, replace each one that retires after
    `search.trials_per_process` trials, forward SIGINT/SIGTERM, and wait for all."""
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    command = [sys.executable, "-m", "experiments.sweeping.worker", *argv,
               f"train.threads={threads}"]
    env = {**os.environ, PARENT_ENV: str(os.getpid()),
           **({DEADLINE_ENV: str(deadline)} if deadline else {})}
    workers = [subprocess.Popen(command, env=env) for _ in range(n_workers)]
    codes: list[int] = []
    # Ctrl-C / SIGTERM set a flag instead of raising: a KeyboardInterrupt raised inside a
    # garbage-collection callback (SQLAlchemy has some) is printed and swallowed, and the
    # main process then waited for the whole study (seen in the soak benchmark).
    stop: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: stop.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while workers and not stop:
            for w in [w for w in workers if w.poll() is not None]:
                workers.remove(w)
                if w.returncode == EXIT_RETIRED:  # a fresh process takes its place
                    workers.append(subprocess.Popen(command, env=env))
                else:
                    codes.append(w.returncode)
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGINT)
        for w in workers:
            w.wait()
        raise KeyboardInterrupt(f"signal {stop[0]}")
    return next((c for c in codes if c != 0), 0)


def stop_with_parent() -> None:
    """End this worker when the main process dies, SIGKILL included: an orphan would train
    to the end of the study with nobody left to export best/ or write report/. Linux sends
    SIGTERM at once (PDEATHSIG); a watching thread ends the process in any case."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    if hasattr(signal, "SIGALRM"):  # its default action (terminate) is arm_kernel_timer's
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != int(parent):  # it died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
        start_watchdog(int(parent))
    threading.Thread(target=_end_orphan, args=(int(parent),), daemon=True,
                     name="parent-watch").start()


def start_watchdog(parent: int) -> None:
    """A process of its own that kills this worker ORPHAN_GRACE_S seconds after the main
    process is gone. Nothing inside the worker can promise that: a Python handler or thread
    needs the interpreter, and an orphan that held it (a long call into a library) or had
    begun shutting down (which freezes daemon threads) outlived its killed parent by over a
    minute. Double-forked, so it belongs to no one who must reap it; it ends with the worker."""
    worker = os.getpid()
    first = os.fork()
    if first:
        os.waitpid(first, 0)  # the middle process exits at once: nothing left to reap
        return
    try:
        if os.fork() == 0:
            _watch(worker, parent)
    finally:
        os._exit(0)


def _watch(worker: int, parent: int) -> None:
    """In the watchdog process: poll the worker's parent; once it is not the main process,
    give the worker's own orderly exit ORPHAN_GRACE_S seconds, then SIGKILL it. Ends as soon
    as the worker ends."""

    def state() -> tuple[str, int] | None:  # (state, parent pid); None: gone or a zombie
        try:
            fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return None if fields[0] == "Z" else (fields[0], int(fields[1]))

    try:
        os.setsid()  # a Ctrl-C at the terminal is for the study's processes, not for this
        while (now := state()) is not None and now[1] == parent:
            time.sleep(0.5)
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while state() is not None:
            if time.monotonic() >= deadline:
                os.kill(worker, signal.SIGKILL)
                return
            time.sleep(0.5)
    except Exception:  # noqa: BLE001 - a watchdog never raises into anything
        return


def _end_orphan(parent: int) -> None:
    """The backstop behind PDEATHSIG: once the main process is gone, give the SIGTERM's
    orderly exit (the running trial recorded as failed) ORPHAN_GRACE_S seconds, then end the process
    whatever it is doing. An orphan once outlived its SIGTERM by over a minute on a loaded
    2-core machine (an interrupt swallowed, or an exit held by a thread), and nobody is left
    to wait for it."""
    while os.getppid() == parent:
        time.sleep(0.5)
    STOP.set()
    if hasattr(signal, "alarm"):
        arm_kernel_timer()
    time.sleep(ORPHAN_GRACE_S)
    os._exit(EXIT_ORPHANED)
