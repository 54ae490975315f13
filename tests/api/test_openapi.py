"""/openapi.json says what the wire says: money as exact numbers, the flat error body on every
operation, Allow on 405, and docs pages that work without the internet."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.harness.factories import Api, make_product

MONEY_FIELDS = {
    "ProductOut": ["price"],
    "SessionOut": ["price", "paidUsd", "remainingUsd"],
    "InvoiceOut": ["rate"],
    "TokenAmountOut": ["amount"],
}


@pytest.fixture(scope="module")
def document(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_money_in_answers_is_documented_as_an_exact_number(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, fields in MONEY_FIELDS.items():
        for field in fields:
            prop = schemas[name]["properties"][field]
            assert prop["type"] == "number", (name, field, prop)
            assert "exact" in prop["description"], (name, field, prop)
    # No answer anywhere declares a decimal as a string (pydantic's default for Decimal).
    assert "[+-]?0*\\\\d*" not in str(document)


def test_money_in_requests_is_a_number_or_a_plain_decimal_string(
    document: dict[str, Any], api: Api
) -> None:
    price = document["components"]["schemas"]["ProductCreate"]["properties"]["price"]
    assert [branch["type"] for branch in price["anyOf"]] == ["number", "string"]
    pattern = re.compile(price["anyOf"][1]["pattern"])
    assert pattern.search("9.99")
    assert pattern.search("1000000000000")
    assert not pattern.search("1e2")
    assert not pattern.search("1000000000001")
    for refused in ("1e2", " 9.99", "1_000", "-1"):
        response = api.post("/product", json={"name": "P", "description": "D", "price": refused})
        assert response.status_code == 422, (refused, response.text)
        assert response.json()["param"] == "price"


def test_price_with_30_significant_digits_comes_back_digit_for_digit(api: Api) -> None:
    product = api.post(
        "/product",
        content=b'{"name":"P","description":"D","price":999999999999.999999999999999999}',
        headers={"Content-Type": "application/json"},
    )
    assert product.status_code == 200, product.text
    assert b'"price":999999999999.999999999999999999' in product.content
    again = make_product(api, price="0.000000000000000001")
    assert again["price"] == pytest.approx(1e-18)


def test_every_operation_documents_the_flat_error_body(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Error"]["required"]) == {"error", "code", "param"}
    error_ref = {"$ref": "#/components/schemas/Error"}
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        expected = {"413", "429"}
        if operation.get("security"):
            expected |= {"401", "404"}
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("422")
        if method in ("post", "put", "patch"):
            expected |= {"400", "415", "422"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for code, response in responses.items():
            if code >= "400":
                schema = response["content"]["application/json"]["schema"]
                assert schema == error_ref, (method, path, code)
        assert responses["429"]["headers"]["Retry-After"]["required"] is True


def test_answers_match_the_documented_error_shape(base_url: str, api: Api) -> None:
    missing = httpx.get(f"{base_url}/v1/product")
    assert missing.status_code == 401
    invalid = api.post("/product", json={"name": "P"})
    assert invalid.status_code == 422
    for body in (missing.json(), invalid.json()):
        assert {"error", "code", "param"} <= set(body)
    assert invalid.json()["errors"][0]["param"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/v1/product", "GET, POST"),
        ("PATCH", "/v1/product/", "GET, POST"),
        ("POST", "/v1/product/7", "PUT, DELETE"),
        ("DELETE", "/health", "GET"),
        ("PUT", "/v1/user/all", "GET"),  # not PUT /v1/user/{user_id} with user_id "all"
    ],
)
def test_405_lists_every_allowed_method(base_url: str, method: str, path: str, allow: str) -> None:
    response = httpx.request(method, f"{base_url}{path}", headers={"X-API-Key": "cp_live_x"})
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_this_server(base_url: str, page: str) -> None:
    html = httpx.get(f"{base_url}{page}")
    assert html.status_code == 200
    assert "text/html" in html.headers["content-type"]
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'""", html.text)
    referenced = [a or b for a, b in urls]
    assert referenced, html.text
    assert not re.search(r"https?://", html.text), html.text
    for url in referenced:
        asset = httpx.get(f"{base_url}{url}")
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


def test_webhook_url_whose_host_is_not_a_valid_dns_name_is_a_422(api: Api) -> None:
    overlong_label = "a" * 64
    response = api.post(
        "/transaction/session-checkout",
        json={
            "productName": "P",
            "description": "D",
            "price": "1",
            "webhookUrl": f"https://{overlong_label}.example/hook",
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["param"] == "webhookUrl"
