"""Telegram bot (aiogram 3). Filled in by the bot issue; the package exists so the layout is fixed."""
