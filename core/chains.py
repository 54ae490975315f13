"""The chain and token registry: which (chain, token) pairs a session accepts, and at what price.

Configured in TOML (`[[chains]]` in chainpay.toml or the file named by CHAINPAY_CHAINS_FILE).
For well-known chains the tokens come from `core.known_tokens`, so `id` and `rpc_urls` suffice.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import AppError
from core.known_tokens import KNOWN_CHAINS, USD_STABLECOINS
from core.money import usd_to_base_units


class ConfigurationError(AppError):
    status_code = 500
    code = "configuration_error"


class TokenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=20)
    contract: str
    decimals: int | None = Field(default=None, ge=0, le=36)
    usd_peg: Decimal | None = Field(default=None, gt=0)

    @field_validator("contract")
    @classmethod
    def _checksum(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError(f"not an EVM address: {value}")
        return str(to_checksum_address(value))

    @field_validator("usd_peg", mode="before")
    @classmethod
    def _no_float_peg(cls, value: Any) -> Any:
        # TOML floats would put a binary fraction in a price; pegs are written as strings.
        if isinstance(value, float):
            return Decimal(repr(value))
        return value


class ChainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(gt=0)
    name: str | None = None
    rpc_urls: tuple[str, ...] = ()
    ws_url: str | None = None
    confirmations: int | None = Field(default=None, ge=0, le=10_000)
    finality: Literal["finalized", "safe"] | None = None
    test: bool = False
    tokens: tuple[TokenConfig, ...] | None = None

    @field_validator("ws_url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        # Optional: only a wake-up signal (newHeads) for the watcher, which polls over HTTP.
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url must start with ws:// or wss://: {value}")
        return value

    @model_validator(mode="after")
    def _one_finality_policy(self) -> ChainConfig:
        if self.confirmations is not None and self.finality is not None:
            raise ValueError(f"chain {self.id}: give either confirmations or finality, not both")
        return self


@dataclass(frozen=True, slots=True)
class Token:
    chain_id: int
    symbol: str
    contract: str
    decimals: int
    usd_peg: Decimal


@dataclass(frozen=True, slots=True)
class Chain:
    id: int
    name: str
    rpc_urls: tuple[str, ...]
    ws_url: str | None
    confirmations: int | None
    finality: str | None
    test: bool
    tokens: tuple[Token, ...]

    def token(self, symbol_or_contract: str) -> Token | None:
        wanted = symbol_or_contract.lower()
        for token in self.tokens:
            if token.symbol.lower() == wanted or token.contract.lower() == wanted:
                return token
        return None


@dataclass(frozen=True, slots=True)
class Quote:
    token: Token
    amount_base_units: int


class ChainRegistry:
    """Resolved chains (well-known data filled in, pegs and decimals checked)."""

    def __init__(self, chains: list[Chain]) -> None:
        ids = [c.id for c in chains]
        if len(ids) != len(set(ids)):
            raise ConfigurationError("a chain id is configured twice")
        self.chains = {c.id: c for c in chains}

    @classmethod
    def from_config(
        cls, configs: list[ChainConfig], decimals: Mapping[tuple[int, str], int] | None = None
    ) -> ChainRegistry:
        """`decimals` fills in tokens configured without them ((chain id, lower contract) -> n),
        as read from the contracts at start-up."""
        return cls([_resolve(config, decimals or {}) for config in configs])

    def get(self, chain_id: int) -> Chain | None:
        return self.chains.get(chain_id)

    def accepted_tokens(self, *, test: bool) -> list[Token]:
        """Every (chain, token) a session in this mode accepts: test keys only test networks."""
        return [t for c in self.chains.values() if c.test == test for t in c.tokens]

    def quote(self, price_usd: Decimal, *, test: bool) -> list[Quote]:
        return [
            Quote(t, usd_to_base_units(price_usd, decimals=t.decimals, usd_per_token=t.usd_peg))
            for t in self.accepted_tokens(test=test)
        ]


def _resolve(config: ChainConfig, read_decimals: Mapping[tuple[int, str], int]) -> Chain:
    known = KNOWN_CHAINS.get(config.id)
    if config.tokens is not None:
        token_configs = list(config.tokens)
    elif known is not None:
        token_configs = [TokenConfig(**t) for t in known["tokens"]]
    else:
        raise ConfigurationError(f"chain {config.id} is not a well-known chain: list its tokens")
    confirmations: int | None = config.confirmations
    finality: str | None = config.finality
    if confirmations is None and finality is None:
        if known is not None:
            confirmations, finality = known["confirmations"], known["finality"]
        else:
            confirmations = 12
    tokens = []
    for token in token_configs:
        peg = token.usd_peg
        if peg is None:
            if token.symbol.upper() not in USD_STABLECOINS:
                raise ConfigurationError(
                    f"chain {config.id} token {token.symbol}: only USD stablecoins are supported; "
                    "set usd_peg for a token pegged to the dollar"
                )
            peg = Decimal(1)
        decimals = token.decimals
        if decimals is None:
            decimals = read_decimals.get((config.id, token.contract.lower()))
        if decimals is None:
            known_decimals = [
                t["decimals"]
                for t in (known["tokens"] if known else [])
                if t["contract"].lower() == token.contract.lower()
            ]
            if not known_decimals:
                raise ConfigurationError(
                    f"chain {config.id} token {token.symbol}: decimals unknown; set them or let "
                    "`chainpay` read them from the contract at start-up"
                )
            decimals = known_decimals[0]
        tokens.append(Token(config.id, token.symbol, token.contract, decimals, peg))
    symbols = [t.symbol.lower() for t in tokens]
    if len(symbols) != len(set(symbols)):
        raise ConfigurationError(f"chain {config.id}: a token symbol is configured twice")
    return Chain(
        id=config.id,
        name=config.name or (known["name"] if known else f"Chain {config.id}"),
        rpc_urls=config.rpc_urls,
        ws_url=config.ws_url,
        confirmations=confirmations,
        finality=finality,
        test=config.test,
        tokens=tuple(tokens),
    )


def load_chain_configs(path: Path) -> list[ChainConfig]:
    """`[[chains]]` tables from a TOML file."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    return [ChainConfig.model_validate(item) for item in data.get("chains", [])]


def tokens_without_decimals(configs: list[ChainConfig]) -> list[tuple[ChainConfig, TokenConfig]]:
    """Configured tokens whose decimals must be read from the contract (not given, not well-known)."""
    missing = []
    for config in configs:
        known = KNOWN_CHAINS.get(config.id)
        known_contracts = {t["contract"].lower() for t in known["tokens"]} if known else set()
        for token in config.tokens or ():
            if token.decimals is None and token.contract.lower() not in known_contracts:
                missing.append((config, token))
    return missing
