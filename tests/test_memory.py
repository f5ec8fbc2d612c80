"""The up-front memory check sizes a training step by the batch a run really has (at most
every training pair) and names the setting behind the largest part."""

from __future__ import annotations

from dataclasses import replace

import pytest

import recsys.memory
from recsys.config import ModelConfig, RunConfig, TrainConfig
from recsys.errors import UserError
from recsys.memory import check_fits, training_bytes


def test_a_batch_larger_than_the_data_is_the_data(monkeypatch) -> None:
    huge = replace(RunConfig(), train=TrainConfig(batch_size=1_000_000_000))
    assert training_bytes(huge, 300, 200, n_pairs=2363) == training_bytes(
        replace(RunConfig(), train=TrainConfig(batch_size=2363)), 300, 200, n_pairs=2363)
    monkeypatch.setattr(recsys.memory, "machine_bytes", lambda: 2**30)
    check_fits(huge, 300, 200, n_pairs=2363)  # 2,363 rows a step: it fits


def test_the_refusal_names_the_part_that_is_too_large(monkeypatch) -> None:
    monkeypatch.setattr(recsys.memory, "machine_bytes", lambda: 2**30)
    wide = replace(RunConfig(), train=TrainConfig(batch_size=200_000, fast_loss=False),
                   model=ModelConfig(batch_columns=None))
    with pytest.raises(UserError, match=r"batches of 200,000 rows \(train.batch_size=200,000\).*"
                                        r"use a smaller train.batch_size$"):
        check_fits(wide, 1_000, 500, n_pairs=500_000)
    assert training_bytes(wide, 1_000, 500, 500_000)["step"] > 2 * 200_000**2 * 4 - 1
    # In groups of 2,048 columns the scores are 200,000 x 2,048: it fits.
    grouped = replace(wide, model=ModelConfig(batch_columns=2048))
    assert training_bytes(grouped, 1_000, 500, 500_000)["step"] < 2 * 200_000 * 2048 * 4 * 1.1
