"""The checkout page `/pay/{uuid}` over real HTTP: HTML for a browser, the same JSON as before
for API clients, security headers, languages, the live status (polling and Server-Sent
Events), payments recorded through the real payments service, and friendly 404s."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from core.checkout import tasks as checkout_tasks
from core.checkout.context import CheckoutContext
from core.db import create_engine, create_sessionmaker, transaction
from tests.harness import mini_app
from tests.harness.factories import (
    Api,
    Tenant,
    make_customer,
    make_product,
    make_tenant,
    pay_session,
    test_settings,
)
from tests.harness.server import live_server

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
PUBLIC_KEYS = {
    "uuid",
    "productName",
    "description",
    "price",
    "organizationName",
    "status",
    "underpaid",
    "overpaid",
    "late",
    "paidUsd",
    "remainingUsd",
    "expiresAt",
    "depositAddress",
    "amounts",
    "botUrl",
    "options",
    "test",
    "notice",
}
SUCCESS_URL = "https://merchant.example/thanks/{{UUID}}?kind={{TRANSACTION_TYPE}}"
CANCEL_URL = "https://merchant.example/cart"


def create_session(api: Api, **overrides: Any) -> dict[str, Any]:
    body = {
        "productName": "Ebook <b>",
        "description": "PDF & EPUB",
        "price": "10",
        "successUrl": SUCCESS_URL,
        "cancelUrl": CANCEL_URL,
        **overrides,
    }
    response = api.post("/transaction/session-checkout", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def page(base_url: str, uuid: str, query: str = "", **headers: str) -> httpx.Response:
    return httpx.get(f"{base_url}/pay/{uuid}{query}", headers={**HTML, **headers}, timeout=30)


def status(base_url: str, uuid: str, query: str = "") -> dict[str, Any]:
    response = httpx.get(f"{base_url}/pay/{uuid}/status{query}", headers=JSON, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def element_text(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert found, f"no #{element_id} in the page"
    return found.group(1).strip()


def test_browser_gets_the_page_with_organization_address_and_strict_headers(
    base_url: str, sandbox: Api
) -> None:
    session = create_session(sandbox)
    response = page(base_url, session["uuid"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'self'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "http" not in csp
    assert "*" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"

    html = response.text
    organization = sandbox.get("/transaction/session-checkout/" + session["uuid"]).json()[
        "organizationName"
    ]
    assert element_text(html, "organization") == organization.replace("&", "&amp;")
    assert session["depositAddress"] in element_text(html, "address")
    assert element_text(html, "product") == "Ebook &lt;b&gt;"  # escaped, not markup
    assert "PDF &amp; EPUB" in html
    assert "<b>$10</b>" in element_text(html, "price") + "</b>"
    assert element_text(html, "amount") == "10"  # 10 USDT on Devnet A (the first pair)
    assert "<svg" in html
    assert "qr-code" in html
    assert "Native coins" in html
    assert "withdrawal fees" in html
    assert "Send only USDT" in html
    assert 'id="countdown"' in html
    assert "Time left to pay: 59:5" in html
    assert f'href="{session["botUrl"]}"' in html  # Open in Telegram
    assert f'href="{CANCEL_URL}"' in html
    # Only same-origin files: no inline script, nothing from another host.
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    assert all('src="/static/checkout/' in s for s in scripts)
    assert not re.search(r'(src|href)="(https?:)?//(?!t\.me|merchant\.example)', html)
    for asset in ("checkout.js", "checkout.css"):
        served = httpx.get(f"{base_url}/static/checkout/{asset}")
        assert served.status_code == 200
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "http://" not in served.text
        assert "https://" not in served.text


def test_api_clients_keep_todays_json(base_url: str, sandbox: Api) -> None:
    session = create_session(sandbox)
    for headers in ({"Accept": "application/json"}, {}, {"Accept": "*/*"}):
        response = httpx.get(f"{base_url}/pay/{session['uuid']}", headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == PUBLIC_KEYS
        assert body["depositAddress"] == session["depositAddress"]
        assert body["price"] == 10
    missing = httpx.get(f"{base_url}/pay/no-such-session", headers=JSON)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_russian_by_accept_language_and_by_the_switch_link(base_url: str, sandbox: Api) -> None:
    session = create_session(sandbox)
    russian = page(base_url, session["uuid"], **{"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert '<html lang="ru">' in russian.text
    assert "Ждём ваш платёж" in russian.text
    assert "Сумма к отправке" in russian.text
    assert "Отправляйте на этот адрес только USDT" in russian.text
    # The switch link wins over the header, both ways.
    english = page(base_url, session["uuid"], "?lang=en", **{"Accept-Language": "ru"})
    assert '<html lang="en">' in english.text
    assert "Waiting for your payment" in english.text
    assert 'href="?chain=31337&amp;token=USDT&amp;lang=ru"' in english.text
    switched = page(base_url, session["uuid"], "?chain=31337&token=USDT&lang=ru")
    assert "Ждём ваш платёж" in switched.text
    # A language we do not have (or a weight of 0) falls back to English.
    assert (
        "Waiting for your payment"
        in page(base_url, session["uuid"], **{"Accept-Language": "de, ru;q=0"}).text
    )


def test_another_network_changes_amount_and_qr_but_not_the_address(
    base_url: str, sandbox: Api
) -> None:
    session = create_session(sandbox)
    six = page(base_url, session["uuid"], "?chain=31337&token=USDT").text
    eighteen = page(base_url, session["uuid"], "?chain=31338&token=USDT").text
    assert 'data-base-units="10000000"' in six
    assert f'data-base-units="{10 * 10**18}"' in eighteen
    assert "@31337/transfer" in six
    assert "@31338/transfer" in eighteen
    assert element_text(six, "address") == element_text(eighteen, "address")
    assert element_text(six, "address") == session["depositAddress"]
    # A pair the session does not accept falls back to an accepted one.
    unknown = page(base_url, session["uuid"], "?chain=1&token=DOGE").text
    assert 'data-chain="31337"' in unknown


def test_underpayment_shows_the_remaining_amount_in_the_chosen_token(
    base_url: str, sandbox: Api, database_url: str
) -> None:
    session = create_session(sandbox)
    pay_session(database_url, session["depositAddress"], 4 * 10**6)
    live = status(base_url, session["uuid"], "?chain=31337&token=USDT")
    assert live["state"] == "partial"
    assert live["final"] is False
    assert "Still to pay: <b>$6</b>" in live["html"]
    html = page(base_url, session["uuid"], "?chain=31338&token=USDT").text
    assert "Received $4 of $10" in html
    assert element_text(html, "amount") == "6"
    assert f'data-base-units="{6 * 10**18}"' in html
    assert f"uint256={6 * 10**18}" in html


def test_paid_session_shows_the_confirmation_and_the_filled_in_success_url(
    base_url: str, sandbox: Api, database_url: str
) -> None:
    session = create_session(sandbox)
    pay_session(database_url, session["depositAddress"], 10 * 10**6)
    live = status(base_url, session["uuid"])
    expected = f"https://merchant.example/thanks/{session['uuid']}?kind=payment"
    assert live["state"] == "completed"
    assert live["final"] is True
    assert live["redirect"] == expected
    html = page(base_url, session["uuid"]).text
    assert "Paid. Thank you!" in html
    assert f'data-redirect="{expected}"' in html
    assert 'data-redirect-after="3"' in html
    assert 'id="address"' not in html  # nothing more to pay
    assert 'id="cancel"' not in html


def test_stream_sends_the_status_then_the_payment_then_ends(
    base_url: str, sandbox: Api, database_url: str
) -> None:
    session = create_session(sandbox)
    url = f"{base_url}/pay/{session['uuid']}/events?lang=en"
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", url, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "status":
                seen.append(json.loads(line.removeprefix("data: ")))
                if len(seen) == 1:
                    assert seen[0]["state"] == "waiting"
                    pay_session(database_url, session["depositAddress"], 10 * 10**6)
            elif line.startswith("data: ") and event == "end":
                break
    assert [s["state"] for s in seen] == ["waiting", "completed"]
    assert seen[-1]["redirect"].startswith("https://merchant.example/thanks/")


def test_expired_session_explains_what_happens_to_money_sent_late(fresh_url: str) -> None:
    tenant = make_tenant(fresh_url, test=True)
    with live_server(test_settings(fresh_url)) as base:
        sandbox = Api(base, _test_key(base, tenant))
        session = create_session(sandbox)

        async def expire() -> None:
            engine = create_engine(fresh_url, pool=False)
            try:
                context = CheckoutContext.from_settings(test_settings(fresh_url))
                async with transaction(create_sessionmaker(engine)) as db:
                    later = datetime.now(UTC) + timedelta(hours=2)
                    assert await checkout_tasks.expire(db, later, context=context) == 1
            finally:
                await engine.dispose()

        asyncio.run(expire())
        live = status(base, session["uuid"])
        assert live["state"] == "expired"
        assert live["final"] is True
        html = page(base, session["uuid"]).text
        assert "still recorded and reported to the shop" in html
        assert 'id="address"' not in html
        assert 'id="countdown"' not in html


def _test_key(base: str, tenant: Tenant) -> str:
    created = Api(base, tenant.key).post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    assert created.status_code == 200, created.text
    return str(created.json()["key"])


@pytest.mark.parametrize(
    "path",
    [
        "00000000-0000-4000-8000-000000000000",
        "x" * 500,
        quote("платёж", safe=""),
        "..%2F..%2Fetc%2Fpasswd",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "a%00b",
        "a/b/c",
        "",
    ],
)
def test_unknown_or_malformed_links_get_a_friendly_404_page(base_url: str, path: str) -> None:
    response = page(base_url, path, **{"Accept-Language": "en"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Payment not found" in response.text
    assert "Traceback" not in response.text
    assert "<script>alert" not in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    russian = page(base_url, path, "?lang=ru")
    assert russian.status_code == 404
    assert "Платёж не найден" in russian.text


def test_the_page_shows_nothing_a_payer_should_not_see(
    base_url: str, sandbox: Api, tenant: Tenant
) -> None:
    customer = make_customer(sandbox, email="secret-customer@shop.example")
    hook = "http://127.0.0.1:9/secret-path"
    session = create_session(sandbox, webhookUrl=hook, customerUUID=customer["uuid"])
    other = create_session(sandbox)
    texts = [
        page(base_url, session["uuid"]).text,
        str(status(base_url, session["uuid"])),
        httpx.get(f"{base_url}/pay/{session['uuid']}", headers=JSON).text,
    ]
    for text in texts:
        assert "secret-customer" not in text
        assert tenant.owner_email not in text
        assert "secret-path" not in text
        assert hook not in text
        assert other["uuid"] not in text
        assert other["depositAddress"] not in text


def test_subscription_page_shows_period_and_trial_and_a_telegram_claim_once_paid(
    base_url: str, sandbox: Api, database_url: str
) -> None:
    product = make_product(sandbox, price="5")
    body = {
        "productId": product["id"],
        "successUrl": SUCCESS_URL,
        "options": {
            "subscriptionType": "subscription",
            "frequency": {"value": 30, "unit": "days"},
            "trialPeriod": {"value": 7, "unit": "days"},
        },
    }
    created = sandbox.post("/transaction/session-checkout", json=body)
    assert created.status_code == 200, created.text
    session = created.json()
    html = page(base_url, session["uuid"]).text
    assert "every 30 days" in element_text(html, "price") + html
    assert "Free trial: 1 weeks" in html
    pay_session(database_url, session["depositAddress"], 5 * 10**6)
    paid = page(base_url, session["uuid"]).text
    assert "Paid. Thank you!" in paid
    assert f"/pay/{session['uuid']}/claim" in paid
    assert "data-redirect-after" not in paid  # the payer presses for the link first
    claim = httpx.post(f"{base_url}/pay/{session['uuid']}/claim?lang=en", headers=HTML)
    assert claim.status_code == 200
    link = re.search(r'href="(https://t\.me/chainpay_test_bot\?start=claim-[\w-]+)"', claim.text)
    assert link, claim.text
    assert len(link.group(1).split("start=")[1]) <= 64  # Telegram's start parameter limit


def test_one_time_session_offers_no_claim(base_url: str, sandbox: Api, database_url: str) -> None:
    session = create_session(sandbox)
    pay_session(database_url, session["depositAddress"], 10 * 10**6)
    claim = httpx.post(f"{base_url}/pay/{session['uuid']}/claim", headers=HTML)
    assert claim.status_code == 303
    assert claim.headers["location"].startswith(f"/pay/{session['uuid']}?")


def test_mini_app_page_may_be_framed_by_telegram_web_only(base_url: str, sandbox: Api) -> None:
    session = create_session(sandbox)
    plain = page(base_url, session["uuid"])
    assert "web.telegram.org" not in plain.headers["content-security-policy"]
    assert plain.headers["x-frame-options"] == "SAMEORIGIN"
    mini = page(base_url, session["uuid"], "?tgWebApp=1")
    assert (
        "frame-ancestors 'self' https://web.telegram.org" in mini.headers["content-security-policy"]
    )
    assert "x-frame-options" not in mini.headers


BOT_TOKEN = "4242:MINI-APP-TEST-TOKEN"


def signed_init_data(
    user_id: int, *, token: str = BOT_TOKEN, signed_at: datetime | None = None
) -> str:
    return mini_app.signed_init_data(user_id, token=token, signed_at=signed_at)


def test_mini_app_binds_the_session_to_the_telegram_user_only_with_valid_init_data(
    database_url: str, sandbox: Api, base_url: str
) -> None:
    session = create_session(sandbox)
    uuid = session["uuid"]

    def bound() -> Any:
        return sandbox.get(f"/transaction/session-checkout/{uuid}").json()["telegramUserId"]

    # Without a bot token nothing can be checked: refused.
    unconfigured = httpx.post(f"{base_url}/pay/{uuid}/telegram", json={"initData": "x=1"})
    assert unconfigured.status_code == 403
    with live_server(test_settings(database_url, telegram_bot_token=BOT_TOKEN)) as base:
        url = f"{base}/pay/{uuid}/telegram"
        forged = signed_init_data(7001, token="4242:ANOTHER-BOT")
        stale = signed_init_data(7001, signed_at=datetime.now(UTC) - timedelta(hours=3))
        tampered = signed_init_data(7001).replace("Ann", "Eve")
        for refused in (forged, stale, tampered, "not init data"):
            response = httpx.post(url, json={"initData": refused})
            assert response.status_code == 403, response.text
            assert response.json()["code"] == "invalid_init_data"
            assert response.json()["param"] == "initData"
        assert bound() is None

        accepted = httpx.post(url, json={"initData": signed_init_data(7001)})
        assert accepted.status_code == 200, accepted.text
        assert bound() == 7001
        # Another Telegram account, correctly signed, cannot take the session over.
        other = httpx.post(url, json={"initData": signed_init_data(7002)})
        assert other.status_code == 403
        assert other.json()["code"] == "not_yours"
        assert bound() == 7001
        again = httpx.post(url, json={"initData": signed_init_data(7001)})
        assert again.status_code == 200


def test_pay_as_you_go_page_asks_for_no_payment_and_points_to_telegram(
    base_url: str, sandbox: Api
) -> None:
    product = make_product(sandbox, price="0.25")
    body = {
        "productId": product["id"],
        "options": {
            "subscriptionType": "payAsYouGo",
            "frequency": {"value": 30, "unit": "days"},
            "freeCredits": "1.5",
        },
    }
    created = sandbox.post("/transaction/session-checkout", json=body)
    assert created.status_code == 200, created.text
    session = created.json()
    html = page(base_url, session["uuid"]).text
    assert "Pay as you go: <b>$0.25</b> per unit, billed every 30 days" in html
    assert "Free credits: $1.50" in html
    assert "Nothing to pay now" in html
    assert 'id="amount"' not in html  # started, not paid
    assert 'id="open-telegram"' in html
