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

    [connectors.kntb]              # a library whose system kodex carries instructions out in itself
    type = "koha"                  # koha or folio (services.connectors); see README "Connecting the library system"
    url = "https://koha.example.cz"
    client_id = "kodex"
    client_secret = "…"            # never logged nor printed

A recording's `location` must lie in its library's recordings folder (after resolving `..` and symbolic
links); the nightly purge deletes nothing anywhere else (retention.recordings).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kodex.errors import ConfigError

__all__ = [
    "BATCH_SIZE",
    "RECORDINGS_ROOT",
    "ConnectorConfig",
    "FolioConnector",
    "KohaConnector",
    "Recordings",
    "Schedule",
    "Settings",
    "load_settings",
]

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


def _web_address(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError("write the system's address, starting with https:// (or http:// on a private network)")
    return url.rstrip("/")


WebAddress = Annotated[str, AfterValidator(_web_address)]


class FolioConnector(_Strict):
    """A FOLIO tenant, reached through Okapi with a user's login (services.connectors.folio)."""

    type: Literal["folio"]
    url: WebAddress  # Okapi's address
    tenant: Annotated[str, Field(min_length=1, max_length=100)]
    username: Annotated[str, Field(min_length=1, max_length=200)]
    password: SecretStr
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class KohaConnector(_Strict):
    """A Koha instance, reached through its REST API with OAuth2 client credentials (services.connectors.koha)."""

    type: Literal["koha"]
    url: WebAddress  # the staff interface's address; the API is under /api/v1
    client_id: Annotated[str, Field(min_length=1, max_length=200)]
    client_secret: SecretStr
    # Koha cannot anonymise a patron in place over its API: with this, `anonymise` deletes the patron (the library's
    # policy must allow erasure, and its deletedborrowers cleanup must run); without it, anonymise is left to the
    # work list
    delete_on_anonymise: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


ConnectorConfig = Annotated[FolioConnector | KohaConnector, Field(discriminator="type")]


# The environment's variables (README "Configuration"): each sets one key of the config file, and says what to
# write when its value is wrong. No other KODEX_… variable is read: a key without a variable is set in the file.
_VARIABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "KODEX_DATABASE_URL": (("database_url",), "write a database URL"),
    "KODEX_MASTER_KEY_FILE": (("master_key_file",), "write the path of the master key file"),
    "KODEX_POLICY": (("policy",), "write the path of the policy file"),
    "KODEX_BATCH_SIZE": (("batch_size",), "write a whole number of subjects, 1 or more (at most 100000)"),
    "KODEX_SCHEDULE_TIME": (("schedule", "time"), "write a local time such as 02:00"),
    "KODEX_RECORDINGS_ROOT": (("recordings", "root"), "write the absolute path of the recordings folder"),
}
_FROM_ENVIRONMENT_ONLY = ("home", "config_file")  # where the config file is cannot be said inside it


class Settings(BaseSettings):
    """The installation's settings: the environment (KODEX_…), then the config file, then the defaults."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    home: Path
    config_file: Path
    database_url: str  # default: the SQLite file in the kodex home
    master_key_file: Path  # default: master.key in the kodex home
    policy: Path | None = None  # None: the bundled policies.yaml (services.policy_source)
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = BATCH_SIZE
    max_request_mb: Annotated[int, Field(ge=1, le=4096)] = 16  # the largest HTTP request body the service takes
    web_threads: Annotated[int, Field(ge=1, le=256)] = 4  # requests one service process works on at once
    heavy_requests: Annotated[int, Field(ge=1, le=256)] = 2  # of those, CPU-heavy ones at once (api/heavy.py)
    schedule: Schedule = Schedule()
    recordings: Recordings = Recordings()
    connectors: dict[str, ConnectorConfig] = {}  # library id -> its library system's API (none: the work list)
    # whether a library's admin may point its webhook (PUT …/webhook) at http:// or a private, loopback or reserved
    # address; the server's command line (kodex webhooks set) always may
    webhook_private_networks: bool = False

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @model_validator(mode="before")
    @classmethod
    def _in_the_home(cls, data: Any) -> Any:
        """The store and the master key lie in the kodex home unless the environment or the file says otherwise."""
        if isinstance(data, dict):
            home = Path(data["home"])
            data = {
                **data,
                "database_url": data.get("database_url") or f"sqlite:///{home / 'kodex.sqlite3'}",
                "master_key_file": data.get("master_key_file") or home / "master.key",
            }
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The precedence, highest first: the kodex home found, the environment, the config file. No .env file."""
        config_file = Path(init_settings()["config_file"])
        return init_settings, _Environment(settings_cls, _environment.get()), _config(settings_cls, config_file)


def default_home(env: Mapping[str, str]) -> Path:
    if env.get("KODEX_HOME"):
        return Path(env["KODEX_HOME"]).expanduser()
    data = Path(env["XDG_DATA_HOME"]).expanduser() if env.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return data / "kodex"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from `env` (default: this process's environment) and the config file it leads to."""
    env = os.environ if env is None else env
    home = default_home(env)
    config_file = Path(env["KODEX_CONFIG"]).expanduser() if env.get("KODEX_CONFIG") else home / "kodex.toml"
    if env.get("KODEX_CONFIG") and not config_file.exists():
        raise ConfigError(f"KODEX_CONFIG names {config_file}, which does not exist")
    try:
        with _reading(env):
            return Settings(home=home, config_file=config_file)
    except ValidationError as error:
        raise ConfigError("\n".join(_problems(error, env, config_file))) from None


_environment: ContextVar[Mapping[str, str]] = ContextVar("kodex_environment")


@contextmanager
def _reading(env: Mapping[str, str]) -> Iterator[None]:
    token = _environment.set(env)
    try:
        yield
    finally:
        _environment.reset(token)


class _Environment(EnvSettingsSource):
    """The variables of _VARIABLES set (non-empty) in `env`; KODEX_SCHEDULE_TIME sets [schedule] time, and so on."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls, env_prefix="KODEX_", env_nested_delimiter="_", env_nested_max_split=1)
        self.env_vars = {name.lower(): _expanded(name, env[name]) for name in _VARIABLES if env.get(name)}


def _expanded(name: str, value: str) -> str:
    return str(Path(value).expanduser()) if name == "KODEX_MASTER_KEY_FILE" else value


def _config(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    """The config file's keys (none when there is no file); a file that cannot be read or parsed names itself."""
    try:
        source = TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    misplaced = [key for key in _FROM_ENVIRONMENT_ONLY if key in source.toml_data]
    if misplaced:
        raise ConfigError("\n".join(f"{path}: {key}: unknown key" for key in misplaced))
    return source


def _problems(error: ValidationError, env: Mapping[str, str], path: Path) -> Iterator[str]:
    """Each problem named by the variable that set the value, else by the config file and its key."""
    for detail in error.errors(include_input=False, include_url=False):
        loc = tuple(str(part) for part in detail["loc"])
        variable = next(
            (name for name, (key, _) in _VARIABLES.items() if env.get(name) and loc[: len(key)] == key), None
        )
        if variable is not None:
            yield f"{variable}: {_VARIABLES[variable][1]}"
        else:
            message = "unknown key" if detail["type"] == "extra_forbidden" else detail["msg"]
            yield f"{path}: {'.'.join(loc)}: {message}"
