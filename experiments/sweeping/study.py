"""Opening an Optuna study: storage URL, sampler, pruner, and the checks on resuming."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from experiments.cli.compose import TRAIN_GROUPS
from experiments.cli.secrets import mask_secrets
from experiments.sweeping.optuna_internals import (
    backend_of,
    heartbeat_model,
    sampler_random_states,
    storage_of,
    trial_id,
)
from experiments.sweeping.pruners import BestCurvePruner
from experiments.sweeping.search_config import (
    DIRECTION,
    FidelityConfig,
    PrunerConfig,
    SamplerConfig,
    SearchConfig,
)
from experiments.sweeping.trials import INTERRUPTED, TrialRecord
from recsys.errors import UserError

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
SCHEMES = ("sqlite", "postgresql", "mysql")
CREATE_ATTEMPTS = 5


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ***, for logs and files."""
    return mask_secrets(url)  # also a password in the query, or one holding '@' or spaces


def open_storage(search: SearchConfig) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats, so a killed worker's trial is failed and retried."""
    url = search.storage
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # not a URL; a port like `notaport`
        raise UserError(f"search.storage={mask_url(url)!r} is not a storage URL: expected e.g. "
                        "sqlite:///outputs/sweeps/x/study.db or "
                        "postgresql+psycopg://user@host/db") from None
    scheme = parsed.get_backend_name()
    if scheme not in SCHEMES:
        raise UserError(f"search.storage={mask_url(url)!r} has unknown scheme {scheme!r}: "
                        f"expected one of {', '.join(SCHEMES)}")
    if scheme == "sqlite" and parsed.database and parsed.database != ":memory:":
        check_sqlite_file(url, Path(parsed.database))
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"search.storage folder {str(folder)!r} cannot be created: "
                            f"{exc.strerror}") from None
    # Heartbeats and stale-trial retries are marked experimental in Optuna; we rely on them.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(scheme),
                heartbeat_interval=search.heartbeat_interval,
                grace_period=search.grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=search.max_retry),
            )
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # Several commands started at once on an empty storage all create Optuna's tables;
            # the losers see "already exists" (or a duplicate key) and find the tables on retry.
            if attempt + 1 < CREATE_ATTEMPTS and _lost_creation_race(exc):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise _storage_error(url, parsed.password, exc) from None
        except optuna.exceptions.StorageInternalError as exc:  # the database's reason inside
            raise _storage_error(url, parsed.password, exc.__cause__ or exc) from None
        except (ImportError, OSError) as exc:
            raise _storage_error(url, parsed.password, exc) from None
    raise AssertionError("unreachable")


def check_sqlite_file(url: str, database: Path) -> None:
    """A damaged SQLite file (a torn page from a crash or a bad copy) fails deep inside some
    later query with a traceback: read it through once now (`PRAGMA quick_check`, a few ms on
    a study's database) and name the file instead."""
    if not database.is_file():
        return
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                                timeout=60)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise UserError(f"search.storage={mask_url(url)!r}: {str(database)!r} is damaged "
                        f"({verdict.splitlines()[0]}); restore it from a copy, or try "
                        f"`sqlite3 {database} .recover` into a new file")


def stored_study_attrs(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any] | None:
    """The user attributes of the storage's study `name`; None when it has no such study."""
    try:
        return dict(optuna.load_study(study_name=name, storage=storage).user_attrs)
    except KeyError:
        return None


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite storage URL (None for other storages and memory)."""
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # not a URL; a port like `notaport`
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _engine_kwargs(scheme: str) -> dict[str, Any]:
    if scheme == "sqlite":  # several local workers: wait for the file lock, not fail
        return {"connect_args": {"timeout": 60}}
    # A server restart or a dropped idle connection between trials is survived by testing
    # pooled connections before use; an unreachable server fails in seconds, not minutes.
    connect = {"connect_timeout": 10} if scheme == "postgresql" else {}
    return {"pool_pre_ping": True, "connect_args": connect}


def storage_lost(url: str, exc: Exception) -> str:
    """The one line for a storage that went away during the study (password hidden)."""
    text = str(getattr(exc, "orig", exc) or exc).lower()
    if "disk is full" in text or "no space left" in text:  # SQLite's SQLITE_FULL, or ENOSPC
        where = sqlite_file(url)
        disk = f"the disk holding {str(where.parent)!r}" if where else "the database's disk"
        what = (f"search.storage={mask_url(url)!r}: {disk} is full (the study database cannot "
                "grow). Free some space and run the same command again")
    else:
        lost = _storage_error(url, make_url(url).password, exc, "lost the connection to the "
                              "study storage")
        what = f"{lost}. Run the same command again once it is back"
    return (f"{what}: finished trials are kept, and the trial that was running is failed and "
            "retried once its heartbeat is older than search.grace_period")


def _lost_creation_race(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("already exists", "duplicate", "unique constraint"))


def _storage_error(url: str, password: str | None, exc: Exception,
                   what: str = "cannot open the study storage") -> UserError:
    reason = (str(getattr(exc, "orig", exc) or exc).strip().splitlines() or [type(exc).__name__])[0]
    typed = re.match(r"^[^:]+://[^:@/]*:(.*)@[^@]*$", url)  # as typed, up to the last '@'
    hint = ""
    if typed and "@" in typed.group(1):  # the driver split it at the first '@'
        hint = "; a password holding '@' must be written %40"
    if "permission denied" in reason.lower():
        user = make_url(url).username or "the user"
        hint += (f"; {user} needs rights on Optuna's tables, e.g. GRANT ALL ON ALL TABLES IN "
                 f"SCHEMA public TO {user} (and on its sequences)")
    for secret in [password or "", *(typed.group(1).split("@") if typed else [])]:
        if len(secret) >= 2:
            reason = reason.replace(secret, "***")
    return UserError(f"search.storage={mask_url(url)!r}: {what} ({reason}){hint}")


def heartbeat_ages(study: optuna.Study) -> dict[int, float]:
    """Seconds since each RUNNING trial's last heartbeat, by trial number (database clock, as
    Optuna's stale check uses); {} where the storage keeps none. Reads Optuna's heartbeat
    table: no public API gives the age, only the verdict after the grace period."""
    storage = backend_of(study)
    if not isinstance(storage, optuna.storages.RDBStorage):
        return {}
    model = heartbeat_model()
    running = {trial_id(t): t.number for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    if not running:
        return {}
    session = storage.scoped_session()
    try:
        now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        rows = session.query(model).filter(model.trial_id.in_(list(running))).all()
        return {running[r.trial_id]: (now - r.heartbeat.replace(tzinfo=None)).total_seconds()
                for r in rows}
    finally:
        session.close()


def fail_dead_trials(study: optuna.Study, grace_period: float) -> None:
    """Fail (and queue again) the RUNNING trials whose worker is gone.

    Optuna's stale check only sees trials with a heartbeat. A worker killed between creating
    a trial (`study.ask`) and its first heartbeat leaves a RUNNING trial without one, which no
    stale check ever fails: the study would wait on it forever. The objective marks every
    trial it starts first thing (`started` = its own number; a retried trial inherits its
    predecessor's attributes, hence the number), so a RUNNING trial older than the grace
    period without its mark is such an orphan."""
    optuna.storages.fail_stale_trials(study)
    storage = storage_of(study)
    retry = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    now = datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        started = trial.datetime_start
        if TrialRecord.of(trial).started == trial.number or started is None \
                or (now - started).total_seconds() < grace_period:
            continue
        try:
            storage.set_trial_user_attr(trial_id(trial), "reason",
                                        "its worker stopped before the trial started")
            if not storage.set_trial_state_values(trial_id(trial),
                                                  state=optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
            continue
        if retry is not None:  # queue it again (an enqueued trial keeps its fixed parameters)
            failed = copy.deepcopy(storage.get_trial(trial_id(trial)))
            failed.user_attrs.pop("reason")
            retry(study, failed)


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Queue again the parameters of every interrupted trial (Ctrl-C, SIGTERM, a worker whose
    main process died): Optuna fails such a trial and never runs it again, which would lose
    an enqueued start point. A failed trial counts as interrupted when it says so, or when it
    started and stored no reason at all (the interrupt cut the objective's own record short);
    one already run again (by this or by Optuna's heartbeat retry) is left alone. Returns the
    numbers queued again. Call it under the study's claim lock: two workers would queue twice."""
    trials = study.get_trials(deepcopy=False)
    rerun = {t.user_attrs.get("requeued_from") for t in trials} | {
        t.system_attrs.get("failed_trial") for t in trials}
    queued = []
    for trial in trials:
        record = TrialRecord.of(trial)
        if trial.state != optuna.trial.TrialState.FAIL or trial.number in rerun \
                or record.started is None or record.reason not in ("", INTERRUPTED):
            continue
        study.enqueue_trial(dict(trial.params), user_attrs={"requeued_from": trial.number})
        queued.append(trial.number)
    return queued


def requeue_failed_starts(study: optuna.Study, starts: list[dict[str, Any]]) -> list[int]:
    """On a resume, queue again each start point (`search.enqueue_trials`) whose trial failed
    for a reason of its own (a damaged cache, a full disk, ...): Optuna never runs an enqueued
    trial twice, so the study would go on without the recipes it was told to try first. Once
    per failed trial, as `requeue_interrupted`; returns the numbers queued again."""
    trials = study.get_trials(deepcopy=False)
    rerun = {t.user_attrs.get("requeued_from") for t in trials}
    queued = []
    for trial in trials:
        fixed = trial.system_attrs.get("fixed_params")
        if trial.state != optuna.trial.TrialState.FAIL or trial.number in rerun or \
                fixed not in starts or TrialRecord.of(trial).reason in ("", INTERRUPTED):
            continue
        study.enqueue_trial(dict(fixed), user_attrs={"requeued_from": trial.number})
        queued.append(trial.number)
    return queued


def trial_seed(seed: int, number: int) -> int:
    """The random seed of one trial. Trial numbers are unique within a study across workers,
    machines and resumes, so no two trials draw the same random parameters, while a single
    uninterrupted worker replays the same sequence for the same `search.sampler.seed`."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class _PerTrialSeed:
    """Reseed the sampler's random state from (seed, trial number) before each trial.

    Seeding the sampler once per process made every resumed or concurrent process replay the
    first process's random start-up parameters exactly."""

    _base_seed: int | None

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        super().before_trial(study, trial)  # type: ignore[misc]
        if self._base_seed is not None:
            seed = trial_seed(self._base_seed, trial.number)
            for state in self._random_states():
                state.seed(seed)

    def _random_states(self) -> list[np.random.RandomState]:
        raise NotImplementedError


class SeededTPESampler(_PerTrialSeed, optuna.samplers.TPESampler):
    def __init__(self, seed: int | None, n_startup_trials: int) -> None:
        # Multivariate TPE with `group`: conditional parameters (a learning rate per optimizer)
        # are modelled jointly within each branch instead of falling back to independent
        # sampling.
        with warnings.catch_warnings():  # `group` is marked experimental; we rely on it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(seed=seed, n_startup_trials=n_startup_trials, multivariate=True,
                             group=True)
        self._base_seed = seed

    def _random_states(self) -> list[np.random.RandomState]:
        # TPE draws candidates from its own state and start-up trials from a RandomSampler's.
        return sampler_random_states(self)


class SeededRandomSampler(_PerTrialSeed, optuna.samplers.RandomSampler):
    def __init__(self, seed: int | None) -> None:
        super().__init__(seed=seed)
        self._base_seed = seed

    def _random_states(self) -> list[np.random.RandomState]:
        return sampler_random_states(self)


def make_sampler(cfg: SamplerConfig) -> optuna.samplers.BaseSampler:
    if cfg.name == "tpe":
        return SeededTPESampler(cfg.seed, cfg.n_startup_trials)
    return SeededRandomSampler(cfg.seed)


def make_pruner(cfg: PrunerConfig, max_resource: int, fidelity: FidelityConfig | None = None,
                ) -> optuna.pruners.BasePruner:
    """`fidelity`: a multi-fidelity study (fidelity.py), pruned between its rungs by successive
    halving (min_resource=1: rung r's step is factor**r) instead of per epoch."""
    if fidelity is not None:
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=fidelity.reduction_factor,
            min_early_stopping_rate=0)
    if cfg.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.n_startup_trials,
                                           n_warmup_steps=cfg.n_warmup_steps)
    if cfg.name == "best_curve":
        return BestCurvePruner(cfg.ratio, cfg.n_warmup_steps)
    if cfg.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=cfg.min_resource,
                                              max_resource=max_resource,
                                              reduction_factor=cfg.reduction_factor)
    return optuna.pruners.NopPruner()


def open_study(storage: optuna.storages.BaseStorage, search: SearchConfig,
               max_resource: int, fingerprint: dict[str, Any] | None = None, rungs: int = 0,
               ) -> tuple[optuna.Study, int | None]:
    """Create or resume the study; return it and how many trials had finished before (None
    for a new study). `fingerprint` (see `base_fingerprint`) is stored on creation; a resume
    or a worker whose fingerprint differs is refused, naming the keys. `rungs` > 1: a
    multi-fidelity study, pruned between rungs (make_pruner)."""
    name, metric, direction = search.study_name, search.metric, DIRECTION
    sampler = make_sampler(search.sampler)
    pruner = make_pruner(search.pruner, max_resource, search.fidelity if rungs > 1 else None)
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        old_direction = existing.direction.name.lower()
        old_metric = existing.user_attrs.get("metric")
        if old_direction != direction or (old_metric and old_metric != metric):
            raise UserError(
                f"study {name!r} exists with direction={old_direction} metric={old_metric}, not "
                f"direction={direction} metric={metric}: use another search.study_name, or the "
                "same settings to resume it (the study was not changed)")
        _check_fingerprint(name, existing.user_attrs.get("base_config"), fingerprint,
                           search.allow_changed_base)
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                  pruner=pruner)
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        return study, done
    study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    study.set_user_attr("metric", metric)
    # Optuna's plots and optuna-dashboard then say val_top_100, not "Objective 0".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric])
    if fingerprint is not None:
        study.set_user_attr("base_config", fingerprint)
    return study, None


def base_fingerprint(tree: dict[str, Any], search: SearchConfig) -> dict[str, Any]:
    """What makes the trials of one study comparable: the data task, the fixed training
    settings and the search space, as flat `key: value` pairs. Settings local to a machine
    (where the data file and the cache live, thread counts) are left out, so workers on other
    machines match; the data file is identified by its name, size and content digest instead."""
    from experiments.sweeping.space import flatten

    flat = flatten({k: tree[k] for k in TRAIN_GROUPS
                   if k in tree})
    path = flat.pop("data.path", None)
    if path:
        from recsys.cache import file_identity

        flat["data.file"] = file_identity(Path(path)) if Path(path).is_file() \
            else f"{Path(path).name} (missing)"
    for local in ("data.cache_dir", "train.threads", "train.eval_batch_size"):
        flat.pop(local, None)
    for part in ("params", "conditional_params"):
        flat.update({f"search.{part}.{k}": v
                     for k, v in flatten(getattr(search, part)).items()})
    return json.loads(json.dumps(flat, default=str))  # as the storage will give it back


def _check_fingerprint(name: str, stored: dict[str, Any] | None, current: dict[str, Any] | None,
                       allowed: bool) -> None:
    if stored is None or current is None or allowed:
        return
    changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    if changed:
        shown = ", ".join(f"{k} ({stored.get(k, 'unset')} -> {current.get(k, 'unset')})"
                          for k in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise UserError(f"study {name!r} was created with other settings: {shown}{more}. Its "
                        "trials would not be comparable: use another search.study_name, the "
                        "same settings, or search.allow_changed_base=true (the study was not "
                        "changed)")
