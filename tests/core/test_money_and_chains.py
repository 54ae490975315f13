"""Exact quotes and the chain/token registry."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from eth_utils import is_checksum_address

from core.chains import ChainConfig, ChainRegistry, ConfigurationError, load_chain_configs
from core.known_tokens import KNOWN_CHAINS
from core.money import base_units_to_usd, usd_to_base_units

ONE = Decimal(1)


@pytest.mark.parametrize(
    ("price", "decimals", "expected"),
    [
        ("0.1", 6, 100_000),
        ("0.1", 18, 100_000_000_000_000_000),
        ("19.99", 6, 19_990_000),
        ("19.99", 18, 19_990_000_000_000_000_000),
        ("0.000001", 6, 1),
        ("0.000001", 18, 1_000_000_000_000),
        ("1000000000", 6, 1_000_000_000_000_000),
        ("1000000000", 18, 10**27),
        ("0.30000000000000004", 6, 300_001),  # rounded up to the token's precision
        ("0.0000001", 6, 1),
        ("0.30000000000000004", 18, 300_000_000_000_000_040),
    ],
)
def test_quotes_are_exact_and_round_up(price: str, decimals: int, expected: int) -> None:
    assert usd_to_base_units(Decimal(price), decimals=decimals, usd_per_token=ONE) == expected


def test_quote_round_trips_to_at_least_the_price() -> None:
    for price in ["0.1", "19.99", "0.000001", "1000000000", "33.333333333"]:
        for decimals in (6, 18):
            units = usd_to_base_units(Decimal(price), decimals=decimals, usd_per_token=ONE)
            assert base_units_to_usd(units, decimals=decimals, usd_per_token=ONE) >= Decimal(price)
            assert base_units_to_usd(units - 1, decimals=decimals, usd_per_token=ONE) < Decimal(
                price
            )


def test_usd_value_of_the_largest_amount_is_exact() -> None:
    n = 2**256 - 1
    value = base_units_to_usd(n, decimals=18, usd_per_token=ONE)
    assert str(value) == f"{n // 10**18}.{n % 10**18:018d}"


def test_non_unit_peg() -> None:
    assert usd_to_base_units(Decimal("10"), decimals=6, usd_per_token=Decimal("0.5")) == 20_000_000


def test_well_known_contracts_are_checksummed() -> None:
    for chain in KNOWN_CHAINS.values():
        for token in chain["tokens"]:
            assert is_checksum_address(token["contract"]), token


def test_well_known_chain_needs_only_rpc_urls() -> None:
    registry = ChainRegistry.from_config([ChainConfig(id=56, rpc_urls=("http://127.0.0.1:1",))])
    chain = registry.get(56)
    assert chain is not None
    assert {t.symbol: t.decimals for t in chain.tokens} == {"USDT": 18, "USDC": 18}
    assert chain.confirmations == 15
    quotes = {
        q.token.symbol: q.amount_base_units for q in registry.quote(Decimal("1.5"), test=False)
    }
    assert quotes == {"USDT": 15 * 10**17, "USDC": 15 * 10**17}


def test_test_keys_see_only_test_chains(tmp_path: Path) -> None:
    file = tmp_path / "chains.toml"
    file.write_text(
        """
[[chains]]
id = 31337
name = "Devnet A"
rpc_urls = ["http://127.0.0.1:8545"]
confirmations = 2
test = true
tokens = [{ symbol = "USDT", contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3", decimals = 6 }]

[[chains]]
id = 1
rpc_urls = ["http://127.0.0.1:1"]
"""
    )
    registry = ChainRegistry.from_config(load_chain_configs(file))
    assert [(t.chain_id, t.symbol) for t in registry.accepted_tokens(test=True)] == [
        (31337, "USDT")
    ]
    assert {(t.chain_id, t.symbol) for t in registry.accepted_tokens(test=False)} == {
        (1, "USDT"),
        (1, "USDC"),
    }


def test_non_pegged_token_is_a_configuration_error() -> None:
    config = ChainConfig(
        id=31337,
        test=True,
        tokens=(
            {
                "symbol": "WETH",
                "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "decimals": 18,
            },
        ),  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigurationError, match="only USD stablecoins"):
        ChainRegistry.from_config([config])


def test_unknown_chain_without_tokens_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="list its tokens"):
        ChainRegistry.from_config([ChainConfig(id=999_999)])


def test_confirmations_and_finality_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either confirmations or finality"):
        ChainConfig(id=1, confirmations=3, finality="finalized")
