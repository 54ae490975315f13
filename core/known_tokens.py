"""Well-known stablecoin contracts, so a merchant only supplies RPC URLs for these chains.

Every address is EIP-55 checksummed (a test re-checks them). Decimals are the contracts' own:
6 everywhere except Binance Smart Chain, where USDT and USDC use 18.
"""

from __future__ import annotations

from typing import Final, TypedDict


class KnownToken(TypedDict):
    symbol: str
    contract: str
    decimals: int


class KnownChain(TypedDict):
    name: str
    confirmations: int | None
    finality: str | None
    tokens: list[KnownToken]


KNOWN_CHAINS: Final[dict[int, KnownChain]] = {
    1: {
        "name": "Ethereum",
        "confirmations": None,
        "finality": "finalized",
        "tokens": [
            {
                "symbol": "USDT",
                "contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
                "decimals": 6,
            },
            {
                "symbol": "USDC",
                "contract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
                "decimals": 6,
            },
        ],
    },
    137: {
        "name": "Polygon",
        "confirmations": None,
        "finality": "finalized",
        "tokens": [
            {
                "symbol": "USDT",
                "contract": "0xc2132D05D31c914a87C6611C10748AEb04B58e8F",
                "decimals": 6,
            },
            {
                "symbol": "USDC",
                "contract": "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
                "decimals": 6,
            },
        ],
    },
    56: {
        "name": "BNB Smart Chain",
        "confirmations": 15,
        "finality": None,
        "tokens": [
            {
                "symbol": "USDT",
                "contract": "0x55d398326f99059fF775485246999027B3197955",
                "decimals": 18,
            },
            {
                "symbol": "USDC",
                "contract": "0x8AC76a51cc950d9822D68b83fE1Ad97B32Cd580d",
                "decimals": 18,
            },
        ],
    },
    42161: {
        "name": "Arbitrum One",
        "confirmations": None,
        "finality": "finalized",
        "tokens": [
            {
                "symbol": "USDT",
                "contract": "0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9",
                "decimals": 6,
            },
            {
                "symbol": "USDC",
                "contract": "0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
                "decimals": 6,
            },
        ],
    },
    8453: {
        "name": "Base",
        "confirmations": None,
        "finality": "finalized",
        "tokens": [
            {
                "symbol": "USDT",
                "contract": "0xfde4C96c8593536E31F229EA8f37b2ADa2699bb2",
                "decimals": 6,
            },
            {
                "symbol": "USDC",
                "contract": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
                "decimals": 6,
            },
        ],
    },
    10: {
        "name": "OP Mainnet",
        "confirmations": None,
        "finality": "finalized",
        "tokens": [
            {
                "symbol": "USDT",
                "contract": "0x94b008aA00579c1307B0EF2c499aD98a8ce58e58",
                "decimals": 6,
            },
            {
                "symbol": "USDC",
                "contract": "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85",
                "decimals": 6,
            },
        ],
    },
}

# Symbols pegged 1:1 to USD when the configuration gives no peg of its own.
USD_STABLECOINS: Final[frozenset[str]] = frozenset(
    {"USDT", "USDC", "DAI", "USDT0", "USDC.E", "TUSD"}
)
