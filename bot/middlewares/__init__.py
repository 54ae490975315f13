"""Outer middlewares: one database session per update (and the person's language)."""
