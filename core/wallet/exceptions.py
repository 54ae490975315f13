from __future__ import annotations

from core.errors import AppError, Conflict, InvalidInput


class WalletNotConfigured(AppError):
    status_code = 409
    code = "wallet_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "This organization has no receiving wallet: set its account xpub with "
            "`chainpay wallet set-xpub` or PUT /v1/wallet"
        )


class XpubTaken(Conflict):
    code = "xpub_taken"

    def __init__(self) -> None:
        super().__init__(
            "This account (the xpub's public key and chain code) belongs to another "
            "organization: register an account of your own",
            param="xpub",
        )


class BadXpub(InvalidInput):
    code = "invalid_xpub"
