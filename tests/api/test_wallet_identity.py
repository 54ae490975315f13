"""An xpub is one account however it is encoded: the public key and chain code identify it.

Two strings for the same account (here: the parent fingerprint zeroed, or the child number
changed, as some wallets export it) derive exactly the same addresses, so they must be one
account for tenancy and for the address index.
"""

from __future__ import annotations

from collections.abc import Callable

from bip_utils import Bip32KeyData, Bip32PublicKeySerializer, Bip32Secp256k1

from core.wallet.derivation import (
    account_key,
    account_xpub_from_mnemonic,
    derive_address,
    generate_dev_mnemonic,
)
from tests.harness.factories import Api, Tenant


def reencoded(xpub: str, *, parent_fingerprint: bytes = b"\0" * 4, index: int | None = None) -> str:
    """The same account serialized again with other metadata (what `Bip32KeyData` carries)."""
    key = Bip32Secp256k1.FromExtendedKey(xpub)
    data = Bip32KeyData(
        depth=key.Depth(),
        index=key.Index() if index is None else index,
        chain_code=key.ChainCode(),
        parent_fprint=parent_fingerprint,
    )
    return str(Bip32PublicKeySerializer.Serialize(key.PublicKey().KeyObject(), data))


def new_xpub() -> str:
    return account_xpub_from_mnemonic(generate_dev_mnemonic())


def deposit_address(api: Api) -> str:
    created = api.post(
        "/transaction/session-checkout",
        json={"productName": "Ebook", "description": "PDF", "price": "1.5"},
    )
    assert created.status_code == 200, created.text
    return str(created.json()["depositAddress"])


def owner_with_wallet(base_url: str, tenant_factory: Callable[..., Tenant], xpub: str) -> Api:
    api = Api(base_url, tenant_factory(wallet=False).key)
    registered = api.put("/wallet", json={"xpub": xpub})
    assert registered.status_code == 200, registered.text
    return api


def test_a_reencoded_xpub_is_the_same_account() -> None:
    xpub = new_xpub()
    zeroed = reencoded(xpub)
    renumbered = reencoded(xpub, parent_fingerprint=b"\x01\x02\x03\x04", index=7)
    assert len({xpub, zeroed, renumbered}) == 3
    assert [derive_address(x, 5) for x in (zeroed, renumbered)] == [derive_address(xpub, 5)] * 2
    assert account_key(zeroed) == account_key(renumbered) == account_key(xpub)
    assert account_key(new_xpub()) != account_key(xpub)


def test_another_organization_cannot_register_a_reencoded_xpub(
    base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    xpub = new_xpub()
    ours = owner_with_wallet(base_url, tenant_factory, xpub)
    first = deposit_address(ours)

    other = Api(base_url, tenant_factory(wallet=False).key)
    for attempt in (reencoded(xpub), reencoded(xpub, index=3), xpub):
        taken = other.put("/wallet", json={"xpub": attempt})
        assert taken.status_code == 409, taken.text
        assert taken.json()["code"] == "xpub_taken"
        assert taken.json()["param"] == "xpub"
        # Nothing about the organization that has it: no id, no name.
        assert set(taken.json()) == {"error", "code", "param"}
        assert not any(ch.isdigit() for ch in taken.json()["error"])
        assert "Shop" not in taken.text
    assert other.get("/wallet").json()["code"] == "wallet_not_configured"
    assert ours.get("/wallet").json()["firstAddress"] == first


def test_reregistering_the_same_account_keeps_its_index(
    base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    xpub = new_xpub()
    api = owner_with_wallet(base_url, tenant_factory, xpub)
    handed_out = [deposit_address(api) for _ in range(2)]
    assert handed_out == [derive_address(xpub, 0), derive_address(xpub, 1)]

    for again in (reencoded(xpub), xpub):
        registered = api.put("/wallet", json={"xpub": again})
        assert registered.status_code == 200, registered.text
        assert registered.json()["nextIndex"] == len(handed_out)
        assert registered.json()["xpub"] == again  # shown as last given
        # Checkout keeps working, on the next address of the account.
        handed_out.append(deposit_address(api))
    assert handed_out[2:] == [derive_address(xpub, 2), derive_address(xpub, 3)]
    assert api.get("/wallet").json()["nextIndex"] == 4


def test_switching_accounts_and_back_never_reuses_an_address(
    base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    first, second = new_xpub(), new_xpub()
    api = owner_with_wallet(base_url, tenant_factory, first)
    handed_out = [deposit_address(api) for _ in range(2)]

    switched = api.put("/wallet", json={"xpub": second})
    assert switched.status_code == 200, switched.text
    assert switched.json()["nextIndex"] == 0
    handed_out.append(deposit_address(api))
    assert handed_out[-1] == derive_address(second, 0)

    for back, index_of_first, index_of_second in ((reencoded(first), 2, 1), (first, 3, 2)):
        returned = api.put("/wallet", json={"xpub": back})
        assert returned.status_code == 200, returned.text
        assert returned.json()["nextIndex"] == index_of_first
        handed_out.append(deposit_address(api))
        assert handed_out[-1] == derive_address(first, index_of_first)
        assert api.put("/wallet", json={"xpub": second}).json()["nextIndex"] == index_of_second
        handed_out.append(deposit_address(api))
        assert handed_out[-1] == derive_address(second, index_of_second)
    assert len(set(handed_out)) == len(handed_out) == 7


def test_an_account_an_organization_switched_away_from_stays_its_own(
    base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    left = new_xpub()
    api = owner_with_wallet(base_url, tenant_factory, left)
    deposit_address(api)
    assert api.put("/wallet", json={"xpub": new_xpub()}).status_code == 200

    other = Api(base_url, tenant_factory(wallet=False).key)
    taken = other.put("/wallet", json={"xpub": reencoded(left)})
    assert taken.status_code == 409, taken.text
    assert taken.json()["code"] == "xpub_taken"
