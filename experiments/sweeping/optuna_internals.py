"""Every access to Optuna's private internals, in one place, for what no public API gives:
a trial's storage id, the storage behind Optuna's cache, the age of a trial's last
heartbeat, and the random states a sampler draws from. `tests/test_internals.py` pins each
one against the installed Optuna: a version that moves one fails there, loudly, instead of
silently here."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The study's storage as it holds it (an RDB storage is wrapped in Optuna's cache)."""
    return study._storage


def backend_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage itself, unwrapped from Optuna's cache where it has one."""
    storage = storage_of(study)
    return getattr(storage, "_backend", storage)


def trial_id(trial: optuna.trial.FrozenTrial | optuna.Trial) -> int:
    """The storage's id of a trial (what the storage methods take), not its number."""
    return trial._trial_id


def heartbeat_model() -> Any:
    """The SQLAlchemy model of Optuna's heartbeat table (trial_id, heartbeat)."""
    from optuna.storages._rdb import models

    return models.TrialHeartbeatModel


def sampler_random_states(sampler: optuna.samplers.BaseSampler) -> list[np.random.RandomState]:
    """The random states a TPE or random sampler draws from (TPE: its own, and its start-up
    RandomSampler's), reseeded per trial by `study.py`'s samplers."""
    if isinstance(sampler, optuna.samplers.TPESampler):
        return [sampler._rng.rng, sampler._random_sampler._rng.rng]
    return [sampler._rng.rng]
