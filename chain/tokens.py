"""ERC-20 facts read from the chain: decimals() for tokens configured without them."""

from __future__ import annotations

from chain.rpc import RpcPool

DECIMALS_SELECTOR = "0x313ce567"


async def read_decimals(rpc_urls: list[str], contract: str) -> int:
    """The token's decimals(); raises ValueError when the answer is not a sane uint8."""
    pool = RpcPool(rpc_urls, attempts=3)
    try:
        answer = await pool.eth_call(contract, DECIMALS_SELECTOR)
    finally:
        await pool.aclose()
    if not answer or answer == "0x":
        raise ValueError(f"{contract} has no decimals() (is it an ERC-20 on this chain?)")
    value = int(answer, 16)
    if value > 36:
        raise ValueError(f"{contract} reports {value} decimals")
    return value
