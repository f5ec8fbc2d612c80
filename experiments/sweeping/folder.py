"""A study folder's layout, stated once: every reader and writer of a study's files asks
`StudyFolder` for their paths.

    <search.dir>/
      study.db        the default SQLite storage (search.storage may point elsewhere)
      .study-name     which study (name, masked storage, token) the folder belongs to
      .claim.lock     serializes claiming trials among local workers
      trials/<n>/     one trial's run: config.yaml, metrics.json, TensorBoard events, vectors
      trials/baselines/  the study's baseline curves and its TensorBoard experiment summary
      best/           the best trial's config, params, metrics and servable model
      report/         index.html, summary.md and the plots
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Temporary files a killed writer can leave behind (all written as temp file + rename).
LEFTOVER_PATTERNS = (".best.*", "trials/*/.*.tmp*", "report/.*.tmp*")


@dataclass(frozen=True)
class StudyFolder:
    root: Path

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    def trial(self, number: int | str) -> Path:
        return self.trials / str(number)

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def database(self) -> Path:
        return self.root / "study.db"

    @property
    def mark(self) -> Path:
        return self.root / ".study-name"

    @property
    def claim_lock(self) -> Path:
        return self.root / ".claim.lock"

    def leftovers(self) -> list[Path]:
        return [p for pattern in LEFTOVER_PATTERNS for p in self.root.glob(pattern)]
