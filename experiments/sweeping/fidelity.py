"""Multi-fidelity search for large data: successive halving over `data.sample_fraction`.

At full size an epoch costs minutes, so a study spends most of its budget on trials that lose.
`python -m experiments.benchmark --mode fidelity` measured that small nested samples rank
configurations as all the data does; a trial therefore trains first on a small fraction, then
on `reduction_factor` times more, up to the study's `data.sample_fraction`, and Optuna's
(asynchronous) SuccessiveHalvingPruner stops it after a rung where it is not in the best
1/`reduction_factor` of the trials that got there. Rung r reports at step factor**r, which are
exactly the SuccessiveHalvingPruner's rungs for min_resource=1.

Every rung uses the same validation subsample and candidate catalog (prepare.py splits before
sampling), so values on one rung are comparable. The number of rungs follows the data: a rung
needs at least `min_rung_pairs` training pairs, so small data sets get one rung (plain trials).
"""

from __future__ import annotations

from experiments.sweeping.search_config import FidelityConfig


def rung_scales(pairs: float, cfg: FidelityConfig) -> tuple[float, ...]:
    """Each rung's share of a trial's training pairs, smallest first (the last is 1.0): as many
    rungs, up to max_rungs, as keep the smallest at `min_rung_pairs` or more. `pairs`: the
    trial's training pairs (the pool times data.sample_fraction)."""
    factor, rungs = cfg.reduction_factor, 1
    while rungs < cfg.max_rungs and pairs / factor ** rungs >= cfg.min_rung_pairs:
        rungs += 1
    return tuple(1 / factor ** (rungs - 1 - r) for r in range(rungs))


def rung_step(rung: int, cfg: FidelityConfig) -> int:
    """The step rung `rung` reports at: the SuccessiveHalvingPruner's promotion step."""
    return cfg.reduction_factor ** rung


def rungs_line(scales: tuple[float, ...], pairs: float, cfg: FidelityConfig) -> str:
    """One line for the console: what the rungs train on and how trials advance."""
    shown = ", ".join(f"{int(round(s * pairs)):,}" for s in scales)
    return (f"multi-fidelity study ({len(scales)} rungs, search.fidelity): trials train on "
            f"{shown} pairs in turn; successive halving lets the best 1/{cfg.reduction_factor} "
            "of each rung go on")
