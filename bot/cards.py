"""The payment card: one photo message per session and chat, edited as the payment moves on.

The photo is a QR code: of the EIP-681 payment URI once the payer picked a network and token
(a wallet that scans it fills in token, chain, recipient and amount), before that of the
session's web page. The caption says what to pay and how far it got; the buttons are the next
steps. Everything is rendered in the current i18n locale from a `PaymentCard` (plain data).
"""

from __future__ import annotations

import hashlib
import html
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import segno
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.i18n import gettext as _

from bot.callbacks import CardAction, PickChain, PickToken
from core.checkout.state import SessionStatus
from core.telegram.payer import CardQuote, PaymentCard


@dataclass(frozen=True, slots=True)
class RenderedCard:
    caption: str
    keyboard: InlineKeyboardMarkup
    # What the photo encodes; the photo is replaced only when this changes.
    qr_data: str

    @property
    def fingerprint(self) -> str:
        """64 hex characters: the photo's half and the caption + buttons' half."""
        media = hashlib.sha256(self.qr_data.encode()).hexdigest()[:32]
        rest = hashlib.sha256(
            (self.caption + self.keyboard.model_dump_json()).encode()
        ).hexdigest()[:32]
        return media + rest

    def qr_png(self) -> bytes:
        return qr_png(self.qr_data)


def qr_png(data: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="png", scale=8, border=3)
    return buffer.getvalue()


def usd(amount: Decimal) -> str:
    """$19.99, $5, $0.5 -> $0.50: exact (Decimal), cents shown when there are any."""
    text = f"{amount.normalize():f}"
    whole, _dot, fraction = text.partition(".")
    if len(fraction) == 1:
        fraction += "0"
    return "$" + whole + ("." + fraction if fraction else "")


def tokens(amount: Decimal) -> str:
    text = f"{amount.normalize():f}"
    return text


def period(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    if rest == 0 and days % 7 == 0 and days < 28:
        return _("period.weeks").format(n=days // 7)
    if rest == 0:
        return _("period.days").format(n=days)
    return _("period.hours").format(n=max(1, seconds // 3600))


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def is_web_url(url: str | None) -> bool:
    """Telegram refuses URL buttons to loopback and plain-HTTP hosts it cannot open; only an
    https link (a real deployment's CHAINPAY_PUBLIC_URL) gets a button."""
    return bool(url) and str(url).startswith("https://")


def render(card: PaymentCard, now: datetime) -> RenderedCard:
    e = html.escape
    lines = [f"<b>{e(card.organization)}</b>"]
    if card.test:
        lines.append(_("card.test_mode"))
    lines.append(f"{e(card.product)}" + (f" — {e(card.description)}" if card.description else ""))
    if card.payg and card.frequency_seconds:
        lines.append(
            _("card.payg_price").format(
                price=usd(card.price_usd), period=period(card.frequency_seconds)
            )
        )
        if card.free_credits_usd and card.subscription_status is None:
            lines.append(_("card.payg_free_credits").format(credits=usd(card.free_credits_usd)))
    elif card.kind == "subscription" and card.frequency_seconds:
        lines.append(
            _("card.price_per_period").format(
                price=usd(card.price_usd), period=period(card.frequency_seconds)
            )
        )
        if card.trial_seconds:
            lines.append(_("card.trial").format(period=period(card.trial_seconds)))
    else:
        lines.append(_("card.price").format(price=usd(card.price_usd)))
    lines.append("")
    status = SessionStatus(card.status)
    subscribed = card.subscription_status is not None
    # Paying the subscription, not the session: a renewal, or a bill it owes.
    renewal = subscribed and (status == SessionStatus.COMPLETED or card.bill_usd is not None)
    # Pay-as-you-go is started, not paid: only a bill is ever paid.
    payable = renewal or (card.is_open and not card.payg)
    if subscribed:
        lines.append(
            _("card.subscription_" + str(card.subscription_status)).format(
                until=when(card.subscription_period_end) if card.subscription_period_end else ""
            )
        )
    show_payment = card.chosen is not None and payable
    if show_payment:
        assert card.chosen is not None
        lines.extend(_payment_lines(card, card.chosen, renewal=renewal))
    elif payable:
        lines.append(_("card.choose_network"))
    elif card.payg_start_available:
        lines.append(_("card.payg_start_hint"))
    elif card.payg and subscribed and card.subscription_status in ("active", "trial"):
        lines.append(_("card.payg_nothing_due"))
    if card.bill_usd is not None:
        lines.append(
            _("card.bill_due").format(
                amount=usd(card.bill_usd),
                at=when(card.bill_due_at) if card.bill_due_at else "",
            )
        )
    lines.append(_status_line(card))
    if show_payment and card.is_open and card.subscription_status is None:
        # (A started trial's session has no deadline of its own: the subscription line says
        # until when.)
        lines.append(_("card.expires").format(at=when(card.expires_at)))
    if show_payment:
        assert card.chosen is not None
        lines.append("")
        lines.append(
            _("card.warnings").format(symbol=e(card.chosen.symbol), chain=e(card.chosen.chain_name))
        )
    caption = "\n".join(line for line in lines if line is not None)
    # Once a token is chosen the photo is the payment URI of what is due in it (a partial
    # payment changes the amount, and the photo with it).
    qr_data = card.payment_uri or card.link
    return RenderedCard(
        caption=caption,
        keyboard=_keyboard(card, show_payment, renewal, payable),
        qr_data=qr_data,
    )


def _payment_lines(card: PaymentCard, quote: CardQuote, *, renewal: bool) -> list[str]:
    e = html.escape
    amount = quote.amount
    if not renewal or card.bill_usd is not None:
        # What is due in this token: the rest of a partly paid price, or the open bill
        # (rounded up to the token's last digit). A renewal paid ahead asks for one period.
        amount = Decimal(card.amount_due(quote)).scaleb(-quote.decimals)
    if renewal and card.payg:
        key = "card.pay_bill_exactly"
    else:
        key = "card.renew_exactly" if renewal else "card.pay_exactly"
    return [
        _(key).format(amount=tokens(amount), symbol=e(quote.symbol), chain=e(quote.chain_name)),
        _("card.to_address").format(address=e(card.deposit_address)),
    ]


def _status_line(card: PaymentCard) -> str:
    status = SessionStatus(card.status)
    progress = card.progress
    if status == SessionStatus.COMPLETED:
        line = _("card.status_completed")
        if card.overpaid:
            line += "\n" + _("card.status_overpaid").format(paid=usd(card.paid_usd))
        if card.late:
            line += "\n" + _("card.status_late")
        return line
    if status == SessionStatus.EXPIRED:
        return _("card.status_expired") + ("\n" + _("card.status_late") if card.late else "")
    if status == SessionStatus.CANCELLED:
        return _("card.status_cancelled") + ("\n" + _("card.status_late") if card.late else "")
    if status == SessionStatus.FAILED:
        return _("card.status_failed")
    parts = []
    if progress.confirmations is not None:
        have, need = progress.confirmations
        parts.append(_("card.status_detected").format(have=have, need=need))
    if card.paid_usd > 0 and card.remaining_usd > 0:
        parts.append(
            _("card.status_partial").format(
                paid=usd(card.paid_usd),
                price=usd(card.price_usd),
                remaining=usd(card.remaining_usd),
            )
        )
    if not parts:
        parts.append(_("card.status_waiting"))
    return "\n".join(parts)


def _keyboard(
    card: PaymentCard, show_payment: bool, renewal: bool, payable: bool
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    sid = card.session_id
    status = SessionStatus(card.status)
    if payable and not show_payment:
        chains: dict[int, str] = {}
        for quote in card.quotes:
            chains.setdefault(quote.chain_id, quote.chain_name)
        for chain_id, name in chains.items():
            rows.append(
                [
                    InlineKeyboardButton(
                        text=name, callback_data=PickChain(session_id=sid, chain_id=chain_id).pack()
                    )
                ]
            )
    if card.trial_available and not show_payment:
        rows.append([_button(_("button.start_trial"), sid, "trial")])
    if card.payg_start_available:
        rows.append([_button(_("button.start_payg"), sid, "trial")])
    if show_payment:
        rows.append(
            [
                _button(_("button.check_status"), sid, "status"),
                _button(_("button.change_network"), sid, "change"),
            ]
        )
    if (card.is_open or renewal) and is_web_url(card.link):
        rows.append([InlineKeyboardButton(text=_("button.web_page"), url=card.link)])
        # The same page inside Telegram (a Mini App): its signed initData binds the payer.
        mini_app = WebAppInfo(url=card.link + "?tgWebApp=1")
        rows.append([InlineKeyboardButton(text=_("button.mini_app"), web_app=mini_app)])
    if card.is_open and card.subscription_status is None:
        # (A started trial or pay-as-you-go is cancelled from /subscriptions, not here.)
        rows.append([_button(_("button.cancel"), sid, "cancel")])
    if status == SessionStatus.COMPLETED and not renewal and is_web_url(card.success_url):
        assert card.success_url is not None
        url = card.success_url.replace("{{UUID}}", card.uuid).replace(
            "{{TRANSACTION_TYPE}}", "subscription" if card.kind == "subscription" else "payment"
        )
        rows.append([InlineKeyboardButton(text=_("button.continue"), url=url)])
    if status == SessionStatus.EXPIRED:
        rows.append([_button(_("button.fresh_session"), sid, "fresh")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def token_picker(card: PaymentCard, chain_id: int) -> InlineKeyboardMarkup:
    """The tokens the session accepts on one network, and a way back."""
    rows = [
        [
            InlineKeyboardButton(
                text=f"{q.symbol} ({tokens(q.amount)})",
                callback_data=PickToken(
                    session_id=card.session_id, chain_id=chain_id, symbol=q.symbol
                ).pack(),
            )
        ]
        for q in card.quotes
        if q.chain_id == chain_id
    ]
    rows.append([_button(_("button.back"), card.session_id, "change")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _button(text: str, session_id: int, action: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=CardAction(session_id=session_id, action=action).pack()
    )
