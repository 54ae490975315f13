"""The watcher's pure parts, without a chain: log decoding, error classification, range sizing."""

from __future__ import annotations

import asyncio
import gc
import json
import secrets
from typing import Any

import httpx
import pytest
from eth_utils import to_checksum_address

from chain.rpc import RangeTooLarge, RpcError, RpcPool, classify_error
from chain.watcher import (
    TRANSFER_TOPIC,
    ChunkSizer,
    address_topic,
    decode_transfer,
    final_block_of,
    match_transfers,
)
from core.chains import Chain, ChainConfig
from core.payments.ingest import checksum_address

TO = "0x" + "00" * 12 + "70997970c51812dc3a010c7d01b50e0d17dc79c8"
FROM = "0x" + "00" * 12 + "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"


def raw_log(**overrides: object) -> dict[str, object]:
    log: dict[str, object] = {
        "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "topics": [TRANSFER_TOPIC, FROM, TO],
        "data": "0x" + hex(2**256 - 1)[2:].rjust(64, "0"),
        "blockNumber": "0x10",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "logIndex": "0x2",
        "removed": False,
    }
    log.update(overrides)
    return log


def test_decodes_an_erc20_transfer_exactly() -> None:
    decoded = decode_transfer(raw_log())
    assert decoded is not None
    assert decoded.amount == 2**256 - 1
    assert decoded.to_address == "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    assert decoded.from_address == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert (decoded.block_number, decoded.log_index) == (16, 2)


def test_ignores_erc721_removed_and_malformed_logs() -> None:
    assert decode_transfer(raw_log(topics=[TRANSFER_TOPIC, FROM, TO, "0x01"], data="0x")) is None
    assert decode_transfer(raw_log(removed=True)) is None
    assert decode_transfer(raw_log(data="0x1234")) is None
    assert decode_transfer(raw_log(topics=["0x" + "11" * 32, FROM, TO])) is None
    assert decode_transfer(raw_log(blockNumber="zz")) is None


def test_provider_range_errors_become_range_too_large_with_hints() -> None:
    infura = classify_error(
        {
            "code": -32005,
            "message": "query returned more than 10000 results. Try with this block range [0x10, 0x1f].",
        },
        is_get_logs=True,
    )
    assert isinstance(infura, RangeTooLarge)
    assert infura.suggested_to == 0x1F
    alchemy = classify_error(
        {"code": -32602, "message": "Log response size exceeded."}, is_get_logs=True
    )
    assert isinstance(alchemy, RangeTooLarge)
    assert alchemy.suggested_to is None
    other = classify_error({"code": -32000, "message": "header not found"}, is_get_logs=True)
    assert type(other) is RpcError
    assert not isinstance(
        classify_error({"message": "block range"}, is_get_logs=False), RangeTooLarge
    )


def test_chunk_sizer_grows_shrinks_and_remembers_the_ceiling() -> None:
    sizer = ChunkSizer(size=100, maximum=1000)
    sizer.observed(10, 100)
    assert sizer.size == 200
    sizer.refused(50)
    assert sizer.size == 50
    sizer.observed(0, 50)
    assert sizer.size == 50
    sizer.refused()
    assert sizer.size == 25
    sizer.observed(5000, 25)
    assert sizer.size == 25


def chain(confirmations: int | None, finality: str | None) -> Chain:
    return Chain(1, "c", (), None, confirmations, finality, True, ())


def test_final_block_follows_the_policy() -> None:
    assert final_block_of(chain(12, None), 100, None) == 89
    assert final_block_of(chain(1, None), 100, None) == 100
    assert final_block_of(chain(0, None), 100, None) == 100
    assert final_block_of(chain(None, "finalized"), 100, 64) == 64
    assert final_block_of(chain(None, "safe"), 100, None) == -1


def test_endpoint_logs_never_carry_the_providers_key() -> None:
    from chain.rpc import Endpoint

    assert (
        Endpoint("https://mainnet.infura.io/v3/SECRET?token=ALSO").host
        == "https://mainnet.infura.io"
    )
    assert Endpoint("http://127.0.0.1:8545").host == "http://127.0.0.1:8545"


def test_checksum_address_agrees_with_eth_utils_and_refuses_what_is_not_an_address() -> None:
    for _ in range(200):
        address = "0x" + secrets.token_hex(20)
        assert checksum_address(address) == to_checksum_address(address)
        assert checksum_address("0x" + address[2:].upper()) == to_checksum_address(address)
    for bad in ("0x1234", "0x" + "zz" * 20, "0x" + "00" * 21, ""):
        with pytest.raises(ValueError, match="20-byte"):
            checksum_address(bad)


def matcher(*addresses: str) -> Any:
    topics = {address_topic(a) for a in addresses}
    tokens = {"0x5fbdb2315678afecb367f032d93f642f64180aa3"}
    return lambda logs: match_transfers(logs, topics, tokens)


def test_logs_match_on_the_padded_address_topic_in_any_case() -> None:
    match = matcher("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    [(decoded, timestamp)] = match([raw_log(blockTimestamp="0x6553f100")])
    assert decoded.log_index == 2
    assert timestamp == 0x6553F100
    assert len(match([raw_log(topics=[TRANSFER_TOPIC, FROM, TO.upper().replace("0X", "0x")])])) == 1
    # The same 20 bytes under a topic that is not a padded address is not a payment to us.
    dirty = "0x" + "11" * 12 + TO[-40:]
    assert match([raw_log(topics=[TRANSFER_TOPIC, FROM, dirty])]) == []
    assert match([raw_log(data="0x" + "00" * 32)]) == []  # zero value
    assert match([raw_log(address="0x" + "22" * 20)]) == []  # another token's contract


def test_block_time_is_taken_from_the_log_only_when_it_is_a_quantity() -> None:
    match = matcher("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    for missing in ({}, {"blockTimestamp": None}, {"blockTimestamp": "0x"}, {"blockTimestamp": 7}):
        [(_, timestamp)] = match([raw_log(**missing)])
        assert timestamp is None  # the watcher reads the block instead


def logs_pool(handler: Any) -> Any:
    """An RpcPool whose HTTP goes to `handler` (the process boundary) instead of a node."""
    pool = RpcPool(["http://node.invalid"], attempts=2)
    pool._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return pool


def test_scan_logs_keeps_only_what_is_selected_and_counts_the_rest() -> None:
    logs = [raw_log(logIndex=hex(i)) for i in range(5)]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "result": logs})

    async def run() -> tuple[int, list[int]]:
        pool = logs_pool(answer)
        try:
            counted: tuple[int, list[int]] = await pool.scan_logs(
                1, 9, [], TRANSFER_TOPIC, lambda raws: [int(r["logIndex"], 16) for r in raws][:2]
            )
            return counted
        finally:
            await pool.aclose()

    assert asyncio.run(run()) == (5, [0, 1])
    assert gc.isenabled()
    assert json.loads(json.dumps(logs)) == logs  # untouched


def test_a_failing_select_is_raised_at_once_not_blamed_on_the_node() -> None:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "result": [raw_log()]})

    def broken(raws: list[dict[str, Any]]) -> list[int]:
        raise ValueError("a bug in the caller")

    async def run() -> None:
        pool = logs_pool(answer)
        try:
            await pool.scan_logs(1, 9, [], TRANSFER_TOPIC, broken)
        finally:
            await pool.aclose()

    with pytest.raises(ValueError, match="a bug in the caller"):
        asyncio.run(run())
    assert len(calls) == 1  # no failover, no retry
    assert gc.isenabled()


def test_scan_logs_still_turns_range_refusals_into_range_too_large() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        error = {"code": -32005, "message": "query returned more than 10000 results"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "error": error})

    async def run() -> None:
        pool = logs_pool(answer)
        try:
            await pool.scan_logs(1, 9, [], TRANSFER_TOPIC, lambda raws: raws)
        finally:
            await pool.aclose()

    with pytest.raises(RangeTooLarge):
        asyncio.run(run())


def test_a_chains_websocket_url_must_be_one() -> None:
    assert ChainConfig(id=1, ws_url="wss://node.example/ws").ws_url == "wss://node.example/ws"
    with pytest.raises(ValueError, match="ws://"):
        ChainConfig(id=1, ws_url="https://node.example")


def test_chunk_sizer_reads_dense_ranges_in_parts_of_about_the_target() -> None:
    sizer = ChunkSizer(size=80, maximum=10_000, target_logs=10_000)
    sizer.observed(20_000, 80)  # 250 logs a block: 40 blocks hold the target
    assert sizer.size == 40
    sizer.observed(10_000, 40)  # on target: stays
    assert sizer.size == 40
    sizer.observed(4_000, 40)  # sparse again: grows back
    assert sizer.size == 80
    # A range clipped at the head says how dense the chain is, not how big the range was.
    sizer.observed(30_000, 10)
    assert sizer.size == 3
    sizer.observed(10**9, 3)
    assert sizer.size == sizer.minimum
