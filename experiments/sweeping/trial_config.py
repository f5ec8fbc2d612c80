"""Each trial's typed config, built from the sweep's base and the trial's suggested values."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.cli.compose import TRAIN_GROUPS, compose_config, job_config
from recsys.config import RunConfig


class TrialComposer:
    """Each trial's config from the sweep's base overrides and the trial's suggested values.

    Hydra composes once per combination of group choices (`optimizer=adagrad` swaps a whole
    section, which only Hydra knows how to do); the suggested values are then set, typed, on
    that composition's RunConfig (`RunConfig.with_values`): no round trip through override
    text, one composition per combination instead of one per trial. The trial carries that
    one RunConfig; its config.yaml is `RunConfig.to_dict()`. A base whose overrides hold an interpolation
    (`train.eval_batch_size=${train.batch_size}`) is the exception: its values are set on a
    copy of the composition and resolved, as a composition with those overrides would be."""

    def __init__(self, base_overrides: Sequence[str]) -> None:
        self.base = list(base_overrides)
        self.composed: dict[tuple[tuple[str, Any], ...], DictConfig] = {}
        self.typed: dict[tuple[tuple[str, Any], ...], RunConfig] = {}

    def __call__(self, chosen: dict[str, Any]) -> RunConfig:
        groups = tuple((k, v) for k, v in chosen.items() if k in TRAIN_GROUPS)
        values = {k: v for k, v in chosen.items() if k not in TRAIN_GROUPS}
        if groups not in self.composed:
            cfg = compose_config("train", [*self.base, *(f"{k}={v}" for k, v in groups)],
                                 resolve=False)
            self.composed[groups] = cfg = OmegaConf.masked_copy(cfg, list(TRAIN_GROUPS))
            if not _interpolated(OmegaConf.to_container(cfg, resolve=False)):
                self.typed[groups] = RunConfig.from_dict(job_config(cfg))
        if groups in self.typed:
            return self.typed[groups].with_values(values)
        cfg = copy.deepcopy(self.composed[groups])
        for key, value in values.items():
            OmegaConf.update(cfg, key, value, merge=False)
        return RunConfig.from_dict(job_config(cfg))


def _interpolated(node: Any) -> bool:
    """Whether a value of the unresolved tree holds `${...}` (an escaped `\\${` counts too:
    it then takes the general path, which is right for it as well)."""
    if isinstance(node, dict):
        return any(_interpolated(v) for v in node.values())
    if isinstance(node, list):
        return any(_interpolated(v) for v in node)
    return isinstance(node, str) and "${" in node
