"""Telegram bot (aiogram 3): payers pay and subscribe, merchants issue invoices and links, paid
chats open and close. It learns of payments from the events table with its own cursor
(`core.telegram.notifications`), never from the watcher; it never imports `api/` or `chain/`."""
