"""Deposit address derivation against the well-known anvil/hardhat reference vectors."""

from __future__ import annotations

import pytest
from bip_utils import Bip32Secp256k1, Bip39SeedGenerator

from core.wallet.derivation import (
    InvalidXpub,
    account_xpub_from_mnemonic,
    derive_address,
    parse_account_xpub,
)

MNEMONIC = "test test test test test test test test test test test junk"
# m/44'/60'/0'/0/0..2 of that mnemonic, as every anvil and hardhat node prints them.
EXPECTED = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
]


def test_account_xpub_derives_the_reference_addresses() -> None:
    xpub = account_xpub_from_mnemonic(MNEMONIC)
    assert xpub.startswith("xpub")
    assert [derive_address(xpub, i) for i in range(3)] == EXPECTED


def test_xpub_from_raw_bip32_agrees() -> None:
    seed = Bip39SeedGenerator(MNEMONIC).Generate()
    account = Bip32Secp256k1.FromSeed(seed).DerivePath("m/44'/60'/0'")
    xpub = account.PublicKey().ToExtended()
    assert derive_address(xpub, 2) == EXPECTED[2]


def test_private_and_wrong_depth_keys_are_refused() -> None:
    seed = Bip39SeedGenerator(MNEMONIC).Generate()
    root = Bip32Secp256k1.FromSeed(seed)
    with pytest.raises(InvalidXpub, match="private"):
        parse_account_xpub(root.DerivePath("m/44'/60'/0'").PrivateKey().ToExtended())
    with pytest.raises(InvalidXpub, match="depth 3"):
        parse_account_xpub(root.PublicKey().ToExtended())
    with pytest.raises(InvalidXpub, match="not a valid"):
        parse_account_xpub("xpub-garbage")
