from __future__ import annotations

from core.errors import AppError, Conflict, InvalidInput, NotFound


class SessionNotFound(NotFound):
    def __init__(self, param: str = "uuid") -> None:
        super().__init__("Session not found", param=param)


class SessionNotOpen(Conflict):
    code = "session_not_open"


class NoAcceptedTokens(AppError):
    status_code = 409
    code = "no_accepted_tokens"


class UnsupportedOption(InvalidInput):
    code = "unsupported"
