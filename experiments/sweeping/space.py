"""Search spaces written in the Hydra sweeper grammar, mapped to Optuna distributions.

    params:
      model.embedding_dim: choice(16, 32, 64, 128)      -> CategoricalDistribution
      optimizer: choice(adagrad, adam, sgd)             -> a config-group choice
      train.epochs: range(2, 11, 2)                     -> IntDistribution(2, 10, step=2)
      optimizer.learning_rate: tag(log, interval(1e-3, 0.5))  -> FloatDistribution(log=True)
      train.batch_size: 1024                            -> fixed for every trial
    conditional_params:
      optimizer=sgd:                                    -> suggested only when optimizer=sgd
        optimizer.momentum: interval(0.0, 0.95)

Expressions are parsed by Hydra's own override parser. `range(a, b[, step])` excludes `b`, as
in Hydra and Python. `interval` gives integers when the key's current value is an integer (or
with `tag(int, interval(...))`), floats otherwise. `log` is valid on intervals and ranges only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import HydraException
from omegaconf import OmegaConf

from recsys.errors import UserError

Distribution = optuna.distributions.BaseDistribution


@dataclass(frozen=True)
class Param:
    key: str  # config key ("model.embedding_dim") or config group ("optimizer")
    expression: str
    distribution: Distribution | None  # None: a fixed value for every trial
    fixed: Any = None
    condition: tuple[str, Any] | None = None  # (key, value) that must hold to suggest it
    is_group: bool = False
    name: str = ""  # Optuna's parameter name: the key, or key[condition] when it repeats

    @property
    def optuna_name(self) -> str:
        return self.name or self.key


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{model: {embedding_dim: x}}` and `{model.embedding_dim: x}` both give the dotted key."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def parse_space(params: Mapping[str, Any], conditional: Mapping[str, Any],
                base: Mapping[str, Any], group_options: Mapping[str, list[str]]) -> list[Param]:
    """Parse every parameter, checking keys against the base training config (the composed
    tree: a key the chosen group options do not hold is refused, as an override would be)."""
    space = [parse_param(key, expr, base, group_options) for key, expr in flatten(params).items()]
    for condition, block in (conditional or {}).items():
        if "=" not in condition:
            raise UserError(f"search.conditional_params key {condition!r} is invalid: expected "
                            "'key=value', e.g. 'optimizer=sgd'")
        ckey, cvalue = (part.strip() for part in condition.split("=", 1))
        if not any(p.key == ckey for p in space):
            raise UserError(f"search.conditional_params condition {condition!r} names "
                            f"{ckey!r}, which is not a search parameter in search.params "
                            "(replacing search.params? add ~search.conditional_params)")
        for key, expr in flatten(block or {}).items():
            param = parse_param(key, expr, base, group_options, allow_missing=True)
            space.append(Param(param.key, param.expression, param.distribution, param.fixed,
                               (ckey, _yaml_value(cvalue)), param.is_group))
    return _name_repeated_keys(space)


def dead_conditions(space: list[Param]) -> list[str]:
    """Notes for conditional parameters whose condition no choice of the space can meet
    (e.g. `optimizer=sgd` when optimizer is choice(adam, adagrad)): never suggested."""
    notes = []
    for param in space:
        if param.condition is None:
            continue
        ckey, cvalue = param.condition
        sources = [p for p in space if p.key == ckey and p.condition is None]
        reachable = [v for p in sources
                     for v in (getattr(p.distribution, "choices", None) or [p.fixed])]
        if sources and all(p.distribution is None or hasattr(p.distribution, "choices")
                           for p in sources) and cvalue not in reachable:
            notes.append(f"note: search.conditional_params {ckey}={format_value(cvalue)} can "
                         f"never hold ({ckey} takes "
                         f"{', '.join(format_value(v) for v in reachable)}): {param.key} is "
                         "never suggested under it")
    return list(dict.fromkeys(notes))


def _name_repeated_keys(space: list[Param]) -> list[Param]:
    """One key under several conditions (e.g. a learning-rate range per optimizer) becomes one
    Optuna parameter per condition, `optimizer.learning_rate[optimizer=adam]`: TPE then models
    each range on its own instead of mixing ranges a decade apart. A key that is also a plain
    parameter is suggested once, from the plain one: e.g. `++search.params=...` on the command
    line replaces the per-condition ranges of the default space."""
    plain = {p.key for p in space if p.condition is None}
    space = [p for p in space if p.condition is None or p.key not in plain]
    repeated = {p.key for p in space if sum(q.key == p.key for q in space) > 1}
    out = []
    for param in space:
        if param.key in repeated and param.condition:
            ckey, cvalue = param.condition
            param = Param(param.key, param.expression, param.distribution, param.fixed,
                          param.condition, param.is_group,
                          f"{param.key}[{ckey}={format_value(cvalue)}]")
        out.append(param)
    return out


def optuna_params(space: list[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """Config-key values (e.g. an enqueued trial) as Optuna parameter names, following the
    same conditions as `suggest`; keys of inactive branches and keys not given are dropped."""
    active = _active(space, lambda p: values.get(p.key, _SKIP))
    return {p.optuna_name: value for p, value in active if p.distribution is not None}


def _yaml_value(text: str) -> Any:
    return OmegaConf.create({"v": text})["v"] if text not in ("true", "false") else text == "true"


def parse_param(key: str, expression: Any, base: Mapping[str, Any],
                group_options: Mapping[str, list[str]], allow_missing: bool = False) -> Param:
    where = f"search.params.{key}={expression}"
    is_group = key in group_options
    current = None if is_group else _current(base, key)
    if current is _SKIP and not allow_missing:
        raise UserError(f"search parameter {key!r} is not a config key (check the spelling; "
                        f"e.g. model.embedding_dim, optimizer.learning_rate, or a group such as "
                        f"{sorted(group_options)})")
    if isinstance(expression, (list, dict)):
        raise UserError(f"{where}: expected one expression such as choice(...), range(...) or "
                        "interval(...)")
    try:
        override = OverridesParser.create().parse_override(f"{key}={expression}")
        value = override.value()
    except HydraException as exc:
        raise UserError(f"{where} is malformed: {str(exc).splitlines()[0]}") from None
    if not override.is_sweep_override():
        return Param(key, str(expression), None, value, is_group=is_group)
    tags = set(getattr(value, "tags", set()))
    unknown = tags - {"log", "int"}
    if unknown:
        raise UserError(f"{where}: unknown tag(s) {sorted(unknown)}; valid tags are log and int")
    if isinstance(value, ChoiceSweep):
        dist = _choice(where, value, "log" in tags, key, group_options.get(key))
    elif is_group:
        raise UserError(f"{where}: a config group takes choice(...) only")
    elif isinstance(value, RangeSweep):
        dist = _range(where, value, "log" in tags)
    elif isinstance(value, IntervalSweep):
        integer = "int" in tags or (isinstance(current, int) and not isinstance(current, bool))
        dist = _interval(where, value, "log" in tags, integer)
    else:
        raise UserError(f"{where}: unsupported sweep {type(value).__name__}; use choice, range "
                        "or interval")
    return Param(key, str(expression), dist, is_group=is_group)


def _current(base: Mapping[str, Any], key: str) -> Any:
    """The base tree's value at a dotted key (`_SKIP`: no such setting)."""
    node: Any = base
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _SKIP
        node = node[part]
    return node


def _choice(where: str, sweep: ChoiceSweep, log: bool, key: str, group: list[str] | None,
            ) -> Distribution:
    """choice(...) of scalars, or of a config group's options (`group`: the group's)."""
    if log:
        raise UserError(f"{where}: log scale applies to interval() or range(), not choice()")
    choices = list(sweep.list)
    if any(isinstance(c, (list, dict)) for c in choices):  # Optuna takes scalars only
        raise UserError(f"{where}: choices that are lists or mappings are not supported "
                        "(a study stores each choice as one value); search a scalar key "
                        "instead, e.g. model.embedding_dim: choice(16, 32)")
    missing = [c for c in choices if group is not None and c not in group]
    if missing:
        raise UserError(f"{where}: {missing} not in config group {key!r}; available options "
                        f"are {', '.join(group or [])}")
    return optuna.distributions.CategoricalDistribution(choices)


def _range(where: str, sweep: RangeSweep, log: bool) -> Distribution:
    """range(a, b[, step]), b excluded: integers when every part is one."""
    values = _range_ends(sweep)
    if not values:
        raise UserError(f"{where}: the range is empty (range(a, b) excludes b)")
    if log and sweep.step != 1:
        raise UserError(f"{where}: log scale cannot be combined with a step")
    _check_log(where, log, values[0])
    if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
        return optuna.distributions.IntDistribution(values[0], values[-1], log=log,
                                                    step=1 if log else sweep.step)
    return optuna.distributions.FloatDistribution(float(values[0]), float(values[-1]), log=log,
                                                  step=None if log else sweep.step)


def _interval(where: str, sweep: IntervalSweep, log: bool, integer: bool) -> Distribution:
    low, high = sweep.start, sweep.end
    if low >= high:
        raise UserError(f"{where}: interval(low, high) needs low < high")
    _check_log(where, log, low)
    if integer:
        return optuna.distributions.IntDistribution(int(low), int(high), log=log)
    return optuna.distributions.FloatDistribution(float(low), float(high), log=log)


def _range_ends(sweep: RangeSweep) -> list[float]:
    """[first, last] value of the range ([] if empty), computed, not listed: `range(1, 1e9)`
    must not build a billion-element list."""
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if step == 0:
        return []
    count = max(0, int(-(-(stop - start) // step)))  # ceil((stop - start) / step)
    if count == 0:
        return []
    values = [start, start + (count - 1) * step]
    return [round(v, 12) if isinstance(v, float) else v for v in values]


def _check_log(where: str, log: bool, low: float) -> None:
    if log and low <= 0:
        raise UserError(f"{where}: a log-scale bound must be > 0 (got {low})")


def suggest(trial: optuna.Trial, space: list[Param]) -> tuple[list[str], dict[str, Any]]:
    """Ask the trial for every active parameter; return (Hydra overrides, chosen values)."""
    active = _active(space, lambda p: _suggest_one(trial, p.optuna_name, p.distribution))
    return ([f"{p.key}={format_value(value)}" for p, value in active],
            {p.key: value for p, value in active})


_SKIP = object()


def _active(space: list[Param], value_of: Callable[[Param], Any]) -> list[tuple[Param, Any]]:
    """The parameters whose condition holds, in order, with their values: fixed ones as given,
    the others from `value_of` (which may return `_SKIP` to leave one out)."""
    chosen: dict[str, Any] = {}
    active = []
    for param in space:
        if param.condition and chosen.get(param.condition[0]) != param.condition[1]:
            continue
        value = param.fixed if param.distribution is None else value_of(param)
        if value is not _SKIP:
            chosen[param.key] = value
            active.append((param, value))
    return active


def _suggest_one(trial: optuna.Trial, name: str, dist: Distribution) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, optuna.distributions.FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
