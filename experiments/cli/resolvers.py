"""The OmegaConf resolvers conf/ uses, registered once before anything is composed."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

_DATA_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".csv", ".tsv", ".dat", ".txt")


def study_name_for(data_name: str, path: str | None, base: str = "default") -> str:
    """The study name a sweep takes when none is given: `base` on the embedded data, else
    `base-<data option>-<folder>-<file>`.

    Why derived: a study's identity (its data and fixed settings) is checked on resume, so a
    fixed default name would refuse the first study on a user's own file. Two files get two
    studies (and two folders) without the user naming either; a name the user gives is used
    as given, and checked as strictly as ever.
    """
    if path is None:
        return base
    file = Path(str(path)).expanduser().absolute()
    stem = file.name
    while stem.lower().endswith(_DATA_SUFFIXES) and "." in stem:
        stem = stem.rsplit(".", 1)[0]
    parts = [base, data_name, file.parent.name, stem]
    name = "-".join(re.sub(r"[^A-Za-z0-9._-]+", "_", p).strip("._-") for p in parts if p)
    return name[:200]


def config_groups(conf_dir: Path) -> str:
    """`group: option, option` per group a user picks from in conf/ (the help page's list):
    Hydra's own $APP_CONFIG_GROUPS also listed the internal `schema` groups."""
    lines = []
    for group in sorted(p for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if options:
            lines.append(f"{group.name}: {', '.join(options)}")
    return "\n".join(lines)


def register(conf_dir: Path) -> None:
    """Idempotent: Hydra's compose API and `hydra.main` both read the same registry."""
    if not OmegaConf.has_resolver("study_name_for"):
        OmegaConf.register_new_resolver("study_name_for", study_name_for)
    if not OmegaConf.has_resolver("config_groups"):
        OmegaConf.register_new_resolver("config_groups", lambda: config_groups(conf_dir))
