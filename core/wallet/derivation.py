"""BIP-32/44 derivation for EVM deposit addresses: account xpub (m/44'/60'/0') -> 0/i.

Only public keys: the server derives addresses and never sees a private key.
"""

from __future__ import annotations

import functools
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
        # bip_utils speaks of checksums and "substring not found"; say what the person can fix.
        if not xpub:
            reason = "nothing was given"
        elif "checksum" in str(exc).lower():
            reason = "a character is wrong, missing or extra (copy it again from your wallet)"
        else:
            reason = "expected the 111-character xpub... text a wallet exports for m/44'/60'/0'"
        raise InvalidXpub(f"not a valid extended public key: {reason}") from exc
    if not key.IsPublicOnly():
        raise InvalidXpub("give the extended public key, not the private one")
    if key.Depth().ToInt() != ACCOUNT_DEPTH:
        raise InvalidXpub("give the account-level xpub of m/44'/60'/0' (depth 3)")
    return Bip44.FromExtendedKey(xpub, Bip44Coins.ETHEREUM)


def derive_address(xpub: str, index: int) -> str:
    """The checksummed address at m/44'/60'/0'/0/index of the account behind `xpub`."""
    if index < 0 or index >= 2**31:
        raise ValueError("address index out of the non-hardened range")
    return str(_external_chain(xpub).AddressIndex(index).PublicKey().ToAddress())


@functools.lru_cache(maxsize=1024)
def _external_chain(xpub: str) -> Bip44:
    """m/44'/60'/0'/0 of the account: parsing the xpub (base58, checksum, point decoding) and
    deriving the chain key cost three times the address itself, and every session pays them."""
    return parse_account_xpub(xpub).Change(Bip44Changes.CHAIN_EXT)


def account_key(xpub: str) -> str:
    """What identifies the account behind `xpub`: sha256 of its compressed public key and chain
    code, in hex. Those two alone fix every address derived from it; the rest of the string
    (parent fingerprint, child number, version bytes) is metadata a wallet may write differently.
    """
    key = parse_account_xpub(xpub).Bip32Object()
    material = key.PublicKey().RawCompressed().ToBytes() + key.ChainCode().ToBytes()
    return hashlib.sha256(material).hexdigest()


def generate_dev_mnemonic() -> str:
    return str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_12))


def account_xpub_from_mnemonic(mnemonic: str) -> str:
    seed = Bip39SeedGenerator(mnemonic).Generate()
    account = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0)
    return str(account.PublicKey().ToExtended())
