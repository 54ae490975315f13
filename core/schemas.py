"""Shared pydantic pieces: camelCase wire names, exact USD amounts, validated emails and addresses."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from eth_utils import is_address, is_checksum_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from core.money import normalize

MAX_USD = Decimal("1000000000000")  # one trillion: more than any sane single price
USD_DECIMAL_PLACES = 18


def _camel(name: str) -> str:
    # QBitFlow spells trailing "uuid" as "UUID" (customerUUID, transactionUUID).
    camel = to_camel(name)
    return camel[:-4] + "UUID" if camel.endswith("Uuid") else camel


class CamelModel(BaseModel):
    """Wire model: camelCase JSON, snake_case Python, unknown fields ignored (SDKs add fields)."""

    model_config = ConfigDict(alias_generator=_camel, populate_by_name=True, extra="ignore")


EXACT_DECIMAL = (
    "exact decimal, written digit for digit as a JSON number: parse it as a decimal, not a float"
)
# The only decimal strings an amount accepts: plain ASCII digits, at most 18 places, at most
# MAX_USD (no sign, exponent, spaces or underscores, which Python's Decimal would also read).
USD_STRING_PATTERN = r"^0*(?:[0-9]{1,12}(?:\.[0-9]{1,18})?|1000000000000(?:\.0{1,18})?)$"
_USD_STRING = re.compile(USD_STRING_PATTERN)


def _reject_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        # Only reachable when a caller bypasses our JSON parser; floats never become amounts.
        raise ValueError("must be an exact decimal, not a float")
    if isinstance(value, str) and not _USD_STRING.fullmatch(value):
        raise ValueError(
            f'must be a JSON number or a plain decimal string (like "9.99") from 0 to {MAX_USD} '
            f"with at most {USD_DECIMAL_PLACES} decimal places"
        )
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
    # Normalise the scale without exponent notation (10.50 -> 10.5, 1E+2 -> 100) and without
    # the default 28-digit context, which rounded 999999999999.999999999999999999 up to 1E+12.
    return normalize(value)


_USD_DESCRIPTION = (
    f"USD, exact: a JSON number or a decimal string, 0 to {MAX_USD}, "
    f"at most {USD_DECIMAL_PLACES} decimal places"
)
UsdAmount = Annotated[
    Decimal,
    BeforeValidator(_reject_bool),
    AfterValidator(_check_usd),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": int(MAX_USD)},
                {"type": "string", "pattern": USD_STRING_PATTERN},
            ],
            "description": _USD_DESCRIPTION,
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "number", "description": EXACT_DECIMAL}, mode="serialization"),
]
# Decimals in answers: rendered by api/responses.py as exact JSON numbers, never strings.
ExactDecimal = Annotated[
    Decimal, WithJsonSchema({"type": "number", "description": EXACT_DECIMAL}, mode="serialization")
]


def _normalize_email(value: str) -> str:
    # The same library and rules the QBitFlow SDK's EmailStr applies, so anything we accept
    # the SDK can read back. Lower-cased whole: mailboxes that differ only in case are one person.
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc


Email = Annotated[
    str,
    Field(max_length=320, json_schema_extra={"format": "email"}),
    AfterValidator(_normalize_email),
]


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
