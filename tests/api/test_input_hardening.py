"""No 500 from any input (issue 11, input side): cursors past int64, NUL characters and lone
surrogates anywhere, invalid UTF-8, negative zero, free products versus paid sessions, and one
error shape for every validation failure. The same assertions hold on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import httpx
import pytest

from tests.harness.factories import Api, Tenant, make_customer, make_product

ONE_TIME = {"productName": "P", "description": "D", "price": "5"}
GOOD_PRODUCT = {"name": "P", "description": "D", "price": "1.00"}
PAGINATED = [
    ("/customer/all", "c"),
    ("/transaction/payments", "p"),
    ("/transaction/payments/combined", "p"),
]


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_validation_error(response: httpx.Response, param: str, context: Any = None) -> None:
    """422 naming `param`, in the one shape every validation failure has."""
    assert response.status_code == 422, (context, response.text)
    body = response.json()
    assert body["param"] == param, (context, body)
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["code"]
    assert isinstance(body["errors"], list), (context, body)
    assert {"param": param, "error": body["error"]} in body["errors"], (context, body)


def products(api: Api) -> Any:
    return api.get("/product").json()


# --- 1. cursors --------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "prefix"), PAGINATED)
def test_cursor_past_int64_or_malformed_is_422_naming_cursor(
    api: Api, path: str, prefix: str
) -> None:
    other = "p" if prefix == "c" else "c"
    for text in [
        f"{prefix}:9999999999999999999",
        f"{prefix}:9223372036854775808",
        f"{prefix}:-1",
        f"{prefix}:-9223372036854775809",
        f"{prefix}:",
        f"{prefix}:1e5",
        f"{prefix}: 5",
        f"{prefix}:5\x00",
        f"{other}:5",
        "5",
    ]:
        response = api.get(path, params={"cursor": cursor_of(text)})
        assert_validation_error(response, "cursor", text)
    for raw in ["Yzo5OTk5OTk5OTk5OTk5OTk5OTk5", "!!!", "=", "%", "\u00e9"]:
        response = api.get(path, params={"cursor": raw})
        assert_validation_error(response, "cursor", raw)


@pytest.mark.parametrize(("path", "prefix"), PAGINATED)
def test_cursor_at_the_int64_edges_is_a_valid_page(api: Api, path: str, prefix: str) -> None:
    for number in (0, 1, 2**63 - 1):
        response = api.get(path, params={"cursor": cursor_of(f"{prefix}:{number}")})
        assert response.status_code == 200, (number, response.text)
        assert isinstance(response.json()["items"], list)


# --- 2. NUL characters and lone surrogates -----------------------------------------------------


def test_nul_in_any_body_string_is_422_naming_the_field_and_writes_nothing(
    api: Api, base_url: str, tenant: Tenant
) -> None:
    product = make_product(api)
    customer = make_customer(api)
    papaya = httpx.Client(base_url=base_url + "/api", headers={"X-API-Key": tenant.key})
    before = products(api), api.get("/wallet").json()["nextIndex"]
    nul = "nul\u0000x"
    cases: list[tuple[Api | httpx.Client, str, str, Any, str]] = [
        (api, "POST", "/product", {**GOOD_PRODUCT, "name": nul}, "name"),
        (api, "POST", "/product", {**GOOD_PRODUCT, "description": nul}, "description"),
        (api, "POST", "/product", {**GOOD_PRODUCT, "reference": nul}, "reference"),
        (api, "PUT", f"/product/{product['id']}", {"name": nul}, "name"),
        (
            api,
            "POST",
            "/customer",
            {"name": nul, "lastName": "L", "email": "n@shop.example"},
            "name",
        ),
        (api, "PUT", "/customer", {"uuid": customer["uuid"], "lastName": nul}, "lastName"),
        (
            api,
            "POST",
            "/transaction/session-checkout",
            {**ONE_TIME, "productName": nul},
            "productName",
        ),
        (
            api,
            "POST",
            "/transaction/session-checkout",
            {**ONE_TIME, "description": nul},
            "description",
        ),
        (
            api,
            "POST",
            "/transaction/session-checkout",
            {**ONE_TIME, "customerUUID": nul},
            "customerUUID",
        ),
        (papaya, "POST", "/invoice", {"rate": 5, "title": nul}, "title"),
        (papaya, "POST", "/invoice", {"rate": 5, "metadata": {"order": nul}}, "metadata.order"),
        (
            papaya,
            "POST",
            "/invoice",
            {"rate": 5, "metadata": {"deep": {"list": ["ok", {"x": nul}]}}},
            "metadata.deep.list.x",
        ),
        (papaya, "POST", "/invoice", {"rate": 5, "metadata": {"k\u0000": 1}}, "metadata"),
        # A JSON string escape that is half a surrogate pair is not text either (no UTF-8 form).
        (api, "POST", "/product", {**GOOD_PRODUCT, "name": "half \ud800"}, "name"),
        (papaya, "POST", "/invoice", {"rate": 5, "metadata": {"k": "\udfff"}}, "metadata.k"),
    ]
    for client, method, path, body, param in cases:
        # json.dumps escapes NUL as \u0000 and a lone surrogate as \ud800, as clients send them.
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        response = client.request(method, path, content=raw, headers=headers)
        assert_validation_error(response, param, (path, body))
        assert "NUL" in response.json()["error"] or "surrogate" in response.json()["error"]
    assert (products(api), api.get("/wallet").json()["nextIndex"]) == before


def test_nul_in_a_path_parameter_is_404_and_in_a_query_parameter_is_422(
    api: Api, base_url: str, tenant: Tenant
) -> None:
    make_product(api, reference="REF-1")
    for path in [
        "/product/reference/a%00b",
        "/product/reference/REF-1%00",
        "/transaction/session-checkout/a%00b",
        "/customer/email/a%00b%40shop.example",
        "/customer/uuid/a%00b",
        "/transaction/payment/a%00b",
    ]:
        response = api.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"
    cancel = api.post("/transaction/session-checkout/a%00b/cancel")
    assert cancel.status_code == 404, cancel.text
    page = httpx.get(base_url + "/pay/a%00b")
    assert page.status_code == 404, page.text

    for path, query, param in [
        (
            "/transaction/status",
            "transactionUUID=a%00b&transactionStatusType=payment",
            "transactionUUID",
        ),
        (
            "/transaction/status",
            "transactionUUID=abc&transactionStatusType=pay%00ment",
            "transactionStatusType",
        ),
        ("/customer/all", "cursor=%00", "cursor"),
        ("/product", "unknown=%00", "unknown"),
    ]:
        response = api.get(f"{path}?{query}")
        assert_validation_error(response, param, query)
    papaya = httpx.Client(base_url=base_url + "/api", headers={"X-API-Key": tenant.key})
    assert_validation_error(papaya.get("/subscriptions?page=1%00"), "page")


# --- 3. invalid UTF-8 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name":"\xff\xfe","description":"D","price":"1"}',
        b'{"name":"\xc3","description":"D","price":"1"}',
        b'{"name":"\xed\xa0\x80","description":"D","price":"1"}',  # an encoded surrogate
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser recurses
    ],
    ids=["bad-start-byte", "truncated", "encoded-surrogate", "too-deep"],
)
def test_invalid_utf8_or_too_deep_body_is_400_invalid_json(api: Api, raw: bytes) -> None:
    before = products(api)
    response = api.post("/product", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "Malformed JSON in request body",
        "code": "invalid_json",
        "param": "body",
    }
    assert products(api) == before


def nested(depth: int, leaf: Any = "v") -> Any:
    for _ in range(depth):
        leaf = {"k": leaf}
    return leaf


def test_a_body_nested_past_the_limit_is_400_even_with_the_recursion_limit_web3_sets(
    base_url: str, tenant: Tenant, api: Api
) -> None:
    # Importing web3 (py_ecc) raises the recursion limit to 100,000; the JSON parser recursed
    # that deep on the C stack and the whole process died of a segmentation fault.
    papaya = httpx.Client(base_url=base_url + "/api", headers={"X-API-Key": tenant.key})
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
            response = api.post(
                "/product", content=raw, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 400, response.text
            assert response.json()["code"] == "invalid_json"
        # 64 levels is the limit: metadata that deep is still taken (the invoice is made), 65 not.
        deepest = {"rate": 5, "metadata": nested(63)}  # the body, then 63 objects: 64 levels
        assert papaya.post("/invoice", json=deepest).status_code == 200
        too_deep = papaya.post("/invoice", json={"rate": 5, "metadata": nested(64)})
        assert too_deep.status_code == 400, too_deep.text
        assert too_deep.json()["code"] == "invalid_json"
        # Brackets inside strings are text, not nesting.
        text = {"rate": 5, "metadata": {"note": "[" * 1000 + "{" * 1000}}
        assert papaya.post("/invoice", json=text).status_code == 200
    finally:
        sys.setrecursionlimit(limit)
    assert api.get("/product").status_code == 200  # and the server is still there


# --- 4. negative zero and exponent forms -------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "written"),
    [
        ("-0.0", "0"),
        ("-0.00", "0"),
        ("-0E+3", "0"),
        ("0E-10", "0"),
        ("0.000", "0"),
        ("1E+2", "100"),
        ("1E-7", "0.0000001"),
        ("0.000000100", "0.0000001"),
        ("12.500", "12.5"),
    ],
)
def test_prices_are_written_as_plain_normalized_decimals(api: Api, sent: str, written: str) -> None:
    """`sent` is a JSON number literal, exactly as a client writes it."""
    raw = b'{"name":"P","description":"D","price":' + sent.encode() + b"}"
    created = api.post("/product", content=raw, headers={"Content-Type": "application/json"})
    assert created.status_code == 200, created.text
    assert f'"price":{written},' in created.text, created.text
    read = api.get(f"/product/id/{created.json()['id']}")
    assert f'"price":{written},' in read.text, read.text
    updated = api.put(
        f"/product/{created.json()['id']}",
        content=b'{"price":' + sent.encode() + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert updated.status_code == 200, updated.text
    assert f'"price":{written},' in updated.text, updated.text


# --- 5 and 6. free products, paid sessions, one validation shape --------------------------------


def test_products_may_be_free_but_sessions_must_cost_something(api: Api) -> None:
    free = api.post("/product", json={**GOOD_PRODUCT, "price": "0"})
    assert free.status_code == 200, free.text
    assert free.json()["price"] == 0
    made_free = api.put(f"/product/{make_product(api)['id']}", json={"price": 0})
    assert made_free.status_code == 200, made_free.text
    assert made_free.json()["price"] == 0

    before = api.get("/wallet").json()["nextIndex"]
    for raw in [
        b'{"productName":"P","description":"D","price":0}',
        b'{"productName":"P","description":"D","price":"0"}',
        b'{"productName":"P","description":"D","price":-0.0}',
        b'{"productName":"P","description":"D","price":0E-10}',
        b'{"productId":%d}' % free.json()["id"],
        b'{"productId":%d}' % made_free.json()["id"],
    ]:
        response = api.post(
            "/transaction/session-checkout",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert_validation_error(response, "price", raw)
        assert response.json()["code"] == "invalid_input"
        assert response.json()["errors"] == [
            {"param": "price", "error": "price must be greater than 0"}
        ]
    assert api.get("/wallet").json()["nextIndex"] == before
    paid = api.post("/transaction/session-checkout", json={**ONE_TIME, "price": "0.01"})
    assert paid.status_code == 200, paid.text


def test_hand_raised_validation_errors_list_themselves_under_errors(
    api: Api, base_url: str, tenant: Tenant
) -> None:
    inactive = make_product(api)
    assert api.put(f"/product/{inactive['id']}", json={"isActive": False}).status_code == 200
    papaya = httpx.Client(base_url=base_url + "/api", headers={"X-API-Key": tenant.key})
    checks = [
        (
            api.post("/transaction/session-checkout", json={"description": "D", "price": "5"}),
            "productName",
        ),
        (
            api.post("/transaction/session-checkout", json={"productId": inactive["id"]}),
            "productId",
        ),
        (
            api.post(
                "/transaction/session-checkout", json={**ONE_TIME, "webhookUrl": "ftp://x.example"}
            ),
            "webhookUrl",
        ),
        (papaya.post("/invoice", json={"rate": 0}), "rate"),
        (
            api.post(
                "/api-key",
                json={"name": "k", "userId": tenant.owner_id, "expiresAt": "2001-01-01T00:00:00Z"},
            ),
            "expiresAt",
        ),
        (api.get("/customer/all", params={"cursor": "bad"}), "cursor"),
    ]
    for response, param in checks:
        assert_validation_error(response, param)
