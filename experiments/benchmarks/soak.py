"""Soak: one study on one PostgreSQL database, two commands of two workers each (as two
machines would run them), two workers SIGKILLed at random moments and one command stopped with
SIGINT and run again. Then the counts that must hold; then a long-lived worker's memory.

    OPTUNA_STORAGE=postgresql+psycopg://user:pw@host/db python -m experiments.benchmark --mode soak

Tiny trials on the embedded synthetic set, so the figures are about the study machinery.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from experiments.sweeping.folder import StudyFolder
from experiments.sweeping.study import FINISHED
from experiments.sweeping.trials import TrialRecord

TINY = ["data.synthetic.n_users=1500", "data.synthetic.n_items=300",
        "data.synthetic.n_interactions=15000", "train.batch_size=1024",
        "train.eval_batch_size=1024", "search.enqueue_trials=[]", "search.heartbeat_interval=2",
        "search.grace_period=8", "search.pruner.name=none"]


def children(pid: int) -> list[int]:
    """Direct child processes of pid (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def sweep_command(home: Path, name: str, n_trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "experiments.sweep", f"data.cache_dir={home / 'cache'}", *TINY,
            f"search.study_name={name}", f"search.dir={home / name}",
            "search.storage=${oc.env:OPTUNA_STORAGE}", f"search.n_trials={n_trials}", *extra]


def start(command: list[str], home: Path, log: str) -> subprocess.Popen:
    with open(home / log, "a") as out:
        return subprocess.Popen(command, cwd=home, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@dataclass
class Soaked:
    """What happened while the two commands ran."""

    procs: list[subprocess.Popen]  # the last command of each machine
    events: list[str]  # the faults, in order
    complete_seen: set[int]  # trials ever seen COMPLETE (none may be lost later)
    wall: float
    interrupted: bool  # the SIGINT moment was reached


def soak_table(storage: str, folder: Path, n_trials: int = 40, seed: int = 0,
               memory_trials: int = 100) -> str:
    os.environ["OPTUNA_STORAGE"] = storage
    name = f"soak_{int(time.time())}"
    homes = [folder / "machine_a", folder / "machine_b"]
    for home in homes:
        home.mkdir(parents=True, exist_ok=True)
    soaked = run_with_faults(storage, name, homes, n_trials, random.Random(seed))
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    lines = [f"soak: study {name!r}, 2 commands x 2 workers, {n_trials} trials, "
             f"{soaked.wall:.0f} s; trial states: {states}", *[f"  {e}" for e in soaked.events],
             f"{'check':<40} {'measured':>16} {'target':>8}  ok"]
    lines += [f"{c:<40} {m:>16} {t:>8}  {'yes' if ok else 'NO'}"
              for c, m, t, ok in checks(storage, name, homes, n_trials, soaked)]
    if not soaked.interrupted:
        lines.append("  (the SIGINT moment was not reached)")
    if memory_trials:
        lines.append(memory_table(folder, memory_trials))
    return "\n".join(lines)


def run_with_faults(storage: str, name: str, homes: list[Path], n_trials: int,
                    rng: random.Random) -> Soaked:
    """Both commands until they end, with two SIGKILLs of a worker and one SIGINT of a
    command (then run again) at random moments of the first half of the study."""
    commands = [sweep_command(h, name, n_trials, "search.n_workers=2", "train.epochs=4")
                for h in homes]
    started = time.perf_counter()
    procs = [start(c, h, "sweep.log") for c, h in zip(commands, homes, strict=True)]
    events: list[str] = []
    complete_seen: set[int] = set()
    moments = sorted(rng.sample(range(3, n_trials // 2), 3))
    actions = ["kill", "kill", "sigint"]
    rng.shuffle(actions)
    interrupted = False
    while any(p.poll() is None for p in procs):
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except Exception:  # not created yet
            trials = []
        complete_seen.update(t.number for t in trials
                             if t.state == optuna.trial.TrialState.COMPLETE)
        done = sum(t.state in FINISHED for t in trials)
        if moments and done >= moments[0]:
            action = actions[0]
            alive = [i for i, p in enumerate(procs) if p.poll() is None
                     and (action == "sigint" or children(p.pid))]
            if not alive:  # e.g. a restarted command has not started its workers yet
                time.sleep(0.5)
                continue
            moments.pop(0)
            actions.pop(0)
            i = rng.choice(alive)
            if action == "kill":
                victim = rng.choice(children(procs[i].pid))
                os.kill(victim, signal.SIGKILL)
                events.append(f"SIGKILL worker {victim} of command {'ab'[i]} at {done} finished")
            else:
                procs[i].send_signal(signal.SIGINT)
                procs[i].wait()
                events.append(f"SIGINT command {'ab'[i]} at {done} finished "
                              f"(exit {procs[i].returncode}); run again")
                procs[i] = start(commands[i], homes[i], "sweep.log")
                interrupted = True
        time.sleep(0.5)
    return Soaked(procs, events, complete_seen, time.perf_counter() - started, interrupted)


def checks(storage: str, name: str, homes: list[Path], n_trials: int, soaked: Soaked,
           ) -> list[tuple[str, str, str, bool]]:
    """(check, measured, target, ok) for each count that must hold after the faults."""
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials()
    complete = optuna.trial.TrialState.COMPLETE
    finished = [t for t in trials if t.state in FINISHED]
    params = [tuple(sorted(t.params.items())) for t in finished]
    lost = sorted(n for n in soaked.complete_seen if trials[n].state != complete)
    exports = []
    for home in homes:
        folder = StudyFolder(home / name)
        best = folder.best / "params.json"
        ok = best.is_file() and json.loads(best.read_text())["trial"] == study.best_trial.number
        exports.append(ok and (folder.report / "summary.md").is_file())
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    procs = soaked.procs
    return [
        ("finished (complete or pruned) trials", f"{len(finished)}", f"== {n_trials}",
         len(finished) == n_trials),
        ("completed trials lost", f"{len(lost)}", "== 0", not lost),
        ("repeated parameter sets among finished", f"{len(params) - len(set(params))}", "== 0",
         len(params) == len(set(params))),
        ("trials left RUNNING", f"{running}", "== 0", running == 0),
        ("best/ and report/ match the storage", f"{sum(exports)} of 2 machines", "2 of 2",
         all(exports)),
        ("exit codes of the last commands", " ".join(str(p.returncode) for p in procs), "0 0",
         all(p.returncode == 0 for p in procs)),
    ]


def memory_table(folder: Path, n_trials: int) -> str:
    """A single worker over n_trials trials, with and without search.trials_per_process:
    resident memory after each trial (the `rss_mb` user attribute)."""
    lines = [f"long-lived worker, {n_trials} tiny trials (1 epoch) on SQLite: resident MB after "
             "each trial (growth: max - first)",
             f"{'setting':<44} {'first':>7} {'last':>7} {'max':>7} {'growth':>7} {'seconds':>8}"]
    variants = {"search.trials_per_process=0 (one process)": ["search.trials_per_process=0"],
                "search.trials_per_process=10": ["search.trials_per_process=10"],
                "one process, train.jit_compile=false": ["search.trials_per_process=0",
                                                         "train.jit_compile=false"]}
    for i, (label, extra) in enumerate(variants.items()):
        home = folder / f"memory_{i}"
        home.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{StudyFolder(home).database}"
        command = [a if not a.startswith("search.storage=") else f"search.storage={storage}"
                   for a in sweep_command(home, "memory", n_trials, "train.epochs=1", *extra)]
        started = time.perf_counter()
        subprocess.run(command, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        seconds = time.perf_counter() - started
        study = optuna.load_study(study_name="memory", storage=storage)
        rss = [r.rss_mb for r in map(TrialRecord.of, study.trials) if r.rss_mb]
        lines.append(f"{label:<44} {rss[0]:>7.0f} {rss[-1]:>7.0f} {max(rss):>7.0f} "
                     f"{max(rss) - rss[0]:>7.0f} {seconds:>8.0f}")
    return "\n".join(lines)
