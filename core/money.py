"""Exact money: USD is Decimal, token amounts are int base units; no float anywhere."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

# Enough digits for 2**256-1 base units times a peg with room to spare.
_PRECISION = 200


def _fraction(value: Decimal) -> Fraction:
    if not value.is_finite():
        raise ValueError("amounts must be finite")
    numerator, denominator = value.as_integer_ratio()
    return Fraction(numerator, denominator)


def usd_to_base_units(price_usd: Decimal, *, decimals: int, usd_per_token: Decimal) -> int:
    """Token base units that pay `price_usd`, rounded up to the token's smallest unit."""
    if price_usd < 0:
        raise ValueError("price must not be negative")
    if usd_per_token <= 0:
        raise ValueError("a token's USD price must be positive")
    exact = _fraction(price_usd) * 10**decimals / _fraction(usd_per_token)
    return -((-exact.numerator) // exact.denominator)  # ceiling division


def base_units_to_usd(amount: int, *, decimals: int, usd_per_token: Decimal) -> Decimal:
    """The USD value of `amount` base units, exactly (a terminating decimal for decimal pegs)."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        value = Decimal(amount).scaleb(-decimals) * usd_per_token
    return normalize(value)


def base_units_to_tokens(amount: int, *, decimals: int) -> Decimal:
    """Human token amount (`1.5` USDT for 1_500_000 base units at 6 decimals), exact."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return normalize(Decimal(amount).scaleb(-decimals))


def normalize(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (100, not 1E+2); every zero
    (-0, -0.00, 0E-10) is plain 0."""
    if value.is_zero():
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        reduced = value.normalize()
        return reduced.quantize(Decimal(1)) if reduced == reduced.to_integral_value() else reduced
