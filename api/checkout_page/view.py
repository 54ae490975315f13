"""How the checkout page looks: one Jinja2 environment per language (the gettext catalogs of
core/locales, shared with the bot), the live part the page refreshes without reload, and the
security headers every page answer carries."""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import segno
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from core.checkout.state import SessionStatus
from core.i18n import DEFAULT_LANGUAGE, DOMAIN, LANGUAGES, LOCALES_DIR
from core.money import base_units_to_tokens, normalize
from core.telegram.payer import CardQuote, PaymentCard

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_URL = "/static/checkout"
MINI_APP_FLAG = "tgWebApp"
# Telegram's web clients (web.telegram.org/k, /a) frame a Mini App; nothing else may frame the page.
TELEGRAM_WEB_CLIENTS = "https://web.telegram.org"
# The completed page waits this long on its confirmation before going on to successUrl.
REDIRECT_SECONDS = 3

# What the payer sees, from the session's status and progress.
WAITING, DETECTED, PARTIAL = "waiting", "detected", "partial"
COMPLETED, EXPIRED, CANCELLED, FAILED = "completed", "expired", "cancelled", "failed"
FINAL_STATES = frozenset({COMPLETED, EXPIRED, CANCELLED, FAILED})


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What the payer asked the page for: language, network + token, opened as a Mini App."""

    language: str = DEFAULT_LANGUAGE
    chain_id: int | None = None
    token: str | None = None
    mini_app: bool = False

    @classmethod
    def parse(cls, params: Any, accept_language: str | None) -> PageQuery:
        """From the query string (`lang`, `chain`, `token`, `tgWebApp`); junk is ignored."""
        chain = str(params.get("chain") or "")
        token = str(params.get("token") or "")[:20]
        return cls(
            language=choose_language(params.get("lang"), accept_language),
            chain_id=int(chain)
            if chain.isascii() and chain.isdigit() and len(chain) < 19
            else None,
            token=token if token.isascii() and token.isalnum() else None,
            mini_app=str(params.get(MINI_APP_FLAG) or "") in ("1", "true"),
        )

    def query(self, **changes: Any) -> str:
        wanted = replace(self, **changes)
        params: dict[str, str] = {}
        if wanted.chain_id is not None:
            params["chain"] = str(wanted.chain_id)
        if wanted.token:
            params["token"] = wanted.token
        params["lang"] = wanted.language
        if wanted.mini_app:
            params[MINI_APP_FLAG] = "1"
        return urlencode(params)


def choose_language(requested: str | None, accept_language: str | None) -> str:
    """`?lang=` if it is one of ours, else the best of Accept-Language we have, else English."""
    if requested and requested.strip().lower() in LANGUAGES:
        return requested.strip().lower()
    ranked: list[tuple[Decimal, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, parameters = part.strip().partition(";")
        weight = Decimal(1)
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = Decimal(value.strip())
            except InvalidOperation:
                continue
        base = tag.split("-")[0].strip().lower()
        if base in LANGUAGES and weight.is_finite() and weight > 0:
            ranked.append((-weight, position, base))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def wants_html(accept: str | None) -> bool:
    """A browser (text/html ranked above application/json); curl, SDKs and `*/*` get JSON."""
    weights: dict[str, Decimal] = {}
    for part in (accept or "").split(",")[:64]:
        media, _, parameters = part.strip().partition(";")
        weight = Decimal(1)
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = Decimal(value.strip())
                except InvalidOperation:
                    weight = Decimal(0)
        media = media.strip().lower()
        if weight.is_finite():
            weights[media] = max(weight, weights.get(media, Decimal(0)))
    html = max(
        weights.get("text/html", Decimal(0)), weights.get("application/xhtml+xml", Decimal(0))
    )
    return html > 0 and html > weights.get("application/json", Decimal(0))


def security_headers(*, mini_app: bool = False) -> dict[str, str]:
    """A strict policy: this origin's files only, no inline script, framed only by Telegram's
    web clients when opened as a Mini App."""
    ancestors = f"'self' {TELEGRAM_WEB_CLIENTS}" if mini_app else "'self'"
    policy = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if not mini_app:
        headers["X-Frame-Options"] = "SAMEORIGIN"
    return headers


def usd(amount: Decimal) -> str:
    """$19.99, $5, $0.50: exact, cents shown when there are any."""
    whole, _dot, fraction = f"{amount.normalize():f}".partition(".")
    if len(fraction) == 1:
        fraction += "0"
    return "$" + whole + ("." + fraction if fraction else "")


def tokens(amount: Decimal) -> str:
    return f"{normalize(amount):f}"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def clock_text(left: timedelta) -> str:
    """1:02:03, 4:05 (what the countdown shows before its script takes over)."""
    seconds = max(0, int(left.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def qr_svg(data: str, label: str) -> Markup:
    """The QR code as inline SVG (no image request, nothing for the CSP to allow)."""
    buffer = io.BytesIO()
    segno.make(data, error="m").save(
        buffer,
        kind="svg",
        xmldecl=False,
        svgns=True,
        svgclass="qr-code",
        lineclass=None,
        omitsize=True,
        border=3,
        title=label,
    )
    return Markup(buffer.getvalue().decode())  # segno's own markup; `label` is escaped by it


@functools.cache
def translations_of(language: str) -> NullTranslations:
    return Translations.load(str(LOCALES_DIR), [language], domain=DOMAIN)


def gettext(language: str, key: str) -> str:
    return str(translations_of(language).gettext(key))


@functools.cache
def environment(language: str) -> Environment:
    """Templates in one language: `_()` for plain texts (Jinja's i18n extension) and `t()` for
    catalog texts that carry markup (<b>, <code>) with their placeholders escaped."""
    translations = translations_of(language)
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations, newstyle=False)  # type: ignore[attr-defined]

    def t(key: str, **values: object) -> Markup:
        # The catalogs are ours (trusted markup); the values are escaped by Markup.format.
        return Markup(translations.gettext(key)).format(**values)

    def period(seconds: int) -> str:
        days, rest = divmod(seconds, 86_400)
        if rest == 0 and days % 7 == 0 and days < 28:
            return translations.gettext("period.weeks").format(n=days // 7)
        if rest == 0:
            return translations.gettext("period.days").format(n=days)
        return translations.gettext("period.hours").format(n=max(1, seconds // 3600))

    env.globals.update(t=t, period=period, usd=usd, tokens=tokens, when=when, static=STATIC_URL)
    return env


def state_of(card: PaymentCard, now: datetime) -> str:
    status = SessionStatus(card.status)
    if status == SessionStatus.COMPLETED:
        return COMPLETED
    if status == SessionStatus.CANCELLED:
        return CANCELLED
    if status == SessionStatus.FAILED:
        return FAILED
    if status == SessionStatus.EXPIRED:
        return EXPIRED
    if status == SessionStatus.WAITING_CONFIRMATION or card.progress.confirmations is not None:
        return DETECTED
    if card.is_open and card.subscription_status is None and card.expires_at <= now:
        # Past the deadline the page says so at once, before the expiry job gets to it.
        return EXPIRED
    if card.paid_usd > 0 and card.remaining_usd > 0:
        return PARTIAL
    return WAITING


def chosen_quote(card: PaymentCard, query: PageQuery) -> CardQuote | None:
    """The pair asked for, else the one picked in Telegram, else the first accepted one."""
    for quote_ in card.quotes:
        if quote_.chain_id == query.chain_id and (
            query.token is None or quote_.symbol.lower() == query.token.lower()
        ):
            return quote_
    return card.chosen or (card.quotes[0] if card.quotes else None)


@dataclass(frozen=True, slots=True)
class PageData:
    """A session as its page shows it: the payer's card and the links around it."""

    card: PaymentCard
    bot_url: str | None
    cancel_url: str | None
    # A paid subscription not yet bound to a Telegram account, with a bot to bind it.
    claimable: bool


@dataclass(frozen=True, slots=True)
class Live:
    """The part of the page that changes while the payer waits, as the stream sends it."""

    state: str
    html: str
    redirect: str | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def payload(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "final": self.final,
            "redirect": self.redirect,
            "html": self.html,
        }

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.payload(), sort_keys=True).encode()).hexdigest()


def _is_web(url: str | None) -> bool:
    return bool(url) and str(url).lower().startswith(("https://", "http://"))


def _context(data: PageData, query: PageQuery, now: datetime) -> dict[str, Any]:
    card = data.card
    base = "/pay/" + quote(card.uuid, safe="")
    state = state_of(card, now)
    chosen = chosen_quote(card, query)
    if chosen is not None:
        query = replace(query, chain_id=chosen.chain_id, token=chosen.symbol)
    pairs = [
        {
            "quote": q,
            "selected": q == chosen,
            "query": query.query(chain_id=q.chain_id, token=q.symbol),
            "id": f"pair-{q.chain_id}-{q.symbol}",
        }
        for q in card.quotes
    ]
    # A subscription's open bill (a renewal, a pay-as-you-go bill) is paid to the same address.
    renewal = card.subscription_status is not None and card.bill_usd is not None
    # Pay-as-you-go is started (in Telegram), not paid: only its bills are.
    paying = state in (WAITING, PARTIAL) or (state == DETECTED and card.is_open)
    payable = renewal or (paying and not card.payg)
    due = card.amount_due(chosen) if chosen is not None else 0
    qr = None
    if chosen is not None and payable:
        qr = qr_svg(card.uri_for(chosen), gettext(query.language, "page.qr"))
    redirect = card.success_redirect if state == COMPLETED and _is_web(card.success_url) else None
    return {
        "card": card,
        "data": data,
        "state": state,
        "query": query,
        "language": query.language,
        "languages": [(code, query.query(language=code)) for code in LANGUAGES],
        "base": base,
        "pairs": pairs,
        "chosen": chosen,
        "payable": payable,
        "due": base_units_to_tokens(due, decimals=chosen.decimals) if chosen else None,
        "due_base_units": due,
        "qr": qr,
        "redirect": redirect,
        # A subscription to bind in Telegram: the payer presses for the link, no redirect.
        "auto_redirect": redirect is not None and not data.claimable and not renewal,
        "redirect_seconds": REDIRECT_SECONDS,
        "now_ts": int(now.timestamp()),
        "time_left": clock_text(card.expires_at - now),
        "expires_ts": int(card.expires_at.timestamp()),
        "show_deadline": payable and card.subscription_status is None,
        "cancel_url": data.cancel_url if _is_web(data.cancel_url) and card.is_open else None,
        "bot_url": data.bot_url,
    }


def render_live(data: PageData, query: PageQuery, now: datetime) -> Live:
    context = _context(data, query, now)
    html = environment(query.language).get_template("live.html").render(context)
    return Live(state=context["state"], html=html, redirect=context["redirect"])


def render_page(data: PageData, query: PageQuery, now: datetime) -> str:
    context = _context(data, query, now)
    return environment(query.language).get_template("page.html").render(context)


def render_not_found(language: str) -> str:
    return environment(language).get_template("not_found.html").render(language=language)


def render_claim(language: str, url: str, product: str) -> str:
    return (
        environment(language)
        .get_template("claim.html")
        .render(language=language, url=url, product=product)
    )
