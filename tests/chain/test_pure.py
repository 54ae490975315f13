"""The watcher's pure parts, without a chain: log decoding, error classification, range sizing."""

from __future__ import annotations

from chain.rpc import RangeTooLarge, RpcError, classify_error
from chain.watcher import TRANSFER_TOPIC, ChunkSizer, decode_transfer, final_block_of
from core.chains import Chain

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
    sizer.grew(10)
    assert sizer.size == 200
    sizer.refused(50)
    assert sizer.size == 50
    sizer.grew(0)
    assert sizer.size == 50
    sizer.refused()
    assert sizer.size == 25
    sizer.grew(5000)
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
