"""Schemathesis over our own OpenAPI document, as `st run --checks all` would run it: every
operation, every phase (examples, coverage, fuzzing, stateful), every check, on the suite's
database. A failure here means the API and /openapi.json disagree, or some input gives a 5xx.

The run is the schemathesis engine itself (what its CLI drives), not its pytest plugin, so
every phase and run-level check is included and the test does not depend on pytest internals.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import schemathesis
from hypothesis import HealthCheck, find, settings
from schemathesis.engine import from_schema
from schemathesis.engine.events import EngineFinished, FatalError, NonFatalError, ScenarioFinished

from tests.harness.factories import Tenant

SEED = 20261128
MAX_EXAMPLES = 40  # a cycle of both phases per operation: ~1 minute per backend on 2 cores

# Checks that cannot hold for one operation, each with the reason. Nothing is off globally.
EXCLUDED: list[tuple[str, str, str, str]] = [
    # Its success needs a valid HMAC signature over the payload; a generator cannot make one.
    ("POST", "/v1/webhooks/verify", "positive_data_acceptance", "needs a real signature"),
    # An opaque cursor is valid only if this server issued it; its schema cannot say which.
    ("GET", "/v1/customer/all", "positive_data_acceptance", "cursor is server-issued"),
    ("GET", "/v1/transaction/payments", "positive_data_acceptance", "cursor is server-issued"),
    (
        "GET",
        "/v1/transaction/payments/combined",
        "positive_data_acceptance",
        "cursor is server-issued",
    ),
    # An xpub is valid only with its base58 checksum.
    ("PUT", "/v1/wallet", "positive_data_acceptance", "xpub checksum"),
    # expiresAt must be in the future: a moving bound that JSON Schema cannot state.
    ("POST", "/v1/api-key", "positive_data_acceptance", "expiresAt must be in the future"),
]


def fuzz_config(key: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"X-API-Key": key},
            "workers": 1,
            "checks": {"enabled": True},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # The API refuses NUL in every string, at any depth of a body (PostgreSQL
                # cannot store it); free-form values cannot say so in JSON Schema, so the run
                # generates none and test_nul_in_each_string_* sends them on purpose.
                "allow-x00": False,
                "codec": "utf-8",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": 200},
            },
            "operations": [
                {
                    "include-method": method,
                    "include-path": path,
                    "checks": {check: {"enabled": False}},
                }
                for method, path, check, _why in EXCLUDED
            ],
        }
    )


def run_schemathesis(base_url: str, key: str) -> list[str]:
    """Every failure of a full run, one readable line each (check, operation, request, answer)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=fuzz_config(key))
    problems: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            recorder = event.recorder
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    node = recorder.cases.get(case_id)
                    interaction = recorder.interactions.get(case_id)
                    answer = ""
                    if interaction is not None and interaction.response is not None:
                        body = interaction.response.content or b""
                        answer = f" -> {interaction.response.status_code} {body[:300]!r}"
                    request = ""
                    if node is not None:
                        case = node.value
                        request = f" {case.formatted_path} query={case.query} body={case.body!r}"
                    problems.append(
                        f"{check.name}: {recorder.label}{request}{answer}\n    "
                        f"{check.failure_info.failure.title}: {check.failure_info.failure.message}"
                    )
        elif isinstance(event, NonFatalError | FatalError):
            problems.append(f"error: {event!r}")
        elif isinstance(event, EngineFinished):
            problems.extend(f"after run: {failure!r}" for failure in event.failures)
    return sorted(set(problems))


def test_openapi_document_holds_for_every_operation_and_input(
    base_url: str, tenant: Tenant
) -> None:
    problems = run_schemathesis(base_url, tenant.key)
    assert not problems, f"{len(problems)} schemathesis failures:\n" + "\n".join(problems)


def _cursor(prefix: str, last_id: int | str) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{last_id}".encode()).decode().rstrip("=")


# Cursors no generator reaches: well-formed ones whose id is past what a BIGINT holds. The
# prefixes are the services' own (a wrong one would only test the "unknown cursor" answer,
# so the first cursor of each list, id 1, must be accepted).
CURSOR_PREFIXES = {
    "/v1/customer/all": "c",
    "/v1/transaction/payments": "p",
    "/v1/transaction/payments/combined": "p",
}
EDGE_IDS: list[int | str] = [1, 2**63 - 1, 2**63, 2**64, 10**19 - 1, 0, "-1"]


def test_edge_cursors_are_answered_with_the_documented_shapes(
    base_url: str, tenant: Tenant
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=fuzz_config(tenant.key)
    )
    failures: list[str] = []
    for path, prefix in CURSOR_PREFIXES.items():
        operation = schema[path]["GET"]
        for last_id in EDGE_IDS:
            cursor = _cursor(prefix, last_id)
            case = operation.Case(query={"cursor": cursor, "limit": 10})
            response: Any = case.call(headers={"X-API-Key": tenant.key})
            if last_id == 1:
                assert response.status_code == 200, (path, response.text)
            try:
                case.validate_response(
                    response,
                    checks=[
                        schemathesis.checks.not_a_server_error,
                        *_conformance_checks(),
                    ],
                )
            except (AssertionError, BaseExceptionGroup) as exc:
                failures.append(f"{path}?cursor={cursor}: {response.status_code} {exc}")
    assert not failures, "\n".join(failures)


def _conformance_checks() -> list[Any]:
    from schemathesis.specs.openapi import checks

    return [
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
        checks.response_headers_conformance,
    ]


def _with_nul(value: Any) -> Iterator[Any]:
    """`value` once per string leaf, with NUL appended to that one string."""
    if isinstance(value, str):
        yield value + "\x00"
    elif isinstance(value, dict):
        for key, item in value.items():
            for changed in _with_nul(item):
                yield {**value, key: changed}
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for changed in _with_nul(item):
                yield [*value[:index], changed, *value[index + 1 :]]


def test_nul_in_each_string_of_each_operation_is_refused_not_a_server_error(
    base_url: str, tenant: Tenant
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=fuzz_config(tenant.key)
    )
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        # The smallest valid request (deterministic), then NUL in one string at a time: the
        # rest of it is valid, so it reaches the services and the database.
        base = find(
            operation.as_strategy(),
            lambda _case: True,
            settings=settings(
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            ),
        )
        for location in ("path_parameters", "query", "body"):
            for changed in _with_nul(getattr(base, location)):
                parts = {
                    "path_parameters": base.path_parameters,
                    "query": base.query,
                    "body": base.body,
                    location: changed,
                }
                case = operation.Case(media_type=base.media_type, **parts)
                response = case.call(headers={"X-API-Key": tenant.key})
                if response.status_code >= 500 or response.status_code in (200, 201, 202):
                    failures.append(
                        f"{operation.label} {location}={changed!r}: "
                        f"{response.status_code} {response.text[:200]}"
                    )
    assert not failures, "\n".join(failures)
