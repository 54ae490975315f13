from __future__ import annotations

from core.errors import Conflict, InvalidInput, NotFound


class ProductNotFound(NotFound):
    def __init__(self, param: str = "id") -> None:
        super().__init__("Product not found", param=param)


class CustomerNotFound(NotFound):
    def __init__(self, param: str = "uuid") -> None:
        super().__init__("Customer not found", param=param)


class ReferenceTaken(Conflict):
    code = "reference_taken"

    def __init__(self) -> None:
        super().__init__("Another object already uses this reference", param="reference")


class CustomerEmailTaken(Conflict):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("A customer with this email already exists", param="email")


class ReferenceImmutable(InvalidInput):
    code = "immutable_field"

    def __init__(self) -> None:
        super().__init__("A customer's reference cannot be changed", param="reference")
