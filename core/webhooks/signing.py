"""The two signatures every delivery carries, and the check behind POST /v1/webhooks/verify.

Standard Webhooks (standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256>` over
`{id}.{timestamp}.{body}` keyed with the base64-decoded part of the `whsec_` secret; during a
rotation the header lists one signature per live secret, newest first.
QBitFlow v1: `X-Webhook-Signature-256: sha256=<hex HMAC-SHA256>` over `{timestamp}.{canonical
JSON}` keyed with the whole secret string as UTF-8; one signature, the current secret's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Any

from core.events.canonical import NotCanonical, canonical_json
from core.webhooks.crypto import SECRET_PREFIX

REPLAY_WINDOW_SECONDS = 300
QBITFLOW_TEST_ID = "test-webhook-id"
_TIMESTAMP = re.compile(r"^-?\d{1,20}$")


def standard_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("not a whsec_ secret") from exc


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(standard_key(secret), signed, "sha256")).decode()


def qbitflow_signature(secret: str, timestamp: str, canonical_body: str) -> str:
    signed = f"{timestamp}.{canonical_body}".encode()
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def delivery_headers(
    *,
    event_id: str,
    event_type: str,
    body: str,
    timestamp: int,
    secrets: Sequence[str],
) -> dict[str, str]:
    """Both schemes' headers for one attempt. `secrets`: current first, then any in overlap."""
    raw = body.encode()
    return {
        "content-type": "application/json",
        "user-agent": "chainpay-webhooks/1",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(s, event_id, timestamp, raw) for s in secrets
        ),
        "x-webhook-id": QBITFLOW_TEST_ID if event_type == "webhook.test" else event_id,
        "x-webhook-timestamp": str(timestamp),
        "x-webhook-signature-256": qbitflow_signature(secrets[0], str(timestamp), body),
    }


def verify_qbitflow(
    candidates: Sequence[str], *, payload: Any, signature: str, timestamp: str, now: int
) -> bool:
    """True when `signature` is QBitFlow's for `payload` under one of the candidate secrets.

    The payload is re-canonicalized, the timestamp must be within the replay window, and every
    candidate is compared in constant time (no early exit that would time which one matched).
    """
    if not _TIMESTAMP.match(timestamp or "") or abs(now - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    try:
        body = canonical_json(payload)
    except NotCanonical:
        return False
    received = signature.strip()
    if not received.startswith("sha256="):
        received = "sha256=" + received
    valid = False
    for secret in candidates:
        expected = qbitflow_signature(secret, timestamp, body)
        valid |= hmac.compare_digest(expected.encode(), received.encode())
    return valid
