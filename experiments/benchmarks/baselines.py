"""How long each baseline takes on a data set, and whether its faster paths choose as the exact ones.

Per data set, in one process and on one prepared split:
- every baseline through `recsys.baselines.run_baselines` (what a run computes): the value
  chosen on validation, seconds by part, test top-100 and top-10, and the total;
- iALS: its grid compared at eval.ials_iterations sweeps per fit (old) against
  eval.ials_tune_iterations sweeps and one refit of the chosen combination (new): the chosen
  values, seconds and test top-100 side by side.
(The dense item-kNN and LU-inverse EASE paths these replaced, and EASE in float32 against
float64, with their figures: docs/speed.md.)
"""

from __future__ import annotations

from dataclasses import replace

from experiments.benchmarks.common import TEST_10, TEST_100
from experiments.benchmarks.search import DataSet
from experiments.cli.compose import compose_run
from recsys.baselines import interaction_matrix, run_baselines, tune_ials
from recsys.cache import load_prepared
from recsys.training import make_setup

TARGETED = ("itemknn", "ease", "ials")  # the three whose sum docs/speed.md holds to 90 s at 18k


def baselines_table(data_sets: list[DataSet], overrides: list[str]) -> str:
    rows = [f"{'data set':<26} {'items':>6}  {'baseline':<18} {'chosen':<34} {'s':>6}  "
            f"{'test@100':>8} {'test@10':>8}  parts (s)", "-" * 130]
    ials = ["iALS: grid at every sweep (old) vs grid at eval.ials_tune_iterations and one full "
            "refit (new)",
            "data set                 items   path  chosen                        s      test@100",
            "-" * 80]
    for ds in data_sets:
        _, cfg = compose_run([*ds.overrides, *overrides])
        prepared, _ = load_prepared(cfg.data)
        setup = make_setup(cfg, prepared)
        monitor, n = cfg.train.monitor_metric, setup.data.n_items
        quick = replace(cfg.eval, interval_resamples=0)
        results = run_baselines(setup.ranker, setup.val, setup.test, setup.ks, quick, monitor)
        total, three, gram = 0.0, 0.0, 0.0
        for name, r in results.items():
            if name == "popularity" or r.skipped:
                continue
            seconds = sum(r.seconds.values())
            # The Gram matrix is built once and shown in each row that reads it: count it once.
            gram = r.seconds.get("gram", gram)
            total += seconds - r.seconds.get("gram", 0.0)
            three += seconds - r.seconds.get("gram", 0.0) if name in TARGETED else 0.0
            rows.append(f"{ds.label[:26]:<26} {n:>6}  {r.name[:18]:<18} {r.param[:34]:<34} "
                        f"{seconds:>6.1f}  {r.metrics[TEST_100]:>8.4f} {r.metrics[TEST_10]:>8.4f}"
                        f"  {', '.join(f'{k} {v:.1f}' for k, v in r.seconds.items())}")
        rows.append(f"{'':<26} {'':>6}  {'all':<18} {'(the Gram matrix once)':<34} "
                    f"{total + gram:>6.1f}")
        rows.append(f"{'':<26} {'':>6}  {'kNN + EASE + iALS':<18} {'(the Gram matrix once)':<34} "
                    f"{three + gram:>6.1f}")
        for path, ev in (("old", replace(quick, ials_tune_iterations=quick.ials_iterations)),
                         ("new", quick)):
            r = tune_ials(setup.ranker, setup.ranker, interaction_matrix(setup.ranker),
                          setup.val, setup.test, setup.ks, ev, monitor)
            ials.append(f"{ds.label if path == 'old' else '':<22} "
                        f"{n if path == 'old' else '':>7}   {path}   {r.param:<29} "
                        f"{sum(r.seconds.values()):<6.1f} {r.metrics[TEST_100]:.4f}")
    return "\n".join(["baselines: each as a run computes it (recsys.baselines.run_baselines), "
                      "chosen on validation", *rows, "", *ials])
