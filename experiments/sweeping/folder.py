"""A study folder's layout and owner, stated once: every reader and writer of a study's files
asks `StudyFolder` for their paths, and the sweep and the report both pass `claim_folder`
before they write into one.

    <search.dir>/
      study.db        the default SQLite storage (search.storage may point elsewhere)
      .study-name     which study (name, masked storage, token) the folder belongs to
      .claim.lock     serializes claiming trials among local workers
      trials/<n>/     one trial's run: config.yaml, metrics.json, TensorBoard events, vectors
      trials/baselines/  the study's baseline curves and its TensorBoard experiment summary
      best/           the best trial's config, params, metrics and servable model
      report/         index.html, summary.md, trials.csv and the plots
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from experiments.cli.secrets import mask_secrets
from recsys.errors import UserError
from recsys.files import CONFIG_FILE, METRICS_FILE, write_text_atomic


@dataclass(frozen=True)
class BestFolder:
    """best/: the exported trial's files."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def params(self) -> Path:
        return self.root / "params.json"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def model(self) -> Path:
        return self.root / "model"


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

    def say_once(self, what: str) -> bool:
        """True for the first of the study's processes to ask (a file created exclusively):
        several workers that meet the same outage print one line, not one each."""
        try:
            os.close(os.open(self.root / f".said-{what}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        except OSError:  # an unwritable folder: rather a line too many than none
            return True
        return True

    def forget_said(self, what: str) -> None:
        with contextlib.suppress(OSError):
            (self.root / f".said-{what}").unlink()

    def leftovers(self) -> list[Path]:
        return [p for pattern in LEFTOVER_PATTERNS for p in self.root.glob(pattern)]


def ensure_writable(folder: Path, key: str) -> None:
    """Fail now, naming the folder, rather than after the first trial."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{key}={str(folder)!r} is not a writable folder ({exc.strerror}); "
                        f"set {key} to one") from None


TOKEN_ATTR = "folder_token"  # the study's own copy of the token (a study user attribute)


@dataclass(frozen=True)
class FolderOwner:
    """The one study a study folder belongs to, recorded when the study first writes there:
    its name, its storage (password masked) and a token the study keeps too, so that a study
    of the same name in another storage, or one created afresh after study.db was deleted,
    is told apart. A folder from before the record holds only the name (or nothing)."""

    name: str
    storage: str = ""
    token: str = ""

    @classmethod
    def read(cls, folder: Path) -> FolderOwner | None:
        mark = StudyFolder(folder).mark
        if not mark.is_file():
            return None
        try:
            text = mark.read_text().strip()
        except (OSError, UnicodeDecodeError):  # damaged: known by its study.db, then rewritten
            return None
        with contextlib.suppress(ValueError, TypeError):
            fields = json.loads(text)
            if isinstance(fields, dict):
                return cls(**{k: str(fields.get(k, "")) for k in ("name", "storage", "token")})
        return cls(name=text)  # a name alone: the old record

    def write(self, folder: Path) -> None:
        with contextlib.suppress(OSError):
            write_text_atomic(StudyFolder(folder).mark, json.dumps(asdict(self)) + "\n")


def check_study_folder(folder: Path, name: str, storage: str) -> None:
    """A study folder holds one study: refuse to write trials/, best/ and report/ over
    another study's (named in `.study-name`; a folder from before the mark is known by the
    studies in its study.db), or over a same-named study's in another storage."""
    owner = FolderOwner.read(folder)
    paths = StudyFolder(folder)
    if owner is None and paths.database.is_file() and paths.trials.is_dir():
        import optuna

        with contextlib.suppress(Exception):  # unreadable: the storage check says so later
            names = [s.study_name for s in optuna.get_all_study_summaries(
                f"sqlite:///{paths.database}")]
            owner = FolderOwner(names[0]) if len(names) == 1 else None
    if owner is not None and owner.name != name:
        raise UserError(f"search.dir={str(folder)!r} holds study {owner.name!r}, not "
                        f"{name!r}: its trials/, best/ and report/ would be overwritten; use "
                        f"another search.dir (the default, outputs/sweeps/{name}, is the "
                        f"study's own) or search.study_name={owner.name}")
    masked = mask_secrets(storage)
    if owner is not None and owner.storage and not same_storage(owner.storage, storage, folder):
        recorded = (f"sqlite:///{paths.database}" if owner.storage == OWN_DATABASE
                    else owner.storage)
        raise UserError(f"search.dir={str(folder)!r} holds study {name!r} of search.storage="
                        f"{recorded!r}, not of {masked!r}: its trials/, best/ and report/ "
                        "would be overwritten; use another search.dir, or the study's own "
                        "storage to resume it")


def check_study_identity(folder: Path, name: str, stored: dict[str, Any] | None) -> None:
    """The folder's study must be the storage's study of that name: `stored` is the storage's
    study's user attributes (None: the storage has no such study, so one would be created)."""
    owner = FolderOwner.read(folder)
    if owner is None or not owner.token or not has_trials(folder):
        return
    token = (stored or {}).get(TOKEN_ATTR)
    if stored is None or (token and token != owner.token):
        what = ("has no study of that name (was its database deleted or moved?)"
                if stored is None else "holds another study of that name")
        raise UserError(f"search.dir={str(folder)!r} holds the trials of study {name!r}, but "
                        f"search.storage={owner.storage!r} {what}: starting afresh would "
                        "overwrite its trials/, best/ and report/; restore the storage, or "
                        "move the folder away or use another search.dir to start anew")


def mark_study_folder(folder: Path, name: str, storage: str, study: Any) -> None:
    """Record the folder's owner; the study gets the same token if it has none yet."""
    token = study.user_attrs.get(TOKEN_ATTR)
    if not token:
        token = uuid.uuid4().hex
        study.set_user_attr(TOKEN_ATTR, token)
    FolderOwner(name, mask_secrets(storage_record(storage, folder)), token).write(folder)


OWN_DATABASE = "sqlite:///<this folder>/study.db"  # recorded: moves and copies keep it


def storage_record(url: str, folder: Path) -> str:
    """The storage as the folder records it: its own study.db as OWN_DATABASE (the folder
    may be moved or copied with it), another SQLite file by its absolute path (so `./x` and
    `x` are one storage), a server's URL without user and password."""
    from experiments.sweeping.study import sqlite_file

    if url == OWN_DATABASE:
        return url
    database = sqlite_file(url)
    if database is None:  # a server: which one, not as whom (another user, the same study)
        with contextlib.suppress(Exception):
            return make_url(url)._replace(username=None, password=None).render_as_string(False)
        return url
    if database.resolve() == StudyFolder(folder).database.resolve():
        return OWN_DATABASE
    return f"sqlite:///{database.resolve()}"


def same_storage(recorded: str, url: str, folder: Path) -> bool:
    """Whether the folder's recorded storage is `url`'s (SQLite files compared resolved)."""
    return storage_record(recorded, folder) == mask_secrets(storage_record(url, folder))


def claim_folder(folder: Path, search: Any) -> Any:
    """The checks the sweep and the report both pass before they write into a study folder,
    and the storage they open in between (`search`: a SearchConfig): the folder belongs to
    this study of this storage, the storage's study is the one the folder's trials came from,
    and the folder is writable."""
    from experiments.sweeping.study import open_storage, stored_study_attrs

    check_study_folder(folder, search.study_name, search.storage)
    storage = open_storage(search)  # bad URL or refused connection: stop here
    check_study_identity(folder, search.study_name, stored_study_attrs(storage,
                                                                        search.study_name))
    ensure_writable(folder, "search.dir")
    return storage


def has_trials(folder: Path) -> bool:
    trials = StudyFolder(folder).trials
    return trials.is_dir() and any(p.is_dir() for p in trials.iterdir())
