"""chainpay domain core: imports none of api, bot, chain, chainpay."""

__version__ = "0.1.0"
