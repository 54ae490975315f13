"""The hosted checkout page (`/pay/{uuid}`): Jinja2 templates, a little plain JavaScript and a
stylesheet, all served by this process (no CDN), in the languages of core/locales."""
