from __future__ import annotations

from core.errors import AppError


class LinkCodeInvalid(AppError):
    """Unknown, used and expired codes get the same answer, so a code cannot be probed."""

    status_code = 400
    code = "link_code_invalid"

    def __init__(self) -> None:
        super().__init__("This link code is invalid, used or expired: make a new one", param="code")


class NotYourSession(AppError):
    """A button or link of a session (or subscription) that another Telegram account opened."""

    status_code = 403
    code = "not_yours"

    def __init__(self) -> None:
        super().__init__("This payment belongs to another Telegram account")


class PairNotAccepted(AppError):
    status_code = 422
    code = "pair_not_accepted"

    def __init__(self) -> None:
        super().__init__("This session does not accept that token on that network", param="token")


class ClaimInvalid(AppError):
    """Unknown, used, expired, or another account's: one answer, so a token cannot be probed."""

    status_code = 400
    code = "claim_invalid"

    def __init__(self) -> None:
        super().__init__("This access link is invalid, used or expired", param="token")


class NotAMerchant(AppError):
    status_code = 403
    code = "not_linked"

    def __init__(self) -> None:
        super().__init__("Link your chainpay account first: /link <code>")
