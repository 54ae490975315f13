"""One Router per feature, included in a fixed order by `bot.dispatcher` (the catch-all last)."""
