"""The Telegram side's domain: merchants' linked accounts (and, later, cards, access, outbox)."""
