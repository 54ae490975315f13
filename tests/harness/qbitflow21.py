"""QBitFlow's own verifier from `qbitflow==2.1.0`, installed apart (1.1.0 owns the name here).

The package goes into `.cache/qbitflow-2.1.0` (`pip install --target`, done by `.ci/run` and
on first use here) and runs in a child interpreter whose path puts it first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / ".cache" / "qbitflow-2.1.0"

_SCRIPT = r"""
import json, sys
import qbitflow
from qbitflow.webhooks import canonical_json, verify_webhook_signature
assert qbitflow.__file__.startswith(sys.argv[1]), qbitflow.__file__
out = []
for item in json.load(sys.stdin):
    if item["op"] == "canonical":
        out.append(canonical_json(item["body"]))
        continue
    try:
        verify_webhook_signature(item["secret"], item["timestamp"], item["signature"], item["body"])
        out.append(True)
    except Exception as exc:
        out.append(type(exc).__name__ + ": " + str(exc))
json.dump(out, sys.stdout)
"""


def ensure_installed() -> Path:
    if not (TARGET / "qbitflow" / "webhooks.py").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(TARGET),
                "qbitflow==2.1.0",
            ],
            check=True,
        )
    return TARGET


def run(items: list[dict[str, Any]]) -> list[Any]:
    target = ensure_installed()
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(target)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    return list(json.loads(done.stdout))


def verify(secret: str, timestamp: str, signature: str, body: bytes) -> bool | str:
    """True, or the verifier's complaint."""
    result = run(
        [
            {
                "op": "verify",
                "secret": secret,
                "timestamp": timestamp,
                "signature": signature,
                "body": body.decode(),
            }
        ]
    )[0]
    return True if result is True else str(result)


def canonical(bodies: list[str]) -> list[str]:
    return [str(r) for r in run([{"op": "canonical", "body": b} for b in bodies])]
