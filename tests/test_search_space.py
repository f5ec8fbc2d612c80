from __future__ import annotations

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from experiments.cli.compose import compose_run
from experiments.sweeping.plan import group_options
from experiments.sweeping.space import parse_space, suggest
from recsys.errors import UserError


@pytest.fixture(scope="module")
def base() -> dict:
    return compose_run([])[0]


@pytest.mark.parametrize(("key", "expression", "expected"), [
    ("model.embedding_dim", "choice(16, 32, 64)", CategoricalDistribution([16, 32, 64])),
    ("optimizer", "choice(adagrad, sgd)", CategoricalDistribution(["adagrad", "sgd"])),
    ("model.logq_correction", "choice(true, false)", CategoricalDistribution([True, False])),
    # range excludes its end, as in Hydra and Python
    ("train.epochs", "range(1, 5)", IntDistribution(1, 4)),
    ("train.epochs", "range(2, 11, 2)", IntDistribution(2, 10, step=2)),
    ("train.epochs", "range(2, 12, 3)", IntDistribution(2, 11, step=3)),
    ("data.sample_fraction", "range(0.2, 1.0, 0.2)", FloatDistribution(0.2, 0.8, step=0.2)),
    ("train.batch_size", "tag(log, range(64, 1025))", IntDistribution(64, 1024, log=True)),
    ("data.sample_fraction", "interval(0.25, 1.0)", FloatDistribution(0.25, 1.0)),
    ("optimizer.learning_rate", "tag(log, interval(1e-3, 0.5))",
     FloatDistribution(1e-3, 0.5, log=True)),
    # interval on an integer key gives integers; tag(int, ...) forces it
    ("model.embedding_dim", "interval(8, 64)", IntDistribution(8, 64)),
    ("model.temperature", "tag(int, interval(1, 4))", IntDistribution(1, 4)),
    ("model.embedding_dim", "tag(log, interval(8, 256))", IntDistribution(8, 256, log=True)),
])
def test_grammar_maps_to_optuna_distributions(base, key: str, expression: str,
                                              expected: optuna.distributions.BaseDistribution) -> None:
    [param] = parse_space({key: expression}, {}, base, group_options())
    assert param.distribution == expected


def test_plain_value_is_fixed(base) -> None:
    [param] = parse_space({"train.batch_size": 512}, {}, base, group_options())
    assert param.distribution is None and param.fixed == 512


@pytest.mark.parametrize(("params", "message"), [
    ({"optimizer.learning_rate": "interval(1)"}, "optimizer.learning_rate=interval.1.* is malformed"),
    ({"model.embedding_dim": "choice()"}, "model.embedding_dim=choice.. is malformed.*empty"),
    ({"optimizer": "tag(log, choice(adam, sgd))"}, "log scale applies to interval"),
    ({"optimizer.learning_rate": "tag(log, interval(0, 1))"}, "log-scale bound must be > 0"),
    ({"model.embeding_dim": "choice(8, 16)"}, "'model.embeding_dim' is not a config key"),
    # the base optimizer (adam) has no momentum: as an override, Hydra would refuse it too
    ({"optimizer.momentum": "interval(0.0, 0.9)"}, "'optimizer.momentum' is not a config key"),
    ({"optimizer": "choice(adam, adamw)"}, r"\['adamw'\] not in config group 'optimizer'.*adagrad"),
    ({"train.epochs": "range(5, 5)"}, "range is empty"),
    ({"model.l2": "interval(1.0, 0.5)"}, "needs low < high"),
])
def test_malformed_expressions_name_parameter_and_expression(base, params, message) -> None:
    with pytest.raises(UserError, match=message):
        parse_space(params, {}, base, group_options())


def test_conditional_parameters_only_when_condition_holds(base) -> None:
    space = parse_space({"optimizer": "choice(adagrad, sgd)",
                         "optimizer.learning_rate": "tag(log, interval(0.001, 0.5))"},
                        {"optimizer=sgd": {"optimizer.momentum": "interval(0.0, 0.9)"}},
                        base, group_options())
    overrides, chosen = suggest(optuna.trial.FixedTrial(
        {"optimizer": "sgd", "optimizer.learning_rate": 0.01, "optimizer.momentum": 0.5}), space)
    assert overrides == ["optimizer=sgd", "optimizer.learning_rate=0.01", "optimizer.momentum=0.5"]
    overrides, chosen = suggest(optuna.trial.FixedTrial(
        {"optimizer": "adagrad", "optimizer.learning_rate": 0.1}), space)
    assert "optimizer.momentum" not in chosen and len(overrides) == 2

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        _, chosen = suggest(trial, space)
        assert ("optimizer.momentum" in trial.params) == (chosen["optimizer"] == "sgd")
        study.tell(trial, 0.0)


def test_nested_and_dotted_keys_are_the_same_parameter(base) -> None:
    nested = OmegaConf.create({"model": {"embedding_dim": "choice(8, 16)"}})
    [param] = parse_space(nested, {}, base, group_options())
    assert param.key == "model.embedding_dim"


def test_a_plain_parameter_replaces_the_per_condition_ranges_of_its_key(base) -> None:
    conditional = {"optimizer=adam": {"optimizer.learning_rate": "tag(log, interval(1e-4, 1e-2))"},
                   "optimizer=adagrad": {"optimizer.learning_rate": "tag(log, interval(0.02, 1))"}}
    space = parse_space({"optimizer": "choice(adam, adagrad)"}, conditional, base, group_options())
    lr = [p for p in space if p.key == "optimizer.learning_rate"]
    assert [p.optuna_name for p in lr] == ["optimizer.learning_rate[optimizer=adam]",
                                           "optimizer.learning_rate[optimizer=adagrad]"]
    # Each trial suggests exactly one learning rate, from its optimizer's own range.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        _, chosen = suggest(trial, space)
        [name] = [n for n in trial.params if n.startswith("optimizer.learning_rate")]
        assert name.endswith(f"[optimizer={chosen['optimizer']}]")
        low = 1e-4 if chosen["optimizer"] == "adam" else 0.02
        assert chosen["optimizer.learning_rate"] >= low
        study.tell(trial, 0.0)

    space = parse_space({"optimizer": "choice(adam, adagrad)",
                         "optimizer.learning_rate": "tag(log, interval(0.01, 0.1))"},
                        conditional, base, group_options())
    [lr] = [p for p in space if p.key == "optimizer.learning_rate"]
    assert lr.condition is None and lr.optuna_name == "optimizer.learning_rate"


@pytest.mark.parametrize("name", ["tpe", "random"])
def test_a_second_process_on_the_same_study_does_not_repeat_parameters(name: str) -> None:
    from experiments.sweeping.search_config import SamplerConfig
    from experiments.sweeping.study import make_sampler

    cfg = SamplerConfig(name=name, seed=42, n_startup_trials=10)
    storage = optuna.storages.InMemoryStorage()

    def draw(study: optuna.Study) -> float:
        trial = study.ask()
        value = trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, value)
        return value

    first = optuna.create_study(study_name="s", storage=storage, sampler=make_sampler(cfg))
    a = [draw(first) for _ in range(3)]
    # A resumed run, or a worker on another machine: a new sampler with the same seed.
    second = optuna.load_study(study_name="s", storage=storage, sampler=make_sampler(cfg))
    b = [draw(second) for _ in range(3)]
    assert not set(a) & set(b)
    # One uninterrupted process still replays exactly for the same seed.
    again = optuna.create_study(sampler=make_sampler(cfg))
    assert [draw(again) for _ in range(3)] == a


def test_a_condition_no_choice_can_reach_is_noted() -> None:
    from experiments.cli.compose import compose_run
    from experiments.sweeping.space import dead_conditions

    space = parse_space({"optimizer": "choice(adam, adagrad)"},
                        {"optimizer=sgd": {"optimizer.momentum": "interval(0.0, 0.9)"},
                         "optimizer=adam": {"optimizer.learning_rate": "interval(0.001, 0.01)"}},
                        compose_run([])[0], group_options())
    assert dead_conditions(space) == [
        "note: search.conditional_params optimizer=sgd can never hold (optimizer takes adam, "
        "adagrad): optimizer.momentum is never suggested under it"]


def test_a_searched_key_set_on_the_command_line_is_fixed_with_a_note(capsys) -> None:
    from experiments.sweeping.plan import plan_from_argv

    plan = plan_from_argv(["model.embedding_dim=8"])
    assert capsys.readouterr().out.startswith(
        "note: model.embedding_dim=8 is set on the command line: fixed for every trial (the "
        "study searched choice(16, 32, 64, 128))")
    dim = [p for p in plan.space if p.key == "model.embedding_dim"]
    assert len(dim) == 1 and dim[0].distribution is None and dim[0].fixed == 8
    assert plan.search.enqueue_trials and all(
        t["model.embedding_dim"] == 8 for t in plan.search.enqueue_trials)
    # A group choice: start points with the other optimizer (and its learning rate) are gone.
    plan = plan_from_argv(["optimizer=adagrad"])
    assert [t["optimizer"] for t in plan.search.enqueue_trials] == ["adagrad"]


def test_an_experiment_option_whose_keys_are_searched_gets_a_note(capsys) -> None:
    """`experiment=notebook` in a sweep: its optimizer, learning rate, batch size and dim are
    drawn per trial (the first trial read adam and batch 1024, silently); a key also set on
    the command line has its own note, not this one."""
    from experiments.sweeping.plan import plan_from_argv

    plan_from_argv(["experiment=notebook", "data=synthetic", "train.batch_size=8192"])
    notes = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("note: experiment=")]
    assert notes == ["note: experiment=notebook sets model.embedding_dim, optimizer, "
                     "optimizer.learning_rate, which the search space searches: each trial "
                     "draws them; set one on the command line to fix it for every trial"]


def test_a_sweep_ranks_on_train_monitor_unless_search_metric_differs() -> None:
    from experiments.sweeping.plan import plan_from_argv

    with pytest.raises(UserError, match="train.monitor=val_top_10 differs from search.metric="
                                        "val_top_100: a sweep keeps each trial's epoch"):
        plan_from_argv(["train.monitor=val_top_10", "search.metric=val_top_100"])
    plan_from_argv(["train.monitor=val_top_10", "search.metric=val_top_10"])  # the same: fine
    # train.monitor alone (or an experiment option's) decides what the study ranks on.
    assert plan_from_argv(["train.monitor=val_top_10"]).search.metric == "val_top_10"
    assert plan_from_argv(["experiment=sequential"]).search.metric == "val_ndcg_10"


def test_the_user_tower_is_searched_under_per_user_splits_only(capsys) -> None:
    """Under the default random split the space and start points are the ones without the
    sequence tower; under leave-one-out the tower choice, its knobs and its start point."""
    from experiments.sweeping.plan import plan_from_argv

    plan = plan_from_argv([])
    assert "note: model.user_tower not searched under data.split=random" in \
        capsys.readouterr().out
    assert not [p for p in plan.space if p.key.startswith(("model.user_tower", "model.seq"))]
    assert [(t["optimizer"], t["model.embedding_dim"]) for t in plan.search.enqueue_trials] == \
        [("adam", 32), ("adam", 64), ("adagrad", 32)]
    assert all("model.user_tower" not in t for t in plan.search.enqueue_trials)
    plan = plan_from_argv(["experiment=sequential"])
    keys = {p.key for p in plan.space}
    assert {"model.user_tower", "model.sequence_blocks", "model.sequence_dropout"} <= keys
    assert plan.search.enqueue_trials[0]["model.user_tower"] == "sequence"
    assert len(plan.search.enqueue_trials) == 4


def test_history_knobs_are_not_searched_for_an_id_user_tower(capsys) -> None:
    from experiments.sweeping.plan import plan_from_argv

    plan = plan_from_argv(["model.user_tower=id"])
    assert "note: model.history_dropout not searched: it does nothing with " \
           "model.user_tower=id" in capsys.readouterr().out
    assert not [p for p in plan.space if p.key == "model.history_dropout"]
    assert all("model.history_dropout" not in t for t in plan.search.enqueue_trials)
