"""The private internals of Optuna, tf-keras and Hydra that the adapters reach into, pinned
against the installed versions: when an upgrade moves one, these fail by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from experiments.cli import hydra_internals
from experiments.sweeping import optuna_internals
from recsys.keras_internals import adam_moments

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def test_optuna_trial_ids_storage_and_heartbeat_table(tmp_path: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=60)
    study = optuna.create_study(storage=storage, study_name="pin")
    study.enqueue_trial({"x": 1.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    trial = study.ask()
    assert optuna_internals.backend_of(study) is storage  # unwrapped from Optuna's cache
    held = optuna_internals.storage_of(study)
    held.record_heartbeat(optuna_internals.trial_id(trial))
    frozen = held.get_trial(optuna_internals.trial_id(trial))
    assert frozen.number == trial.number == 1
    model = optuna_internals.heartbeat_model()
    session = storage.scoped_session()
    try:
        rows = session.query(model).filter(
            model.trial_id == optuna_internals.trial_id(trial)).all()
    finally:
        session.close()
    assert len(rows) == 1 and rows[0].heartbeat is not None


@pytest.mark.parametrize("make", [lambda: optuna.samplers.TPESampler(seed=1, n_startup_trials=2),
                                  lambda: optuna.samplers.RandomSampler(seed=1)])
def test_optuna_samplers_draw_from_the_random_states_we_reseed(make) -> None:
    """Reseeding the states `sampler_random_states` returns replays the sampler's draws: they
    are the ones it draws from (start-up and TPE phases alike)."""

    def draws(sampler: optuna.samplers.BaseSampler) -> list[float]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
        return [t.params["x"] for t in study.trials]

    sampler = make()
    first = draws(sampler)
    for state in optuna_internals.sampler_random_states(sampler):
        state.seed(1)
    assert draws(sampler) == first


def test_keras_adam_moment_slots_are_the_ones_its_step_updates() -> None:
    variable = tf.Variable(np.ones((4, 2), np.float32))
    optimizer = tf.keras.optimizers.Adam(0.1)
    optimizer.apply_gradients([(tf.constant(np.full((4, 2), 0.5, np.float32)), variable)])
    m, v = adam_moments(optimizer, variable)
    # After one step: m = (1 - beta_1) g, v = (1 - beta_2) g^2.
    np.testing.assert_allclose(m.numpy(), 0.1 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(v.numpy(), 0.001 * 0.25, rtol=1e-5)


def compose_error(overrides: list[str]) -> Exception:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"), pytest.raises(Exception) as caught:
        compose(config_name="sweep", overrides=overrides)
    GlobalHydra.instance().clear()
    return caught.value


def test_hydra_errors_are_read_by_type_or_by_their_pinned_text() -> None:
    exc = compose_error(["+search.params={model.embedding_dim: choice(8, 16)}"])
    assert hydra_internals.sweep_in_mapping(exc) == "ChoiceSweep"
    assert hydra_internals.failed_override(exc) == \
        "+search.params={model.embedding_dim: choice(8, 16)}"
    exc = compose_error(["model.nosuch=3"])
    assert hydra_internals.not_overridable(exc) == "model.nosuch"
    assert hydra_internals.refused_key(exc) == "nosuch"
    assert hydra_internals.sweep_in_mapping(exc) is None
    assert hydra_internals.needs_multirun(compose_error(["search.params.x=choice(1,2)"]))
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override, stop in (("data.path=~/x.csv", "'~'"), ("a={b: c<d}", "'<'")):
        with pytest.raises(Exception) as caught:
            OverridesParser.create().parse_override(override)
        assert hydra_internals.grammar_stop(caught.value) == stop


def test_hydra_args_parser_and_entry_are_where_the_adapter_looks() -> None:
    parser = hydra_internals.args_parser()
    parsed = parser.parse_args(["--cfg", "job", "a=1"])
    assert parsed.cfg == "job" and parsed.overrides == ["a=1"]
    import inspect

    names = set(inspect.signature(hydra_internals._run_hydra).parameters)
    assert {"args", "args_parser", "task_function", "config_path", "config_name"} <= names


def test_hydra_flags_are_read_from_its_parser() -> None:
    """app.py's flag sets come from Hydra's parser: which flags take a value, which take one
    only when it is one of theirs."""
    from experiments.cli import hydra_internals
    from experiments.cli.app import OPTIONAL_VALUE, VALUED

    actions = hydra_internals.flag_actions()
    assert {"--cfg", "-c", "--multirun", "-m", "--info", "-i", "-sc"} <= set(actions)
    assert {"--cfg", "-c", "--config-dir", "--experimental-rerun"} <= VALUED
    assert "-sc" not in VALUED and "-m" not in VALUED  # switches
    assert {"defaults", "searchpath"} <= OPTIONAL_VALUE["--info"] == OPTIONAL_VALUE["-i"]
