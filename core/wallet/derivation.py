"""BIP-32/44 derivation for EVM deposit addresses: account xpub (m/44'/60'/0') -> 0/i.

Only public keys: the server derives addresses and never sees a private key.
"""

from __future__ import annotations

import hashlib

from bip_utils import (
    Bip32Secp256k1,
    Bip39MnemonicGenerator,
    Bip39SeedGenerator,
    Bip39WordsNum,
    Bip44,
    Bip44Changes,
    Bip44Coins,
)

ACCOUNT_DEPTH = 3


class InvalidXpub(ValueError):
    pass


def parse_account_xpub(xpub: str) -> Bip44:
    """An account-level extended public key, or InvalidXpub saying what is wrong with it."""
    xpub = xpub.strip()
    if xpub[:4] in ("xprv", "tprv") or "prv" in xpub[:4]:
        raise InvalidXpub("this is a private key: give the account's extended public key (xpub)")
    try:
        key = Bip32Secp256k1.FromExtendedKey(xpub)
    except Exception as exc:
        raise InvalidXpub(f"not a valid extended public key: {exc}") from exc
    if not key.IsPublicOnly():
        raise InvalidXpub("give the extended public key, not the private one")
    if key.Depth().ToInt() != ACCOUNT_DEPTH:
        raise InvalidXpub("give the account-level xpub of m/44'/60'/0' (depth 3)")
    return Bip44.FromExtendedKey(xpub, Bip44Coins.ETHEREUM)


def derive_address(xpub: str, index: int) -> str:
    """The checksummed address at m/44'/60'/0'/0/index of the account behind `xpub`."""
    if index < 0 or index >= 2**31:
        raise ValueError("address index out of the non-hardened range")
    account = parse_account_xpub(xpub)
    return str(account.Change(Bip44Changes.CHAIN_EXT).AddressIndex(index).PublicKey().ToAddress())


def xpub_fingerprint(xpub: str) -> str:
    return hashlib.sha256(xpub.strip().encode()).hexdigest()[:16]


def generate_dev_mnemonic() -> str:
    return str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_12))


def account_xpub_from_mnemonic(mnemonic: str) -> str:
    seed = Bip39SeedGenerator(mnemonic).Generate()
    account = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0)
    return str(account.PublicKey().ToExtended())
