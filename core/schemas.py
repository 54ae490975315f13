"""Shared pydantic pieces: camelCase wire names, exact USD amounts, validated emails and addresses."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from eth_utils import is_address, is_checksum_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

MAX_USD = Decimal("1000000000000")  # one trillion: more than any sane single price
USD_DECIMAL_PLACES = 18


def _camel(name: str) -> str:
    # QBitFlow spells trailing "uuid" as "UUID" (customerUUID, transactionUUID).
    camel = to_camel(name)
    return camel[:-4] + "UUID" if camel.endswith("Uuid") else camel


class CamelModel(BaseModel):
    """Wire model: camelCase JSON, snake_case Python, unknown fields ignored (SDKs add fields)."""

    model_config = ConfigDict(alias_generator=_camel, populate_by_name=True, extra="ignore")


def _reject_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        # Only reachable when a caller bypasses our JSON parser; floats never become amounts.
        raise ValueError("must be an exact decimal, not a float")
    return value


def _check_usd(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if value < 0:
        raise ValueError("must not be negative")
    if value > MAX_USD:
        raise ValueError(f"must not exceed {MAX_USD}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > USD_DECIMAL_PLACES:
        raise ValueError(f"must have at most {USD_DECIMAL_PLACES} decimal places")
    # Normalise the scale without exponent notation: 10.50 -> 10.5, 1E+2 -> 100.
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral() else normalized


UsdAmount = Annotated[Decimal, BeforeValidator(_reject_bool), AfterValidator(_check_usd)]


def _normalize_email(value: str) -> str:
    # The same library and rules the QBitFlow SDK's EmailStr applies, so anything we accept
    # the SDK can read back. Lower-cased whole: mailboxes that differ only in case are one person.
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc


Email = Annotated[str, Field(max_length=320), AfterValidator(_normalize_email)]


def _check_evm_address(value: str) -> str:
    if not is_address(value):
        raise ValueError("not a valid EVM address (0x followed by 40 hex digits)")
    if value != value.lower() and value[2:] != value[2:].upper() and not is_checksum_address(value):
        raise ValueError("mixed-case EVM address with a wrong checksum")
    return str(to_checksum_address(value))


EvmAddress = Annotated[str, Field(min_length=42, max_length=42), AfterValidator(_check_evm_address)]

ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=5000)]
Reference = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:\-]+$")]
