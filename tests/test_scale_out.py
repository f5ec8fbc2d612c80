"""Several workers on one study: PostgreSQL (as in production) and SQLite; crashes; Ctrl-C.

The PostgreSQL tests need RECSYS_TEST_POSTGRES_URL (`.ci/run` starts a throwaway server and
sets it). Without it they skip on a developer's machine, and fail under CI.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from conftest import REPO, TINY_SYNTHETIC, small_disk
from sqlalchemy.engine import make_url

from experiments.sweeping.study import requeue_interrupted

PG_URL = os.environ.get("RECSYS_TEST_POSTGRES_URL")
if not PG_URL and os.environ.get("CI") == "true":
    raise RuntimeError("CI must run the PostgreSQL tests: RECSYS_TEST_POSTGRES_URL is not set")
needs_postgres = pytest.mark.skipif(
    not PG_URL, reason="no PostgreSQL: set RECSYS_TEST_POSTGRES_URL (see .ci/run) to run these")

SPACE = ("search.params={optimizer.learning_rate: 'tag(log, interval(0.02, 0.3))', "
         "model.embedding_dim: 'choice(8, 16)'}")


def args(tmp: Path, name: str, storage: str, n_trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "experiments.sweep", f"data.cache_dir={tmp / 'cache'}",
            *TINY_SYNTHETIC, "train.batch_size=1024", "train.eval_batch_size=1024",
            "train.epochs=2", "train.early_stopping_patience=null", f"search.study_name={name}",
            f"search.dir={tmp / name}",
            f"search.storage={storage}", f"search.n_trials={n_trials}", "~search.params",
            "~search.conditional_params", "search.enqueue_trials=[]", f"+{SPACE}",
            "search.heartbeat_interval=1", "search.grace_period=4", "search.pruner.name=none", *extra]


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                   optuna.trial.TrialState.PRUNED)]


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{time.time_ns() % 10**9}"


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError("condition not reached")


@pytest.mark.slow
@needs_postgres
def test_three_workers_reach_exactly_n_trials_and_hide_the_password(tmp_path: Path) -> None:
    name = unique_name("three")
    proc = subprocess.run(args(tmp_path, name, PG_URL, 7, "search.n_workers=3"), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name=name, storage=PG_URL)
    assert len(finished(study)) == 7
    workers = {t.user_attrs["worker"] for t in finished(study)}
    assert len(workers) >= 2  # trials were really spread over processes
    assert (tmp_path / name / "best" / "config.yaml").exists()
    password = make_url(PG_URL).password
    assert password and password not in proc.stdout + proc.stderr
    assert "***" in proc.stdout  # the storage URL is shown masked
    for path in (tmp_path / name).rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


@pytest.mark.slow
@needs_postgres
def test_sigkilled_worker_trial_is_failed_and_rerun_without_losing_trials(tmp_path: Path) -> None:
    name = unique_name("kill")
    storage = PG_URL
    # Two workers started like two machines would: the same command. Worker A's trials are slow
    # (more epochs), so it can be killed in the middle of one.
    slow = subprocess.Popen(args(tmp_path, name, storage, 5, "train.epochs=30"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def slow_trial_running() -> bool:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            return False
        return any(t.state == optuna.trial.TrialState.RUNNING
                   and t.user_attrs.get("worker", "").endswith(f":{slow.pid}")
                   and t.intermediate_values for t in study.trials)

    wait_for(slow_trial_running, timeout=180)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    killed = next(t for t in optuna.load_study(study_name=name, storage=storage).trials
                  if t.state == optuna.trial.TrialState.RUNNING)

    # Faster trials for the second machine: another train.epochs, allowed explicitly.
    fast = subprocess.run(args(tmp_path, name, storage, 5, "search.allow_changed_base=true"),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert fast.returncode == 0, fast.stderr[-3000:]
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.trials[killed.number].state == optuna.trial.TrialState.FAIL
    done = finished(study)
    assert len(done) == 5
    retried = [t for t in done if optuna.storages.RetryHeartbeatStaleTrialCallback
               .retried_trial_number(t) == killed.number]
    assert len(retried) == 1 and retried[0].params == killed.params
    numbers = [t.number for t in done]
    assert len(set(numbers)) == len(numbers)


@pytest.mark.slow
def test_sigint_records_the_trial_and_rerun_reaches_n_trials(tmp_path: Path) -> None:
    name = unique_name("sigint")
    storage = f"sqlite:///{tmp_path / name / 'study.db'}"
    # Long trials (100 tiny epochs), so that a busy machine still catches one running.
    # A command started in the background by a non-interactive shell inherits SIGINT ignored
    # (and Python then keeps it ignored); Ctrl-C in a terminal is what this test stands for.
    proc = subprocess.Popen(args(tmp_path, name, storage, 3, "train.epochs=100"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def running() -> bool:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except (KeyError, Exception):
            return False
        return any(t.state == optuna.trial.TrialState.RUNNING and t.intermediate_values
                   for t in study.trials)

    wait_for(running, timeout=180)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert "Run the same command again to resume" in out
    assert "Traceback" not in out
    assert "queued to run again" in out
    study = optuna.load_study(study_name=name, storage=storage)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    # The interrupted trial says why it failed; the rerun runs its parameters again.
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and "interrupted" in failed[0].user_attrs["reason"]

    # The rerun trains shorter trials, allowed explicitly (the study's base had 100 epochs).
    rerun = subprocess.run(args(tmp_path, name, storage, 3, "search.allow_changed_base=true"),
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming study" in rerun.stdout
    assert f"queued again: the parameters of interrupted trial(s) {failed[0].number}" \
        in rerun.stdout
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(finished(study)) == 3
    rerun_of_failed = [t for t in finished(study)
                       if t.user_attrs.get("requeued_from") == failed[0].number]
    assert len(rerun_of_failed) == 1 and rerun_of_failed[0].params == failed[0].params


@pytest.mark.slow
def test_two_workers_on_sqlite(tmp_path: Path) -> None:
    name = unique_name("sqlite2")
    storage = f"sqlite:///{tmp_path / name / 'study.db'}"
    # Five good trials, then two hopeless ones that any median pruner would cut; the study says
    # search.pruner.name=none, and the workers must use that, not Optuna's default pruner.
    good = [f"{{optimizer.learning_rate: 0.2{i}, model.embedding_dim: 16}}" for i in range(5)]
    hopeless = [f"{{optimizer.learning_rate: {i}e-06, model.embedding_dim: 8}}" for i in (1, 2)]
    enqueue = f"search.enqueue_trials=[{', '.join(good + hopeless)}]"
    proc = subprocess.run(args(tmp_path, name, storage, 7, "search.n_workers=2", enqueue),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "database is locked" not in proc.stdout + proc.stderr
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(finished(study)) == 7
    assert len({t.user_attrs["worker"] for t in finished(study)}) == 2
    assert not study.get_trials(states=(optuna.trial.TrialState.PRUNED,))


def running(storage: str, name: str) -> int:
    if not Path(make_url(storage).database).exists():
        return 0
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception:  # tables or study not created yet
        return 0
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


@pytest.mark.slow
def test_a_killed_worker_does_not_lose_the_export(tmp_path: Path) -> None:
    name = unique_name("killed")
    storage = f"sqlite:///{tmp_path / name / 'study.db'}"
    proc = subprocess.Popen(args(tmp_path, name, storage, 4, "search.n_workers=2",
                                 "train.epochs=30"), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running(storage, name) >= 1, timeout=300)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[0]), signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The other worker finished the study (retrying the killed worker's trial), and the main
    # process still exported best/ and report/.
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert "a worker exited with code -9" in out
    assert (tmp_path / name / "best" / "config.yaml").exists()
    assert (tmp_path / name / "report" / "summary.md").exists()
    assert len(finished(optuna.load_study(study_name=name, storage=storage))) == 4


@pytest.mark.slow
def test_workers_stop_when_the_main_process_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the main process no chance to pass anything on: the workers must notice
    by themselves (an orphan trained to the end of the study, with no export after it)."""
    name = unique_name("orphans")
    storage = f"sqlite:///{tmp_path / name / 'study.db'}"
    proc = subprocess.Popen(args(tmp_path, name, storage, 4, "search.n_workers=2",
                                 "train.epochs=50"), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: running(storage, name) >= 2, timeout=300)
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)],
                                                  capture_output=True, text=True).stdout.split()]
        assert len(workers) == 2
        killed_at = datetime.now()  # Optuna stamps trials with naive local time too
        proc.kill()
        proc.wait()
        wait_for(lambda: not any(Path(f"/proc/{w}").exists() and
                                 "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]
                                 for w in workers), timeout=60)
    finally:
        for w in workers if "workers" in locals() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)
    # The workers started no trial after the kill: the study stopped short of its 4 trials.
    # (A worker usually records its running trial as failed on the way out; one interrupted
    # inside Optuna's own bookkeeping leaves it RUNNING, and the heartbeat check fails and
    # retries it on the next run, as for any killed worker.)
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(finished(study)) < 4
    assert all(t.datetime_start is None or t.datetime_start <= killed_at for t in study.trials)
    # Each trial a worker failed on its way out is queued again, once, with its parameters.
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and sorted(requeue_interrupted(study)) == [t.number for t in failed]
    assert requeue_interrupted(study) == []
    waiting = {t.user_attrs.get("requeued_from"): t for t in study.trials
               if t.state == optuna.trial.TrialState.WAITING}
    assert all(waiting[t.number].system_attrs["fixed_params"] == t.params for t in failed)


ORPHAN_CHILD = """
import os, signal, time
from experiments.sweeping import processes
processes.ORPHAN_GRACE_S = 1.0
processes.stop_with_parent()
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # an orderly exit that never comes
print(os.getpid(), flush=True)
time.sleep(120)
"""
# The middle process starts a worker-like child, then dies without passing anything on.
ORPHAN_PARENT = """
import os, signal, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, "RECSYS_SWEEP_PARENT": str(os.getpid())})
print(child.stdout.readline().strip(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def assert_orphan_ends(child: str) -> None:
    """Start `child` under a middle process that is then SIGKILLed; the orphan must end within
    30 s."""
    middle = subprocess.run([sys.executable, "-c", ORPHAN_PARENT, child], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    orphan = int(middle.stdout.split()[0])
    try:
        wait_for(lambda: not Path(f"/proc/{orphan}").exists() or
                 "Z" in Path(f"/proc/{orphan}/stat").read_text().split()[2], timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)


def test_an_orphan_that_ignores_sigterm_still_ends() -> None:
    """The watch behind PDEATHSIG: a worker whose orderly exit hangs ends within its grace."""
    assert_orphan_ends(ORPHAN_CHILD)


# An orphan that takes SIGTERM as every worker does, then hangs while the interpreter shuts
# down: daemon threads (the parent watch among them) are frozen by then.
ORPHAN_HELD_AT_EXIT = """
import os, time
from experiments.sweeping import processes
processes.ORPHAN_GRACE_S = 1.0
processes.stop_with_parent()
processes.stop_on_signals()

class HeldExit:
    def __del__(self):
        time.sleep(120)

held = HeldExit()
print(os.getpid(), flush=True)
time.sleep(120)
"""


def test_an_orphan_whose_exit_hangs_after_its_threads_are_frozen_still_ends() -> None:
    """The kernel's timer, armed when SIGTERM reaches an orphan, ends it where no Python
    thread runs any more."""
    assert_orphan_ends(ORPHAN_HELD_AT_EXIT)


@pytest.mark.slow
def test_a_rerun_that_waits_for_a_dead_trial_says_so(tmp_path: Path) -> None:
    """The study's one slot is held by a killed sweep's trial: the rerun waits out the grace
    period before retrying it, and says what it waits for instead of minutes of silence."""
    name = unique_name("wait")
    storage = f"sqlite:///{tmp_path / name / 'study.db'}"
    proc = subprocess.Popen(args(tmp_path, name, storage, 1, "train.epochs=200"), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: running(storage, name) >= 1, timeout=300)
    time.sleep(1.5)  # its first heartbeat is written
    proc.kill()
    proc.wait()
    # A grace period longer than the rerun's start-up (its TensorFlow import: seconds).
    rerun = subprocess.run(args(tmp_path, name, storage, 1, "search.allow_changed_base=true",
                                "search.grace_period=20"),
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert re.search(r"waiting for trial 0 \(last heartbeat \d+ s ago\): the study's last "
                     r"slots; a trial without a heartbeat for search.grace_period=20 s is "
                     r"failed and queued again", rerun.stdout), rerun.stdout
    assert len(finished(optuna.load_study(study_name=name, storage=storage))) == 1


OPEN_AT_ONCE = """
import sys, time
from experiments.sweeping.search_config import SearchConfig
from experiments.sweeping.study import open_storage, open_study
search = SearchConfig.from_dict({"study_name": "race", "storage": sys.argv[1],
                                 "sampler": {"name": "random", "seed": 1},
                                 "pruner": {"name": "none"}})
while time.time() < float(sys.argv[2]):  # start together
    time.sleep(0.001)
open_study(open_storage(search), search, max_resource=2)
"""


def test_commands_started_together_on_an_empty_storage_all_open_the_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'fresh.db'}"
    start = str(time.time() + 4)  # after every interpreter has imported Optuna
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, storage, start], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, "\n".join(errors)[-3000:]
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["race"]


def test_worker_processes_are_capped_at_the_core_count() -> None:
    from experiments.sweeping.processes import worker_count

    assert worker_count(2, 16) == (2, None)
    n, notice = worker_count(100, 2)
    assert n == 2 and "search.n_workers=100 is more than this machine's 2 cores" in notice


@pytest.mark.slow
def test_workers_retire_after_trials_per_process_and_the_study_completes(tmp_path: Path) -> None:
    name = unique_name("retire")
    storage = f"sqlite:///{tmp_path / name / 'study.db'}"
    proc = subprocess.run(args(tmp_path, name, storage, 3, "search.trials_per_process=2"),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name=name, storage=storage)
    done = finished(study)
    assert len(done) == 3
    # 2 + 1 trials: two processes, each under its own pid.
    pids = [t.user_attrs["worker"] for t in sorted(done, key=lambda t: t.number)]
    assert len(set(pids)) == 2 and pids[0] == pids[1] != pids[2]
    assert (tmp_path / name / "best" / "config.yaml").exists()


def test_trials_per_process_must_be_a_count(tmp_path: Path, capsys) -> None:
    from experiments import sweep

    assert sweep.main([f"search.dir={tmp_path / 's'}", "search.trials_per_process=-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: search.trials_per_process=-1 is invalid: expected an integer >= 0"]
    assert not (tmp_path / "s").exists()


def test_a_trial_orphaned_before_its_first_heartbeat_is_failed_and_queued_again(
        tmp_path: Path) -> None:
    """A worker killed between `study.ask` and its first heartbeat leaves a RUNNING trial that
    Optuna's stale check never sees; the study used to wait on it forever (CI hang)."""
    from datetime import datetime, timedelta

    from experiments.sweeping.optuna_internals import storage_of, trial_id
    from experiments.sweeping.search_config import SearchConfig
    from experiments.sweeping.study import fail_dead_trials, open_storage, open_study

    url = f"sqlite:///{tmp_path / 'o.db'}"
    search = SearchConfig.from_dict({"study_name": "orphans", "storage": url,
                                     "heartbeat_interval": 1, "grace_period": 4,
                                     "sampler": {"name": "random", "seed": 1},
                                     "pruner": {"name": "none"}})
    study, _ = open_study(open_storage(search), search, 2)
    study.enqueue_trial({"model.embedding_dim": 16})
    old = datetime.now() - timedelta(seconds=60)
    storage = storage_of(study)
    orphan = study.ask()  # takes the enqueued trial, as a worker's optimize() would; then dies
    storage.set_trial_user_attr(trial_id(orphan), "worker", "a previous attempt's mark")
    young = study.ask()
    alive = study.ask()
    alive.set_user_attr("started", alive.number)  # its objective has started: Optuna's job
    with sqlalchemy.create_engine(url).begin() as conn:  # these two started a minute ago
        conn.execute(sqlalchemy.text("UPDATE trials SET datetime_start = :old "
                                     "WHERE number IN (:a, :b)"),
                     {"old": old, "a": orphan.number, "b": alive.number})

    fail_dead_trials(study, grace_period=4)

    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[orphan.number] == optuna.trial.TrialState.FAIL
    assert states[young.number] == optuna.trial.TrialState.RUNNING  # may still be starting
    assert states[alive.number] == optuna.trial.TrialState.RUNNING
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs.get("fixed_params") for t in waiting] == [{"model.embedding_dim": 16}]
    assert "before the trial started" in study.trials[orphan.number].user_attrs["reason"]


@pytest.mark.slow
@needs_postgres
@pytest.mark.parametrize("workers", [1, 2])
def test_a_storage_outage_stops_with_one_line_and_the_rerun_completes(tmp_path: Path,
                                                                      workers: int) -> None:
    """One error line, however many workers met the outage (two workers printed it twice and
    the main process a third time)."""
    from tcp_proxy import TcpProxy

    name = unique_name("outage")
    real = make_url(PG_URL)
    proxy = TcpProxy((real.host, real.port))
    through = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proc = subprocess.Popen(args(tmp_path, name, through, 3, "train.epochs=100",
                                 f"search.n_workers={workers}"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sum(t.state == optuna.trial.TrialState.RUNNING and
                             bool(t.intermediate_values) for t in _trials(name)) >= workers,
                 timeout=300)
        proxy.cut()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-2000:] + err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "study storage" in errors[0], err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert real.password not in out + err
    # The trial it was running is RUNNING with a stale heartbeat: the rerun fails and retries
    # it, and the study completes with no trial left RUNNING.
    assert [t.state for t in _trials(name)].count(optuna.trial.TrialState.RUNNING) == workers
    time.sleep(5)  # > search.grace_period
    proxy = TcpProxy((real.host, real.port), port=proxy.port)
    rerun = subprocess.run(args(tmp_path, name, through, 3, "search.allow_changed_base=true"),
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = _trials(name)
    assert len(finished_of(trials)) == 3
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in trials]


def _trials(name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=PG_URL).get_trials(deepcopy=False)
    except KeyError:
        return []


def finished_of(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                             optuna.trial.TrialState.PRUNED)]


@pytest.mark.slow
@needs_postgres
def test_two_machines_share_one_postgresql_study(tmp_path: Path) -> None:
    """The README's N-machines recipe with N=2: two independent commands, each with its own
    working folder, cache and study folder (as two machines would have), the storage URL
    taken from the environment so the password is never on a command line."""
    name = unique_name("machines")
    machines = [tmp_path / "machine_a", tmp_path / "machine_b"]
    procs = []
    for home in machines:
        home.mkdir()
        command = [a for a in args(home, name, "unused", 6) if not a.startswith("search.storage=")]
        procs.append(subprocess.Popen([*command, "search.storage=${oc.env:OPTUNA_STORAGE}"],
                                      cwd=home, env={**os.environ, "OPTUNA_STORAGE": PG_URL},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-1500:] + err[-3000:]
    study = optuna.load_study(study_name=name, storage=PG_URL)
    done = finished(study)
    assert len(done) == 6
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both machines trained
    assert len({tuple(sorted(t.params.items())) for t in done}) == 6  # no repeated parameters
    best = study.best_trial.number
    password = make_url(PG_URL).password
    for home, (out, err) in zip(machines, outputs, strict=True):
        assert password not in out + err
        exported = (home / name / "best" / "params.json").read_text()
        assert f'"trial": {best}' in exported or f'"number": {best}' in exported, exported


def test_a_full_disk_under_a_sqlite_study_is_called_a_full_disk(tmp_path: Path) -> None:
    """SQLite says "database or disk is full"; the user is told which disk, not that a
    connection was lost. The error is SQLite's own, made by capping the file's page count."""
    from experiments.sweeping.study import storage_lost

    url = f"sqlite:///{tmp_path / 'study.db'}"
    engine = sqlalchemy.create_engine(url)
    with pytest.raises(sqlalchemy.exc.OperationalError) as full, engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x BLOB)")
        connection.exec_driver_sql("PRAGMA max_page_count = 4")
        for _ in range(100):
            connection.exec_driver_sql("INSERT INTO t VALUES (zeroblob(4096))")
    line = storage_lost(url, full.value)
    assert line.startswith(f"search.storage='{url}': the disk holding '{tmp_path}' is full "
                           "(the study database cannot grow). Free some space and run the same "
                           "command again: finished trials are kept"), line
    assert "lost the connection" not in line


@pytest.mark.slow
def test_a_sweep_whose_sqlite_disk_fills_up_says_so_and_resumes_once_there_is_room(
        tmp_path: Path) -> None:
    """A real full disk: the study database on a 1 MB tmpfs, filled up after the first trial
    (mounting needs root, as CI runs; elsewhere the test skips)."""
    with small_disk(tmp_path / "disk", "1m") as disk:
        storage = f"sqlite:///{disk / 'study.db'}"
        first = subprocess.run(args(tmp_path, "full", storage, 1), cwd=REPO, capture_output=True,
                               text=True, timeout=600)
        assert first.returncode == 0, first.stderr[-2000:]
        # suppress outermost: closing the file flushes into the full disk too
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as filler:
            while True:
                filler.write(bytes(65536))
                filler.flush()
        quiet = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as typed
        full = subprocess.run(args(tmp_path, "full", storage, 3), cwd=REPO, capture_output=True,
                              text=True, timeout=600, env=quiet)
        assert full.returncode == 1
        assert full.stderr.strip().splitlines() == [
            f"error: search.storage='{storage}': the disk holding '{disk}' is full (the study "
            "database cannot grow). Free some space and run the same command again: finished "
            "trials are kept, and the trial that was running is failed and retried once its "
            "heartbeat is older than search.grace_period"], full.stderr[-2000:]
        (disk / "filler").unlink()
        again = subprocess.run(args(tmp_path, "full", storage, 3), cwd=REPO,
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-2000:]
        assert len(finished(optuna.load_study(study_name="full", storage=storage))) == 3


@needs_postgres
def test_a_role_without_rights_on_the_tables_is_one_line(tmp_path: Path) -> None:
    """A PostgreSQL role that may connect but not read Optuna's tables got a psycopg traceback
    ending in Optuna's unrelated "exceeding max length" message."""
    admin = make_url(PG_URL)
    role = unique_name("norights")
    optuna.create_study(study_name=unique_name("tables"), storage=PG_URL)  # the tables exist
    engine = sqlalchemy.create_engine(admin.render_as_string(hide_password=False))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw{role}'"))
    try:
        url = admin.set(username=role, password=f"pw{role}").render_as_string(hide_password=False)
        proc = subprocess.run(args(tmp_path, "rights", url, 1), cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert "cannot open the study storage (permission denied for table" in line
        assert f"{role} needs rights on Optuna's tables" in line and f"pw{role}" not in line
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP ROLE {role}"))
        engine.dispose()


@needs_postgres
def test_a_raw_at_sign_in_a_password_gets_the_percent_40_hint(tmp_path: Path) -> None:
    """The password of a real role holds '@', typed raw: one line, the password hidden, and
    the %40 spelling that works."""
    admin = make_url(PG_URL)
    role = unique_name("atsign")
    engine = sqlalchemy.create_engine(admin.render_as_string(hide_password=False))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD 'p@ss{role}'"))
    try:
        raw = PG_URL.replace(f"{admin.username}:", f"{role}:", 1).replace(
            f":{admin.password}@", f":p@ss{role}@", 1)
        proc = subprocess.run(args(tmp_path, "at", raw, 1), cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        (line,) = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and line.endswith("a password holding '@' must be written %40")
        assert f"ss{role}" not in line
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP ROLE {role}"))
        engine.dispose()


def test_the_heartbeat_threads_storage_error_is_quiet_even_when_optuna_wraps_it(capsys) -> None:
    """A heartbeat commit that fails raises Optuna's StorageInternalError from the database
    error: no traceback either (it buried the one-line outage message, now and then)."""
    import threading

    import sqlalchemy

    from experiments.sweeping.run import _quiet_storage_errors

    def hook_output(exc: BaseException) -> str:
        _quiet_storage_errors(threading.ExceptHookArgs((type(exc), exc, None, None)))
        return capsys.readouterr().err

    db = sqlalchemy.exc.OperationalError("commit", {}, Exception("connection refused"))
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = db
    assert hook_output(db) == "" and hook_output(wrapped) == ""
    assert "ValueError" in hook_output(ValueError("a real bug"))
