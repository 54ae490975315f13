from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from core.schemas import CamelModel


class WalletSet(CamelModel):
    xpub: Annotated[
        str, Field(min_length=100, max_length=120, description="Account xpub of m/44'/60'/0'")
    ]


class WalletOut(CamelModel):
    xpub: str
    next_index: int
    first_address: str
    updated_at: datetime
