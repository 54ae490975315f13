"""The checkout page in a real headless browser (Debian's chromium driven by playwright) against
a live API, with payments on anvil devnets found by the real watcher.

The assertions are on the DOM; a screenshot of each state is saved under the test's tmp_path.
Every request the page makes is recorded: none may leave 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from chain.devnet import Devnet, transfer
from core.checkout.context import CheckoutContext
from core.clock import ManualClock
from core.config import Settings
from tests.harness.chains import devnet, drain_async, watcher_settings
from tests.harness.databases import require_or_skip
from tests.harness.factories import Api, Tenant, make_tenant
from tests.harness.mini_app import signed_init_data
from tests.harness.server import live_server

pytestmark = pytest.mark.slow
__all__ = ["devnet"]  # the module-scoped anvil fixture

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def settings(database_url: str, devnet: Devnet) -> Settings:
    return watcher_settings(database_url, devnet)


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Coffee & Co")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        require_or_skip("chromium is not installed (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


class Visit:
    """One browser page with every request it made recorded."""

    def __init__(self, page: Page, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        # A script error or a CSP violation (the console reports those) fails the test.
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    async def text(self, selector: str) -> str:
        return (await self.page.locator(selector).inner_text()).strip()

    async def attribute(self, selector: str, name: str) -> str | None:
        return await self.page.locator(selector).get_attribute(name)


@pytest.fixture
async def visit(browser: Browser, tmp_path: Path) -> AsyncIterator[Any]:
    contexts = []

    async def open_page(url: str, *, locale: str = "en-US") -> Visit:
        context = await browser.new_context(viewport=PHONE, locale=locale)
        contexts.append(context)
        opened = Visit(await context.new_page(), tmp_path)
        visits.append(opened)
        await opened.page.goto(url)
        return opened

    visits: list[Visit] = []
    yield open_page
    for context in contexts:
        await context.close()
    # Nothing the pages asked for left this machine: no CDN, font, analytics or remote script.
    for opened in visits:
        hosts = {urlsplit(url).hostname for url in opened.requests}
        assert hosts <= {"127.0.0.1"}, opened.requests
        # (An answer the test expects, the 404 page or a refused initData, is reported as a
        # failed resource; a script error or a CSP violation is not.)
        assert [e for e in opened.errors if "responded with a status of 4" not in e] == []


def make_session(base: str, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    owner = Api(base, tenant.key)
    key = owner.post("/api-key", json={"name": "page", "userId": tenant.owner_id, "test": True})
    assert key.status_code == 200, key.text
    body = {
        "productName": "Ebook",
        "description": "PDF",
        "price": "10",
        "successUrl": base + "/health?paid={{UUID}}&kind={{TRANSACTION_TYPE}}",
        "cancelUrl": base + "/health?cancelled=1",
        **overrides,
    }
    created = Api(base, key.json()["key"]).post("/transaction/session-checkout", json=body)
    assert created.status_code == 200, created.text
    return dict(created.json())


async def pay(settings: Settings, devnet: Devnet, chain_id: int, address: str, units: int) -> None:
    node = devnet.node(chain_id)
    await asyncio.to_thread(transfer, node.rpc_url, devnet.tokens[chain_id][0], address, units)


async def confirm(settings: Settings, devnet: Devnet, chain_id: int, blocks: int) -> None:
    if blocks:
        await asyncio.to_thread(devnet.node(chain_id).mine, blocks)
    await drain_async(settings)


async def test_page_renders_and_another_network_changes_amount_and_qr_not_the_address(
    base: str, tenant: Tenant, visit: Any
) -> None:
    session = make_session(base, tenant)
    page: Visit = await visit(f"{base}/pay/{session['uuid']}")
    assert await page.text("#organization") == "Coffee & Co"
    assert await page.text("#product") == "Ebook"
    assert await page.text("#address") == session["depositAddress"]
    assert await page.text("#amount") == "10"
    assert await page.attribute("#amount", "data-decimals") == "6"
    qr_six = await page.attribute("#qr", "data-uri")
    assert qr_six is not None
    assert "@31337/transfer" in qr_six
    assert "Native coins" in await page.text("#warning")
    assert await page.page.locator("#qr svg").count() == 1
    # Mobile first: nothing wider than a 390 px phone.
    assert await page.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # The script took over: copy buttons shown, the countdown ticks every second.
    assert await page.page.locator("button.copy").first.is_visible()
    first = await page.text("#countdown")
    await page.page.wait_for_function(
        "t => document.getElementById('countdown').textContent !== t", arg=first, timeout=3000
    )
    await page.shot("waiting")

    # The keyboard alone picks Devnet B (18 decimals): no reload, the same address.
    await page.page.focus("#pair-31338-USDT")
    await page.page.keyboard.press("Enter")
    await page.page.wait_for_selector('#amount[data-chain="31338"]')
    assert await page.text("#amount") == "10"
    assert await page.attribute("#amount", "data-decimals") == "18"
    assert await page.attribute("#amount", "data-base-units") == str(10 * 10**18)
    qr_eighteen = await page.attribute("#qr", "data-uri")
    assert qr_eighteen is not None
    assert "@31338/transfer" in qr_eighteen
    assert qr_eighteen != qr_six
    assert await page.text("#address") == session["depositAddress"]
    assert "chain=31338" in page.page.url
    assert await page.page.evaluate("document.activeElement.id") == "pair-31338-USDT"
    await page.shot("devnet-b")


async def test_devnet_payment_flips_the_page_to_completed_and_lands_on_success_url(
    base: str, tenant: Tenant, settings: Settings, devnet: Devnet, visit: Any
) -> None:
    session = make_session(base, tenant)
    page: Visit = await visit(f"{base}/pay/{session['uuid']}?chain=31337&token=USDT")
    await page.page.wait_for_selector('#status[data-state="waiting"]')
    await pay(settings, devnet, 31337, session["depositAddress"], 10 * 10**6)
    await confirm(settings, devnet, 31337, 0)  # in a block, not yet final
    await page.page.wait_for_selector('#status[data-state="detected"]', timeout=15_000)
    assert "1/2 confirmations" in await page.text("#status-text")
    await page.shot("detected")
    navigations: list[str] = []
    page.page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await confirm(settings, devnet, 31337, 3)
    await page.page.wait_for_selector('#status[data-state="completed"]', timeout=15_000)
    assert "Paid. Thank you!" in await page.text("#status-text")
    await page.shot("completed")
    assert not navigations  # no reload: the live part changed in place
    await page.page.wait_for_url(f"{base}/health?paid={session['uuid']}&kind=payment")


async def test_underpayment_shows_the_remaining_amount(
    base: str, tenant: Tenant, settings: Settings, devnet: Devnet, visit: Any
) -> None:
    session = make_session(base, tenant)
    page: Visit = await visit(f"{base}/pay/{session['uuid']}?chain=31337&token=USDT")
    await page.page.wait_for_selector('#status[data-state="waiting"]')
    await pay(settings, devnet, 31337, session["depositAddress"], 4 * 10**6)
    await confirm(settings, devnet, 31337, 3)
    await page.page.wait_for_selector('#status[data-state="partial"]', timeout=15_000)
    assert "Still to pay: $6" in await page.text("#remaining")
    assert await page.text("#amount") == "6"
    await page.shot("partial")


async def test_expiry_without_reload_explains_money_sent_late(
    database_url: str, settings: Settings, tenant: Tenant, visit: Any
) -> None:
    clock = ManualClock()
    context = CheckoutContext.from_settings(settings, clock=clock)
    with live_server(settings, checkout_context=context) as own:
        session = make_session(own, tenant)
        page: Visit = await visit(f"{own}/pay/{session['uuid']}")
        await page.page.wait_for_selector('#status[data-state="waiting"]')
        assert (await page.text("#countdown")).startswith("Time left to pay: ")
        clock.advance(timedelta(hours=2))
        await page.page.wait_for_selector('#status[data-state="expired"]', timeout=15_000)
        assert "still recorded and reported to the shop" in await page.text("#status-text")
        assert await page.page.locator("#address").count() == 0
        await page.shot("expired")
        await page.page.close()  # before its server stops


async def test_unknown_link_shows_the_friendly_404_page(base: str, visit: Any) -> None:
    page: Visit = await visit(f"{base}/pay/not-a-session")
    assert await page.text("h1") == "Payment not found"
    assert "not valid" in await page.text("#not-found")
    await page.shot("not-found")


async def test_russian_page_and_the_language_switch(base: str, tenant: Tenant, visit: Any) -> None:
    session = make_session(base, tenant)
    page: Visit = await visit(f"{base}/pay/{session['uuid']}", locale="ru-RU")
    assert await page.attribute("html", "lang") == "ru"
    assert "Ждём ваш платёж" in await page.text("#status-text")
    assert await page.text("#address") == session["depositAddress"]
    await page.shot("russian")
    await page.page.click('a[data-lang="en"]')
    await page.page.wait_for_selector('html[lang="en"]')
    assert "Waiting for your payment" in await page.text("#status-text")


MINI_APP_TOKEN = "4242:MINI-APP-BROWSER-TOKEN"
THEME = {"bg_color": "#102030", "text_color": "#f0f0f0", "button_color": "#ff8800"}


def mini_app_url(base: str, uuid: str, init_data: str) -> str:
    fragment = urlencode(
        {
            "tgWebAppData": init_data,
            "tgWebAppVersion": "8.0",
            "tgWebAppThemeParams": json.dumps(THEME),
        }
    )
    return f"{base}/pay/{uuid}?tgWebApp=1#{fragment}"


async def test_mini_app_binds_the_payer_and_follows_the_telegram_theme(
    settings: Settings, tenant: Tenant, visit: Any
) -> None:
    with live_server(settings.model_copy(update={"telegram_bot_token": MINI_APP_TOKEN})) as own:
        session = make_session(own, tenant)
        owner = Api(own, tenant.key)
        signed = signed_init_data(8101, token=MINI_APP_TOKEN)
        page: Visit = await visit(mini_app_url(own, session["uuid"], signed))
        await page.page.wait_for_selector('body[data-telegram="bound"]')
        background = await page.page.evaluate(
            "getComputedStyle(document.getElementById('main')).backgroundColor"
        )
        assert background == "rgb(16, 32, 48)"  # the theme's bg_color
        assert await page.page.locator("#open-telegram").count() == 0  # already in Telegram
        view = owner.get(f"/transaction/session-checkout/{session['uuid']}").json()
        assert view["telegramUserId"] == 8101
        await page.shot("mini-app")

        # Forged initData: refused, and the page stays the plain web page.
        other = make_session(own, tenant)
        forged = signed_init_data(8102, token="4242:SOMEONE-ELSE")
        refused: Visit = await visit(mini_app_url(own, other["uuid"], forged))
        await refused.page.wait_for_selector('body[data-telegram="refused"]')
        assert await refused.text("#address") == other["depositAddress"]
        view = owner.get(f"/transaction/session-checkout/{other['uuid']}").json()
        assert view["telegramUserId"] is None
        await refused.shot("mini-app-refused")
        for opened in (page, refused):
            await opened.page.close()  # before its server stops
