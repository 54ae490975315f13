"""One Settings object for the whole process: env prefix CHAINPAY_, optional chainpay.toml."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.chains import ChainConfig, ChainRegistry, load_chain_configs

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./chainpay.db"


class Settings(BaseSettings):
    """Process configuration. Environment beats chainpay.toml beats defaults."""

    model_config = SettingsConfigDict(
        env_prefix="CHAINPAY_",
        toml_file="chainpay.toml",
        extra="ignore",
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
    auto_migrate: bool | None = Field(
        default=None,
        description="Run migrations when `chainpay serve` starts; default: on for SQLite, off for PostgreSQL",
    )

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def chain_configs(self) -> list[ChainConfig]:
        """Chains from the settings plus those of `chains_file` (the file's win on the same id)."""
        configs = {c.id: c for c in self.chains}
        if self.chains_file is not None:
            for config in load_chain_configs(self.chains_file):
                configs[config.id] = config
        return list(configs.values())

    def chain_registry(
        self, decimals: Mapping[tuple[int, str], int] | None = None
    ) -> ChainRegistry:
        return ChainRegistry.from_config(self.chain_configs(), decimals)

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
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
