"""Configuration: a TOML file and environment variables with one prefix, KODEX_.

Precedence: environment, then the config file, then defaults. The defaults
are the embedded installation `kodex init` creates under KODEX_HOME
(default: $XDG_DATA_HOME/kodex, else ~/.local/share/kodex):

    KODEX_HOME/kodex.toml          the config file (KODEX_CONFIG names another)
    KODEX_HOME/kodex.sqlite3       the SQLite store   (KODEX_DATABASE_URL: PostgreSQL)
    KODEX_HOME/master.key          the master key     (KODEX_MASTER_KEY_FILE)

The config file, all keys optional:

    database_url = "postgresql+psycopg://kodex@db/kodex"
    master_key_file = "/etc/kodex/master.key"
    policy = "/etc/kodex/policies.yaml"
    batch_size = 2000
    [schedule]
    time = "02:00"                 # each library's nightly run, in its own time zone
    libraries = { kntb = "03:30" } # per-library times
    [recordings]
    root = "/var/cctv"             # each library's camera recordings lie under root/<library id> ...
    libraries = { svkpk = "/srv/cameras/plzen" }  # ... or under the folder named for it

A recording's `location` must lie in its library's recordings folder (after resolving `..` and symbolic
links); the nightly purge deletes nothing anywhere else (retention.recordings).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from kodex.errors import ConfigError

__all__ = ["BATCH_SIZE", "RECORDINGS_ROOT", "Recordings", "Schedule", "Settings", "load_settings"]

# Subjects decided and applied per transaction. Larger batches spend less per subject on queries and commits
# (bench/README.md: 500 -> 2,000 cut a full sweep by a sixth); a batch is what a failure redoes one by one,
# what a killed run loses, and what a writer waits for on SQLite.
BATCH_SIZE = 2000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    time: dt.time = dt.time(2, 0)
    libraries: dict[str, dt.time] = {}
    misfire_grace_hours: Annotated[int, Field(ge=1, le=23)] = 6

    def time_for(self, library: str) -> dt.time:
        return self.libraries.get(library, self.time)


# Where camera recordings lie unless the config says otherwise: the folder the bundled samples name
# (samples/readers.jsonl: /var/cctv/svkpk/entrance/…).
RECORDINGS_ROOT = Path("/var/cctv")


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError("write an absolute path")
    return path


Folder = Annotated[Path, AfterValidator(_absolute)]


class Recordings(_Strict):
    """Where each library's camera recordings may lie: the only place a purge deletes files."""

    root: Folder = RECORDINGS_ROOT
    libraries: dict[str, Folder] = {}

    def folder(self, library: str) -> Path:
        """The library's own folder if the config names one, else `root/<library id>` (no library shares one)."""
        return self.libraries.get(library, self.root / library)


class _File(_Strict):
    database_url: str | None = None
    master_key_file: Path | None = None
    policy: Path | None = None
    batch_size: Annotated[int, Field(ge=1, le=100_000)] | None = None
    max_request_mb: Annotated[int, Field(ge=1, le=4096)] | None = None
    web_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    heavy_requests: Annotated[int, Field(ge=1, le=256)] | None = None
    schedule: Schedule = Schedule()
    recordings: Recordings = Recordings()


class Settings(_Strict):
    home: Path
    config_file: Path
    database_url: str
    master_key_file: Path
    policy: Path | None
    batch_size: int
    max_request_mb: int = 16  # the largest HTTP request body the service takes (an import is sent in parts)
    web_threads: int = 4  # requests one service process works on at once (the rest wait their turn, in order)
    heavy_requests: int = 2  # of those, CPU-heavy ones at once (api/heavy.py): the rest keep threads to answer
    schedule: Schedule
    recordings: Recordings

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")


def default_home(env: Mapping[str, str]) -> Path:
    if env.get("KODEX_HOME"):
        return Path(env["KODEX_HOME"]).expanduser()
    data = Path(env["XDG_DATA_HOME"]).expanduser() if env.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return data / "kodex"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    home = default_home(env)
    config_file = Path(env["KODEX_CONFIG"]).expanduser() if env.get("KODEX_CONFIG") else home / "kodex.toml"
    file = _read(config_file) if config_file.exists() else _File()
    if env.get("KODEX_CONFIG") and not config_file.exists():
        raise ConfigError(f"KODEX_CONFIG names {config_file}, which does not exist")
    schedule = file.schedule
    if env.get("KODEX_SCHEDULE_TIME"):
        try:
            schedule = Schedule(**{**schedule.model_dump(), "time": env["KODEX_SCHEDULE_TIME"]})
        except ValidationError:
            raise ConfigError("KODEX_SCHEDULE_TIME: write a local time such as 02:00") from None
    recordings = file.recordings
    if env.get("KODEX_RECORDINGS_ROOT"):
        try:
            recordings = Recordings(**{**recordings.model_dump(), "root": env["KODEX_RECORDINGS_ROOT"]})
        except ValidationError:
            raise ConfigError("KODEX_RECORDINGS_ROOT: write the absolute path of the recordings folder") from None
    batch = file.batch_size or BATCH_SIZE
    if env.get("KODEX_BATCH_SIZE"):
        try:
            batch = int(env["KODEX_BATCH_SIZE"])
            if batch < 1:
                raise ValueError
        except ValueError:
            raise ConfigError("KODEX_BATCH_SIZE: write a whole number of subjects, 1 or more") from None
    database_url = env.get("KODEX_DATABASE_URL") or file.database_url or f"sqlite:///{home / 'kodex.sqlite3'}"
    key_file = env.get("KODEX_MASTER_KEY_FILE")
    policy = env.get("KODEX_POLICY")
    return Settings(
        home=home,
        config_file=config_file,
        database_url=database_url,
        master_key_file=Path(key_file).expanduser() if key_file else (file.master_key_file or home / "master.key"),
        policy=Path(policy) if policy else file.policy,
        batch_size=batch,
        max_request_mb=file.max_request_mb or 16,
        web_threads=file.web_threads or 4,
        heavy_requests=file.heavy_requests or 2,
        schedule=schedule,
        recordings=recordings,
    )


def _read(path: Path) -> _File:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    try:
        return _File.model_validate(data)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_input=False, include_url=False):
            key = ".".join(str(p) for p in detail["loc"])
            message = "unknown key" if detail["type"] == "extra_forbidden" else detail["msg"]
            problems.append(f"{path}: {key}: {message}")
        raise ConfigError("\n".join(problems)) from None
