"""Canonical JSON, both signature schemes, the SSRF address check and the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from core.events.canonical import NotCanonical, canonical_json, json_number
from core.webhooks.crypto import SecretBox, new_secret
from core.webhooks.queue import MAX_ATTEMPTS, RETRY_DELAYS, next_attempt_at
from core.webhooks.signing import delivery_headers, verify_qbitflow
from core.webhooks.ssrf import BlockedTarget, checked_addresses, is_public
from tests.harness import qbitflow21

# Decimals that a float holds exactly (what canonical JSON may carry as a number).
float_exact = st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Decimal(repr(f)))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**256), max_value=2**256),
    st.floats(allow_nan=False, allow_infinity=False),
    float_exact,
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["<script>", "a&b", "x>y", "\u2028", "ünïcødé", "😀", "\\", '"', "\n\t"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=10), children, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_stored_body_is_a_fixed_point_of_canonicalization(value: Any) -> None:
    body = canonical_json(value)
    # Parsed the way receivers parse it (floats) or the way our API parses it (Decimals):
    assert canonical_json(json.loads(body)) == body
    assert canonical_json(json.loads(body, parse_float=Decimal)) == body
    assert "<" not in body
    assert ">" not in body
    assert "&" not in body


no_floats = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**256), max_value=2**256),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
        st.sampled_from(["<script>", "a&b", "\u2028", "\x00\x1f\x7f", "😀", "\\", '"', "\n\t"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=10), children, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(no_floats)
def test_the_fast_path_writes_what_the_standard_library_writes(value: Any) -> None:
    # Bodies without floats are rendered by orjson; they must be the stdlib's bytes exactly.
    reference = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    reference = reference.replace("<", "\\u003c").replace(">", "\\u003e")
    assert canonical_json(value) == reference.replace("&", "\\u0026")


def test_qbitflow_2_1_0_canonicalizes_our_bodies_to_themselves() -> None:
    values: list[Any] = [
        {"b": {"z": [1, 2.5, {"y": "<&>"}], "a": None}, "a": "é😀"},
        {"big": 2**200, "neg": -(2**70), "price": json_number(Decimal("19.99"))},
        {"whole": Decimal("5.000"), "tiny": json_number(Decimal("0.000001"))},
        {"exact18": json_number(Decimal("0.123456789012345678")), "text": "a\nb\u2028"},
        [True, False, None, 0, -1, 1e-7, 123456789.125],
    ]
    bodies = [canonical_json(v) for v in values]
    assert qbitflow21.canonical(bodies) == bodies


def test_numbers_a_float_cannot_hold_travel_as_strings() -> None:
    assert json_number(Decimal("0.123456789012345678")) == "0.123456789012345678"
    assert json_number(Decimal("19.99")) == Decimal("19.99")
    assert canonical_json({"p": json_number(Decimal("10.50"))}) == '{"p":10.5}'
    with pytest.raises(NotCanonical):
        canonical_json({"p": Decimal("0.123456789012345678")})
    with pytest.raises(NotCanonical):
        canonical_json({"p": float("nan")})


def test_headers_verify_with_standardwebhooks_and_qbitflow_2_1_0() -> None:
    secret, old = new_secret(), new_secret()
    body = canonical_json({"id": "evt_1", "type": "webhook.test", "data": {"x": "<1>"}})
    now = int(time.time())
    headers = delivery_headers(
        event_id="evt_1", event_type="webhook.test", body=body, timestamp=now, secrets=[secret, old]
    )
    assert headers["x-webhook-id"] == "test-webhook-id"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for key in (secret, old):  # during an overlap either secret verifies
        assert Webhook(key).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    assert (
        qbitflow21.verify(
            secret,
            headers["x-webhook-timestamp"],
            headers["x-webhook-signature-256"],
            body.encode(),
        )
        is True
    )
    # Hand-computed, per the two specifications:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"evt_1.{now}.{body}".encode(), hashlib.sha256).digest()
    assert headers["webhook-signature"].split(" ")[0] == "v1," + base64.b64encode(mac).decode()
    hexmac = hmac.new(secret.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    assert headers["x-webhook-signature-256"] == "sha256=" + hexmac


def test_server_side_check_accepts_any_live_secret_and_rejects_the_rest() -> None:
    secret, other = new_secret(), new_secret()
    payload = {"id": "evt_2", "data": {"amount": "1.50"}, "n": 3}
    now = int(time.time())
    ts = str(now)
    sig = (
        "sha256="
        + hmac.new(
            secret.encode(), f"{ts}.{canonical_json(payload)}".encode(), hashlib.sha256
        ).hexdigest()
    )
    kwargs = {"payload": payload, "timestamp": ts, "now": now}
    assert verify_qbitflow([other, secret], signature=sig, **kwargs)  # type: ignore[arg-type]
    assert verify_qbitflow([secret], signature=sig.removeprefix("sha256="), **kwargs)  # type: ignore[arg-type]
    assert not verify_qbitflow([other], signature=sig, **kwargs)  # type: ignore[arg-type]
    changed = {**payload, "n": 4}
    assert not verify_qbitflow([secret], payload=changed, signature=sig, timestamp=ts, now=now)
    assert not verify_qbitflow(
        [secret], payload=payload, signature=sig, timestamp=ts, now=now + 301
    )
    assert not verify_qbitflow([secret], payload=payload, signature=sig, timestamp="x", now=now)


def test_secret_box_round_trips_and_refuses_a_changed_key(tmp_path: Any) -> None:
    from core.config import Settings
    from core.webhooks.crypto import SecretUnreadable

    first = SecretBox.from_settings(Settings(secret_key="first passphrase"))
    token = first.encrypt("whsec_abc")
    assert "whsec_abc" not in token
    assert first.decrypt(token) == "whsec_abc"
    rotated = SecretBox.from_settings(Settings(secret_key="second passphrase,first passphrase"))
    assert rotated.decrypt(token) == "whsec_abc"  # old key still reads, new key encrypts
    with pytest.raises(SecretUnreadable):
        SecretBox.from_settings(Settings(secret_key="another")).decrypt(token)
    key_file = tmp_path / "k.key"
    generated = SecretBox.from_settings(Settings(secret_key=None, secret_key_file=key_file))
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    again = SecretBox.from_settings(Settings(secret_key=None, secret_key_file=key_file))
    assert again.decrypt(generated.encrypt("s")) == "s"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("fc00::1", False),
        ("fe80::1", False),
        ("224.0.0.1", False),
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("::ffff:93.184.216.34", True),
    ],
)
def test_only_global_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"mixed.test": ["93.184.216.34", "10.0.0.7"], "ok.test": ["93.184.216.34"]}[host]

    assert await checked_addresses("ok.test", 443, allow_private=False, resolve=resolve) == [
        "93.184.216.34"
    ]
    with pytest.raises(BlockedTarget):
        await checked_addresses("mixed.test", 443, allow_private=False, resolve=resolve)
    assert await checked_addresses("mixed.test", 443, allow_private=True, resolve=resolve)


def test_retry_schedule_spans_about_three_days_with_jitter() -> None:
    rng = random.Random(7)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    total = timedelta(0)
    for attempt in range(1, MAX_ATTEMPTS):
        due = next_attempt_at(attempt, now, None, rng)
        assert due is not None
        delay = due - now
        nominal = RETRY_DELAYS[attempt - 1]
        assert nominal * 0.9 <= delay <= nominal * 1.1
        total += delay
    assert next_attempt_at(MAX_ATTEMPTS, now, None, rng) is None
    assert timedelta(days=2.7) < total < timedelta(days=3.4)
    # Retry-After wins when longer, capped at a day:
    assert next_attempt_at(1, now, timedelta(hours=1), rng) == now + timedelta(hours=1)
    assert next_attempt_at(1, now, timedelta(days=9), rng) == now + timedelta(days=1)
