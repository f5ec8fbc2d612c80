"""report/index.html of a real tiny study, opened in a real headless Chromium (Debian's
chromium-headless-shell, driven by Playwright; `.ci/run` installs both, nothing is downloaded).

With RECSYS_SCREENSHOTS=<folder> the test also saves the page as a PNG there (the README's
screenshot is taken this way)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import TINY_SYNTHETIC, TINY_TRAIN

from experiments import sweep
from experiments.sweeping.hparams import best_runs_url
from experiments.sweeping.trials import ranked

CHROMIUM = shutil.which("chromium-headless-shell") or "/usr/bin/chromium-headless-shell"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason="needs Debian's chromium-headless-shell (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    args = [f"data.cache_dir={tmp / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            "train.epochs=3", f"search.dir={tmp / 'study'}", "search.n_trials=20",
            "search.sampler.n_startup_trials=2", "search.pruner.name=median",
            "search.pruner.n_startup_trials=11",
            "search.pruner.n_warmup_steps=1", "eval.baselines=[]",
            "search.enqueue_trials=[{optimizer: adam, optimizer.learning_rate: 0.003, "
            "train.batch_size: 1024, model.embedding_dim: 32, model.history_dropout: 0.0}, "
            "{optimizer: adagrad, optimizer.learning_rate: 0.02, train.batch_size: 256, "
            "model.embedding_dim: 16, model.history_dropout: 0.5}]"]
    assert sweep.main(args) == 0
    return tmp / "study"


@pytest.mark.parametrize("width", [1400, 1000])
def test_report_page_renders_the_table_and_every_plot(study_dir: Path, width: int) -> None:
    """A 20-trial study at 1400 and 1000 px: every plot fits the page with whole axis titles,
    every trial is in the table (pruned and failed ones collapsed, counted), parameters break
    only between tokens, and the per-epoch curves highlight the best five."""
    from playwright.sync_api import sync_playwright

    study = optuna.load_study(study_name="default",
                              storage=f"sqlite:///{study_dir / 'study.db'}")
    S = optuna.trial.TrialState
    complete = len(study.get_trials(states=(S.COMPLETE,)))
    pruned = len(study.get_trials(states=(S.PRUNED,)))
    failed = len(study.get_trials(states=(S.FAIL,)))
    assert complete + pruned + failed == 20 and complete > 10  # more than the old top 10
    page_path = study_dir / "report" / "index.html"
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg")
        plots = page.locator(".js-plotly-plot")
        # history, time to quality, importances, parallel, slices, per-epoch curves
        assert plots.count() == 6
        table = page.locator("table").first
        assert "best" in table.inner_text()
        ranked = [r for r in table.locator("tr").all_inner_texts()[1:] if "baseline" not in r]
        assert len(ranked) == complete  # every complete trial, not the top 10
        if pruned + failed:
            summary = page.locator("details summary").inner_text()
            assert summary.startswith(f"{pruned} pruned and {failed} failed trial(s)")
        text = page.locator("body").inner_text()
        assert "Objective Value" not in text
        axis_titles = page.eval_on_selector_all(".g-ytitle, .g-y2title",
                                                "els => els.map(e => e.textContent)")
        assert sum("val_top_100" in t for t in axis_titles) >= 2, axis_titles
        x_titles = page.eval_on_selector_all(".g-xtitle, [class^='g-x'][class$='title']",
                                             "els => els.map(e => e.textContent)")
        assert "learning_rate(adam)" in x_titles and "embedding_dim" in x_titles, x_titles
        # The slices' axis titles side by side, none running into the next (the condition
        # sits on a second line).
        boxes = sorted(plots.nth(4).locator("[class^='g-x'][class$='title'] text").evaluate_all(
            "els => els.map(e => [e.getBoundingClientRect().left, "
            "e.getBoundingClientRect().right])"))
        assert len(boxes) >= 4 and all(a[1] <= b[0] for a, b in itertools.pairwise(boxes)), boxes
        # The study table: whole at 1400 px; at 1000 px a line above it names the columns
        # out of view, and the box scrolls sideways within the window's height.
        box = page.locator(".rows").first
        overflow = box.evaluate("e => e.scrollWidth - e.clientWidth")
        hint = page.locator("p.more").first
        if width == 1400:
            assert overflow <= 0 and not hint.is_visible()
        else:
            assert overflow > 0 and hint.is_visible() and "params" in hint.inner_text()
            assert box.evaluate("e => e.getBoundingClientRect().height") <= 1000
        assert not [t for t in x_titles if "[" in t], x_titles  # no cut `...rate[optim`
        assert page.locator("a[href='../best/']").count() == 1
        for plot in (plots.nth(0), plots.nth(5)):  # the history and the per-epoch curves
            ticks = plot.locator(".xtick text").evaluate_all("els => els.map(e => e.textContent)")
            assert ticks and not [t for t in ticks if "." in t], ticks
        # Nothing wider than the page: no plot, and the page never scrolls sideways.
        widths = plots.evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
        assert max(widths) <= width, widths
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # A parameter is never split inside: cells break at spaces only.
        wrap = page.eval_on_selector("table td:last-child", "e => getComputedStyle(e).overflowWrap")
        assert wrap == "normal"
        # Parallel coordinates: every axis, tick labels included, inside its own plot.
        bottom = plots.nth(3).evaluate("e => e.getBoundingClientRect().bottom")
        axes = plots.nth(3).locator("g.axis").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().bottom)")
        assert axes and max(axes) <= bottom, (axes, bottom)
        legend = plots.nth(5).locator(".legend .traces").count()
        assert 1 <= legend <= 5  # the best five in colour, the rest grey and unlisted
        folder = os.environ.get("RECSYS_SCREENSHOTS")
        if folder and width == 1400:
            page.screenshot(path=str(Path(folder) / "report_page.png"), full_page=False)
        browser.close()
    assert errors == []
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests


@contextlib.contextmanager
def tensorboard(logdir: Path) -> Iterator[tuple[str, list[str]]]:
    """A real TensorBoard on `logdir`: its address and its runs once it lists some."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir",
                               str(logdir), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        runs: list[str] = []
        for _ in range(120):
            try:
                runs = json.loads(urllib.request.urlopen(f"{base}/data/runs", timeout=2).read())
                if runs:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield base, runs
    finally:
        server.terminate()
        server.wait(timeout=30)


def open_time_series(browser: Any, base: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/#timeseries")
    page.wait_for_selector("metrics-card-groups .group-title", timeout=60_000)
    page.wait_for_timeout(3000)  # the charts draw after the group titles
    return page


def test_tensorboard_over_a_study_shows_one_run_per_trial(study_dir: Path) -> None:
    """A real TensorBoard on the study's trials/ (as the sweep prints it): the runs are the
    trial numbers plus the study's baselines, and its first group of charts is the study's
    metric alone; the printed address colours the best trials apart."""
    from playwright.sync_api import sync_playwright

    with tensorboard(study_dir / "trials") as (base, runs), sync_playwright() as p:
        trials = sorted(p.name for p in (study_dir / "trials").iterdir() if p.name.isdigit())
        assert sorted(r for r in runs if r.isdigit()) == trials  # `3`, not `3/tensorboard`
        # besides: the baselines (popularity holds the HParams experiment summary); no `.`
        assert {r for r in runs if not r.isdigit()} <= {f"baselines/{n}" for n in
                                                        ("popularity", "itemknn", "ease")}
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = open_time_series(browser, base)
        folder = os.environ.get("RECSYS_SCREENSHOTS")
        if folder:  # as it opens: the study's metric first
            page.screenshot(path=str(Path(folder) / "tensorboard_study.png"))
        # the first group is `epoch` with one chart, the study's metric (Time Series orders
        # groups and charts by name: the other curves are the group `epoch_other` after it)
        first = page.locator("metrics-card-groups .card-group").first
        assert first.locator(".group-title").inner_text().strip() == "epoch"
        cards = first.locator("card-view").all_inner_texts()
        assert len(cards) == 1 and "/val_top_100" in cards[0], cards
        titles = page.locator("metrics-card-groups .group-title").all_inner_texts()
        assert [t.strip() for t in titles][:2] == ["epoch", "epoch_other"], titles
        # HParams: the trial's state and the study's metric on test are ticked (shown) as it
        # opens; its checkboxes live in shadow roots
        page.goto(f"{base}/#hparams")
        page.wait_for_timeout(5000)
        ticked = page.evaluate("""() => { const out = {}; const walk = root => {
            for (const e of root.querySelectorAll('*')) {
              if (e.shadowRoot) walk(e.shadowRoot);
              if (e.tagName === 'PAPER-CHECKBOX') out[e.innerText.trim()] = e.checked; } };
            walk(document); return out; }""")
        assert ticked.get("State") is True and ticked.get("test_top_100") is True, ticked
        browser.close()

    # The address the sweep prints: the best six trials and the strongest baseline a colour
    # each (the dashboard's "colour by regex", carried in the address), every other run grey.
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{study_dir / 'study.db'}")
    with tensorboard(study_dir / "trials") as (base, runs), sync_playwright() as p:
        port = int(base.rsplit(":", 1)[1])
        address = best_runs_url(study, "val_top_100", port)
        assert address is not None and address.startswith(f"http://localhost:{port}/")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # tall enough for every run's row in the run table (rows below the fold are not drawn)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(address)
        page.wait_for_selector("metrics-card-groups .group-title", timeout=60_000)
        page.wait_for_timeout(3000)
        colours = dict(page.locator("tb-data-table-content-row").evaluate_all(
            "rows => rows.filter(r => r.querySelector('.run-color-swatch')).map(r => "
            "[r.innerText.trim(), getComputedStyle(r.querySelector('.run-color-swatch'))"
            ".backgroundColor])"))
        assert len(colours) == len(runs), (colours, runs)
        best = [str(t.number) for t in ranked(study)[:6]] + ["baselines/popularity"]
        assert len({colours[r] for r in best}) == 7, colours
        others = {c for r, c in colours.items() if r not in best}
        assert len(others) == 1 and not others & {colours[r] for r in best}, colours
        browser.close()
