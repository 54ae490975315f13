"""Composition root: the `chainpay` command and its process roles."""
