from __future__ import annotations

from core.errors import Conflict, Forbidden, NotFound, Unauthorized


class InvalidApiKey(Unauthorized):
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("Invalid, revoked or expired API key")


class UserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("User not found", param="id")


class ApiKeyNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("API key not found", param="id")


class EmailTaken(Conflict):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("A user with this email already exists", param="email")


class RoleRequired(Forbidden):
    code = "insufficient_role"

    def __init__(self, message: str = "This action requires the admin or owner role") -> None:
        super().__init__(message)


class LastOwnerKey(Conflict):
    code = "last_owner_key"

    def __init__(self, *, test: bool) -> None:
        if test:
            what = "the owner's last working API key"
            fix = "create another key for the owner first"
            command = "chainpay key create --test"
        else:
            what = "the owner's last working live API key (test keys cannot create live keys)"
            fix = "create another live key for the owner first"
            command = "chainpay key create"
        super().__init__(
            f"This is {what}: {fix} (POST /v1/api-key), or run `{command}` on the server",
            param="id",
        )
