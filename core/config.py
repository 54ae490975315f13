"""One Settings object for the whole process: env prefix CHAINPAY_, optional chainpay.toml."""

from __future__ import annotations

import difflib
import os
import tomllib
import types
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.chains import (
    ChainConfig,
    ChainRegistry,
    ConfigurationError,
    load_chain_configs,
    tokens_without_decimals,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./chainpay.db"
ENV_PREFIX = "CHAINPAY_"
TOML_FILE = Path("chainpay.toml")
# Values never echoed in an error message (they may hold passwords or tokens).
_SECRET_FIELDS = frozenset({"database_url", "secret_key", "telegram_bot_token"})


class Settings(BaseSettings):
    """Process configuration. Environment beats chainpay.toml beats defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        toml_file=TOML_FILE,
        # A misspelt key in chainpay.toml is an error, not a silently used default.
        extra="forbid",
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://...",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Absolute base of every link chainpay hands out",
    )
    host: str = Field(default="127.0.0.1", description="Address the API binds to")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the API binds to")
    log_level: str = Field(default="info", description="debug, info, warning, error")
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per API key per minute; 0 disables the limit"
    )
    idempotency_ttl_hours: int = Field(
        default=24, ge=1, description="How long Idempotency-Key records live"
    )
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest accepted request body"
    )
    chains: list[ChainConfig] = Field(
        default_factory=list, description="[[chains]] tables: chain id, RPC URLs, finality, tokens"
    )
    chains_file: Path | None = Field(
        default=None, description="A TOML file with more [[chains]] (`chainpay devnet` writes one)"
    )
    session_lifetime_minutes: int = Field(
        default=60, ge=1, le=60 * 24 * 30, description="How long a checkout session stays payable"
    )
    underpayment_tolerance_usd: Decimal = Field(
        default=Decimal(0), ge=0, description="A session counts as paid when short by at most this"
    )
    telegram_bot_username: str | None = Field(
        default=None,
        description="The bot's @username (without @) for t.me links; else asked with getMe",
    )
    telegram_bot_token: str | None = Field(
        default=None, description="The bot's token from @BotFather"
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org", description="Bot API server (a local one in tests)"
    )
    watcher_poll_seconds: float = Field(
        default=2.0, gt=0, le=600, description="Pause between idle watcher steps"
    )
    watcher_lease_seconds: int = Field(
        default=15, ge=2, le=3600, description="A dead watcher's chain is taken over after this"
    )
    watcher_start_block: int | None = Field(
        default=None,
        ge=0,
        description="First block for a chain never scanned (default: head minus the lookback)",
    )
    watcher_chunk_blocks: int = Field(
        default=500, ge=1, le=100_000, description="First eth_getLogs range (it adapts)"
    )
    watcher_max_chunk_blocks: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Largest eth_getLogs range"
    )
    watcher_lookback_blocks: int = Field(
        default=1_000, ge=0, description="How far back a first start scans"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) encrypting secrets at rest, comma-separated, the first encrypts "
        "(default: a key generated into secret_key_file)",
    )
    secret_key_file: Path = Field(
        default=Path("chainpay-secret.key"),
        description="Where the generated key lives when secret_key is not set (mode 0600)",
    )
    webhooks_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs on loopback/private networks (development and tests only)",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How long one delivery attempt may take"
    )
    webhook_max_in_flight: int = Field(
        default=64, ge=1, le=10_000, description="Deliveries a sender runs at once"
    )
    webhook_per_endpoint_in_flight: int = Field(
        default=8, ge=1, le=1_000, description="Deliveries to one target at once"
    )
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Pause between idle sender rounds"
    )
    webhook_disable_after_exhausted: int = Field(
        default=5, ge=1, description="Events in a row that use up every retry disable an endpoint"
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        description="Days webhook attempt logs and finished events (with their deliveries) are kept",
    )
    job_checkout_expire_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="How often overdue sessions are expired"
    )
    job_idempotency_purge_seconds: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="How often old Idempotency-Key records go"
    )
    job_webhooks_retention_seconds: float = Field(
        default=86400.0, gt=0, le=7 * 86400, description="How often old webhook records go"
    )
    subscription_renewal_lead_hours: float = Field(
        default=72,
        gt=0,
        le=24 * 365,
        description="How long before a period end a subscription's renewal is asked for "
        "(at most a third of its period)",
    )
    subscription_grace_hours: float = Field(
        default=72,
        ge=0,
        le=24 * 365,
        description="How long a subscription stays past due before it expires (at most a third "
        "of its period; a product may set its own)",
    )
    job_subscriptions_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How often subscriptions' lifecycle steps run"
    )
    job_telegram_retention_seconds: float = Field(
        default=86400.0, gt=0, le=7 * 86400, description="How often the bot's old records go"
    )
    job_lease_seconds: int = Field(
        default=300,
        ge=5,
        le=86400,
        description="A job run's lease: a worker that dies mid-run is replaced after this",
    )
    clock: Literal["system", "database"] = Field(
        default="system",
        description="Where `now` comes from: the machine, or (tests across processes) the "
        "machine plus an offset every process reads from the database",
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="Run migrations when `chainpay serve` starts; default: on for SQLite, off for PostgreSQL",
    )

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("chains")
    @classmethod
    def _chains_have_rpc_urls(cls, chains: list[ChainConfig]) -> list[ChainConfig]:
        for chain in chains:
            _require_rpc_urls(chain)
        return chains

    def chain_configs(self) -> list[ChainConfig]:
        """Chains from the settings plus those of `chains_file` (the file's win on the same id)."""
        return [config for config, _origin in self._chain_configs_with_origin()]

    def check_chains(self) -> None:
        """Raise ConfigurationError now for chain settings that cannot work, before anything is
        written (tokens whose decimals start-up will read from the contract pass here)."""
        to_read = {
            (config.id, token.contract.lower()): 0
            for config, token in tokens_without_decimals(self.chain_configs())
        }
        self.chain_registry(to_read)

    def chain_registry(
        self, decimals: Mapping[tuple[int, str], int] | None = None
    ) -> ChainRegistry:
        configs = self._chain_configs_with_origin()
        try:
            return ChainRegistry.from_config([config for config, _ in configs], decimals)
        except ConfigurationError as exc:
            # Say which file (or variable) holds the chain at fault.
            for config, origin in configs:
                try:
                    ChainRegistry.from_config([config], decimals)
                except ConfigurationError as one:
                    raise ConfigurationError(f"{origin}: {one.message}") from exc
            raise

    def _chain_configs_with_origin(self) -> list[tuple[ChainConfig, str]]:
        configs = {c.id: (c, setting_origin("chains")) for c in self.chains}
        if self.chains_file is not None:
            for config in _read_chains_file(self.chains_file):
                configs[config.id] = (config, str(self.chains_file))
        return list(configs.values())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFile(settings_cls))


class _TomlFile(TomlConfigSettingsSource):
    """chainpay.toml; a syntax error names the file, line and column."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            return super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(
                f"{Path(str(file_path)).resolve()}: not valid TOML: {exc}"
            ) from exc


def _require_rpc_urls(chain: ChainConfig) -> None:
    if not chain.rpc_urls:
        raise ValueError(
            f'chain {chain.id} has no rpc_urls: add rpc_urls = ["https://..."] '
            "(the nodes chainpay watches the chain through)"
        )


def _read_chains_file(path: Path) -> list[ChainConfig]:
    try:
        configs = load_chain_configs(path)
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"{path}: no such file (named by {setting_origin('chains_file')})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise ConfigurationError(
            "\n".join(_describe(error, str(path), ("chains",)) for error in exc.errors())
        ) from exc
    for config in configs:
        try:
            _require_rpc_urls(config)
        except ValueError as exc:
            raise ConfigurationError(f"{path}: {exc}") from exc
    return configs


def load_settings() -> Settings:
    """Settings from the environment and chainpay.toml, or a ConfigurationError whose lines
    name the variable or file, the key, what is wrong and, for a misspelt key, the fix."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        if len(lines) > 5:
            lines = [*lines[:5], f"... and {len(lines) - 5} more"]
        raise ConfigurationError("\n".join(lines)) from exc


def setting_origin(field: str) -> str:
    """Where a top-level setting comes from: its environment variable, else chainpay.toml."""
    name = f"{ENV_PREFIX}{field.upper()}"
    if name in (key.upper() for key in os.environ):
        return name
    return str(TOML_FILE.resolve()) if TOML_FILE.exists() else name


def unknown_environment_variables() -> list[str]:
    """Warnings for CHAINPAY_* variables that are no setting (the test suite's CHAINPAY_TEST_*
    are not settings either and are left alone)."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    warnings = []
    for key in sorted(os.environ):
        name = key.upper()
        if (
            name.startswith(ENV_PREFIX)
            and name not in known
            and not name.startswith("CHAINPAY_TEST_")
        ):
            warnings.append(f"{key} is not a chainpay setting{_did_you_mean(name, known)}; ignored")
    return warnings


def _describe(error: ErrorDetails, origin: str | None = None, parent: tuple[str, ...] = ()) -> str:
    """One line: where (variable or file), which key, what is wrong (and the fix when known)."""
    loc = (*parent, *error["loc"])
    field = str(loc[0]) if loc else ""
    if error["type"] == "extra_forbidden":
        # Only a file can hold a key no setting has (an unknown variable is not read at all).
        where = origin or str(TOML_FILE.resolve())
        model = _model_at(loc[:-1])
        known = set(model.model_fields) if model is not None else set()
        inside = f" in {_where(loc[:-1])}" if len(loc) > 1 else ""
        return f"{where}: unknown key `{loc[-1]}`{inside}{_did_you_mean(str(loc[-1]), known)}"
    where = origin or setting_origin(field)
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    got = ""
    if (
        error["type"] not in ("value_error", "missing")
        and field not in _SECRET_FIELDS
        and isinstance(value, str | int | float | bool)
    ):
        got = f" (got {str(value)[:60]!r})"
    if where.startswith(ENV_PREFIX) and len(loc) == 1:
        return f"{where}: {message}{got}"
    return f"{where}: {_where(loc)}: {message}{got}"


def _where(loc: Sequence[int | str], parent: tuple[str, ...] = ()) -> str:
    """('chains', 0, 'tokens', 1, 'contract') -> 'chains #1, tokens #2, contract'."""
    parts: list[str] = []
    for part in (*parent, *loc):
        if isinstance(part, int) and parts:
            parts[-1] += f" #{part + 1}"
        else:
            parts.append(str(part))
    return ", ".join(parts)


def _model_at(path: Sequence[int | str]) -> type[BaseModel] | None:
    """The model that holds the keys at `path` below Settings (for 'did you mean')."""
    model: type[BaseModel] | None = Settings
    for part in path:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, tuple, Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _did_you_mean(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
