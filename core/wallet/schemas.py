from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from core.schemas import CamelModel
from core.wallet.derivation import derive_address

if TYPE_CHECKING:
    from core.models import WalletAccount


class WalletSet(CamelModel):
    xpub: Annotated[
        str, Field(min_length=100, max_length=120, description="Account xpub of m/44'/60'/0'")
    ]


class WalletOut(CamelModel):
    xpub: str
    next_index: int
    first_address: str
    updated_at: datetime


def wallet_out(account: WalletAccount) -> WalletOut:
    """The account as the API shows it, with the first address derived (a quick check of the xpub)."""
    return WalletOut(
        xpub=account.xpub,
        next_index=account.next_index,
        first_address=derive_address(account.xpub, 0),
        updated_at=account.updated_at,
    )
