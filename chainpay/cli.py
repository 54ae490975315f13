"""The `chainpay` command.

Starting it imports only typer: the database, web3 and the API app are imported by the commands
that use them, so `chainpay --help` answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import shlex
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import typer.core

from core.errors import AppError

if TYPE_CHECKING:
    from chainpay import bootstrap, migrations
    from core.config import Settings
else:

    class _Lazy:
        """A module imported on first use."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attribute: str) -> Any:
            return getattr(importlib.import_module(self._name), attribute)

    bootstrap = _Lazy("chainpay.bootstrap")
    migrations = _Lazy("chainpay.migrations")

DEFAULT_OWNER_EMAIL = "owner@example.com"


class _Command(typer.core.TyperCommand):
    """Usage lines read `SESSION_UUID`, not typer's `{SESSION_UUID}`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [
            piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


class _Typer(typer.Typer):
    """The command tree; called as the program, it says configuration and connection errors
    in a line or two (exit 2 and 1) instead of a traceback, unless --debug."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            from chainpay.problems import debug_requested, explain

            loaded = _state.get("settings")
            if _state.get("debug") or debug_requested(loaded):
                raise
            problem = explain(exc, database_url=loaded.database_url if loaded else None)
            if problem is None:
                raise
            first, *rest = problem.lines
            typer.secho(f"Error: {first}", fg="red", err=True)
            for line in rest:
                typer.echo(line, err=True)
            raise SystemExit(problem.exit_code) from None


# What the command line learnt: --debug, and the settings once read (for error messages).
_state: dict[str, Any] = {}

app = _Typer(
    help="chainpay: self-hosted stablecoin payments for Telegram merchants.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks (--debug) never print local variables: they hold URLs with passwords and keys.
    pretty_exceptions_show_locals=False,
)
org_app = _Typer(help="Manage organizations (merchants) on this chainpay.", no_args_is_help=True)
app.add_typer(org_app, name="org")
wallet_app = _Typer(
    help="Receiving wallets (account xpubs) of organizations.", no_args_is_help=True
)
app.add_typer(wallet_app, name="wallet")
devnet_app = _Typer(help="Local devnet: two anvil chains with test stablecoins.")
app.add_typer(devnet_app, name="devnet")


@app.callback()
def _options(
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an error and log at debug level"
    ),
) -> None:
    _state["debug"] = debug


def _settings() -> Settings:
    """The settings (a configuration error ends the command: exit 2, a line naming the file or
    variable); unknown CHAINPAY_* variables are warned about."""
    from core.config import load_settings, unknown_environment_variables

    for warning in unknown_environment_variables():
        typer.secho(f"Warning: {warning}", fg="yellow", err=True)
    settings = load_settings()
    if _state.get("debug"):
        settings = settings.model_copy(update={"log_level": "debug"})
    _state["settings"] = settings
    return settings


def configure_logging(level: str) -> None:
    from chainpay.logs import configure_logging as configure

    configure(level)


def _valid_email(value: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    from core.schemas import Email

    try:
        return str(TypeAdapter(Email).validate_python(value))
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise typer.BadParameter(message) from exc


def _prepare_database(settings: Settings) -> None:
    if settings.should_auto_migrate:
        migrations.upgrade(settings.database_url)


def _announce(created: bootstrap.NewOrganization, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(asdict(created)))
        return
    mode = "test" if created.test else "live"
    typer.echo(f"Organization #{created.organization_id} '{created.organization_name}' created.")
    typer.echo(f"Owner: {created.owner_email} (user #{created.owner_user_id})")
    typer.echo(f"API key ({mode}), shown only this once; store it now:")
    typer.echo(f"  {created.api_key}")
    typer.echo("Default webhook secret (signs deliveries to sessions' webhookUrl), shown once:")
    typer.echo(f"  {created.webhook_secret}")


def _create(
    name: str,
    owner_email: str,
    test_key: bool,
    as_json: bool,
    first: bool,
    dev_wallet: bool = False,
) -> bootstrap.NewOrganization:
    settings = _settings()
    _prepare_database(settings)
    try:
        created = asyncio.run(
            bootstrap.create_organization(
                settings, name=name, owner_email=owner_email, test_key=test_key, first=first
            )
        )
        if dev_wallet:
            path, xpub = bootstrap.write_dev_wallet(Path.cwd())
            asyncio.run(bootstrap.set_xpub(settings, xpub, created.organization_id))
            typer.secho(bootstrap.DEV_WALLET_WARNING.format(path=path), fg="yellow", err=True)
    except AppError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(1) from exc
    _announce(created, as_json)
    return created


@app.command()
def init(
    owner_email: str = typer.Option(
        DEFAULT_OWNER_EMAIL, "--owner-email", callback=_valid_email, help="The owner's email"
    ),
    name: str = typer.Option("My shop", "--name", help="Organization name"),
    test: bool = typer.Option(
        False, "--test", help="Make the first key a test-mode key (cp_test_)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
    dev_wallet: bool = typer.Option(
        False,
        "--dev-wallet",
        help="Generate a devnet-only mnemonic (file, mode 0600) and use its xpub",
    ),
) -> None:
    """Create the first organization, its owner and an API key (printed once)."""
    _create(name, owner_email, test, as_json, first=True, dev_wallet=dev_wallet)


@org_app.command("create")
def org_create(
    name: str = typer.Argument(..., metavar="NAME", help="Organization name"),
    owner_email: str = typer.Option(
        ..., "--owner-email", metavar="EMAIL", callback=_valid_email, help="The owner's email"
    ),
    test: bool = typer.Option(
        False, "--test", help="Make the first key a test-mode key (cp_test_)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """Add another organization (merchant) with its owner and first API key (printed once)."""
    _create(name, owner_email, test, as_json, first=False)


@wallet_app.command("set-xpub")
def wallet_set_xpub(
    xpub: str = typer.Argument(
        ..., metavar="XPUB", help="Account-level xpub of m/44'/60'/0' (never a private key)"
    ),
    org: int | None = typer.Option(
        None, "--org", metavar="ID", help="Organization id (default: the only one)"
    ),
) -> None:
    """Register the account xpub deposit addresses are derived from (m/44'/60'/0'/0/i)."""
    settings = _settings()
    _prepare_database(settings)
    try:
        organization_id = asyncio.run(bootstrap.set_xpub(settings, xpub, org))
    except AppError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(2 if isinstance(exc, bootstrap.OrganizationRequired) else 1) from exc
    typer.echo(f"Organization #{organization_id} now receives at addresses derived from this xpub.")


# --- chainpay key create: a key made on the server, the way back in when no key works ------

key_app = _Typer(
    help="API keys made on the server (recovery when no key works).", no_args_is_help=True
)
app.add_typer(key_app, name="key")


def _key_user_email(value: str | None) -> str | None:
    return None if value is None else _valid_email(value)


def _key_name(value: str) -> str:
    if not 1 <= len(value.strip()) <= 200:
        raise typer.BadParameter("must be 1 to 200 characters")
    return value.strip()


@key_app.command("create")
def key_create(
    org: int | None = typer.Option(
        None, "--org", metavar="ID", help="Organization id (default: the only one)"
    ),
    user: str | None = typer.Option(
        None,
        "--user",
        metavar="EMAIL",
        callback=_key_user_email,
        help="Email of the key's user (default: the organization's owner)",
    ),
    test: bool = typer.Option(False, "--test", help="Make a test-mode key (cp_test_)"),
    name: str = typer.Option(
        "Command-line key", "--name", metavar="NAME", callback=_key_name, help="Key name"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """Create an API key without an API key (printed once): for the owner unless --user."""
    settings = _settings()
    _prepare_database(settings)
    try:
        created = asyncio.run(
            bootstrap.create_api_key(
                settings, organization_id=org, user_email=user, name=name, test=test
            )
        )
    except AppError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(2 if isinstance(exc, bootstrap.OrganizationRequired) else 1) from exc
    if as_json:
        typer.echo(json.dumps(asdict(created)))
        return
    mode = "test" if created.test else "live"
    typer.echo(
        f"API key #{created.api_key_id} '{created.name}' ({mode}) for {created.user_email} "
        f"({created.role}) of organization #{created.organization_id} "
        f"'{created.organization_name}', shown only this once; store it now:"
    )
    typer.echo(f"  {created.api_key}")


# --- chainpay user link-telegram: a one-time code for the bot's /link -----------------------

user_app = _Typer(help="Users of organizations: their Telegram accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("link-telegram")
def user_link_telegram(
    email: str = typer.Argument(..., metavar="EMAIL", callback=_valid_email, help="User's email"),
    test: bool = typer.Option(
        False, "--test", help="Link in test mode: the account makes test invoices (devnet)"
    ),
    org: int | None = typer.Option(
        None, "--org", metavar="ID", help="Organization id the user must belong to"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """Make a one-time code (10 minutes) that links a Telegram account: `/link CODE` in the bot."""
    settings = _settings()
    _prepare_database(settings)
    try:
        created = asyncio.run(
            bootstrap.create_telegram_link_code(
                settings, user_email=email, organization_id=org, test=test
            )
        )
    except AppError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(2 if isinstance(exc, bootstrap.OrganizationRequired) else 1) from exc
    if as_json:
        typer.echo(json.dumps(asdict(created)))
        return
    mode = "test" if created.test else "live"
    until = created.expires_at[:19].replace("T", " ")
    typer.echo(
        f"One-time code for {created.user_email} of organization #{created.organization_id} "
        f"({mode} mode), valid until {until} UTC:"
    )
    typer.echo(f"  {created.code}")
    typer.echo(f"In Telegram, send the bot: /link {created.code}")


@devnet_app.callback(invoke_without_command=True)
def devnet_run(
    ctx: typer.Context,
    block_time: float = typer.Option(
        1.0, "--block-time", metavar="SECONDS", help="Seconds per block"
    ),
) -> None:
    """Run two anvil chains with test stablecoins until Ctrl-C; writes chainpay-devnet.toml."""
    from chainpay import devnet

    if ctx.invoked_subcommand is not None:
        return
    with devnet.devnet_settings(_settings(), block_time=block_time) as settings:
        typer.echo(f"Devnet up; chains written to {settings.chains_file}.")
        typer.echo(f"Point chainpay at it: CHAINPAY_CHAINS_FILE={settings.chains_file}")
        typer.echo("Ctrl-C stops it (state is kept in .chainpay-devnet/).")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


@devnet_app.command("pay")
def devnet_pay(
    session_uuid: str = typer.Argument(..., metavar="SESSION_UUID", help="The session to pay"),
    chain: int = typer.Option(..., "--chain", metavar="ID", help="Chain id"),
    token: str = typer.Option("USDT", "--token", metavar="SYMBOL", help="Token symbol or contract"),
    amount: str | None = typer.Option(
        None, "--amount", metavar="UNITS", help="Token units, e.g. 2.5 (default: the quoted amount)"
    ),
) -> None:
    """Pay a session from anvil's funded dev account (the devnet must be running)."""
    from chainpay import devnet

    settings = _settings()
    if settings.chains_file is None and devnet.CHAINS_FILE.exists():
        settings = settings.model_copy(update={"chains_file": devnet.CHAINS_FILE.resolve()})
    # An AppError (no such session, devnet not running) is one line from _Typer, exit 1.
    tx = asyncio.run(devnet.pay_session(settings, session_uuid, chain, token, amount))
    typer.echo(tx)


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    settings = _settings()
    migrations.upgrade(settings.database_url)
    typer.echo("Database is up to date.")


@app.command()
def serve(
    host: str | None = typer.Option(
        None, metavar="ADDRESS", help="Bind address (default CHAINPAY_HOST or 127.0.0.1)"
    ),
    port: int | None = typer.Option(
        None, metavar="PORT", help="Port (default CHAINPAY_PORT or 8000)"
    ),
) -> None:
    """Run everything in one process: the API, a watcher per chain and the webhook sender.

    On the embedded SQLite default, an empty database is migrated and initialized on the \
first start (as `chainpay init` would), and the owner's API key is printed once. With no \
chains configured it runs a local devnet (two anvil chains with test stablecoins).
    """
    from chainpay import devnet, roles  # heavy (web3, uvicorn): imported when used

    settings = _settings()
    configure_logging(settings.log_level)
    settings.check_chains()  # a chain mistake is reported before the first start writes anything
    _prepare_database(settings)
    settings, base_url = _bound(settings, host, port)
    if not devnet.needs_devnet(settings):
        _first_start(settings, devnet_mode=False, base_url=base_url)
        roles.run(roles.serve(settings, host=host, port=port))
        return
    typer.echo("No chains configured: starting a local devnet (two anvil chains, test mode).")
    with devnet.devnet_settings(settings) as with_devnet:
        typer.echo(
            f"Devnet chains written to {devnet.CHAINS_FILE}; pay with `chainpay devnet pay`."
        )
        _first_start(with_devnet, devnet_mode=True, base_url=base_url)
        roles.run(
            roles.serve(
                with_devnet, host=host, port=port, on_session_created=devnet.log_session_created
            )
        )


def _bound(settings: Settings, host: str | None, port: int | None) -> tuple[Settings, str]:
    """The API's local base URL for the address it binds to, and settings whose links (a
    session's `link`) follow that address unless CHAINPAY_PUBLIC_URL (public_url) is set."""
    bind_host = host or settings.host
    local = (
        "127.0.0.1" if bind_host in ("", "0.0.0.0") else "::1" if bind_host == "::" else bind_host
    )
    if ":" in local:
        local = f"[{local.strip('[]')}]"
    base_url = f"http://{local}:{port or settings.port}"
    if "public_url" not in settings.model_fields_set:
        settings = settings.model_copy(update={"public_url": base_url})
    return settings, base_url


def create_session_curl(base_url: str, api_key: str) -> str:
    """A copy-paste curl that creates a checkout session with `api_key`."""
    body = json.dumps(
        {"productName": "Ebook", "description": "PDF", "price": "19.99"}, separators=(",", ":")
    )
    return " ".join(
        [
            "curl -s",
            "-H",
            shlex.quote(f"X-API-Key: {api_key}"),
            "-H",
            shlex.quote("Content-Type: application/json"),
            "-d",
            shlex.quote(body),
            shlex.quote(f"{base_url}/v1/transaction/session-checkout"),
        ]
    )


def _first_start(
    settings: Settings, *, devnet_mode: bool, base_url: str, log_hint: bool = True
) -> None:
    """On an empty SQLite database: the first organization, its key (printed once) and a curl
    that uses it; `log_hint` tells where the log shows a devnet session's pay command."""
    if settings.is_sqlite and not asyncio.run(bootstrap.has_organizations(settings)):
        typer.echo("Empty database: creating the first organization (as `chainpay init`).")
        # On the devnet only test chains exist, so the first key is a test key with a dev wallet.
        created = _create(
            "My shop",
            DEFAULT_OWNER_EMAIL,
            test_key=devnet_mode,
            as_json=False,
            first=True,
            dev_wallet=devnet_mode,
        )
        if devnet_mode:
            typer.echo("Create a checkout session with it (copy and paste):")
        else:  # no dev wallet off the devnet: sessions need the merchant's own xpub first
            typer.echo(
                "Once its receiving wallet is set (`chainpay wallet set-xpub XPUB`), create a "
                "checkout session with it (copy and paste):"
            )
        typer.echo(f"  {create_session_curl(base_url, created.api_key)}")
        if devnet_mode and log_hint:
            typer.echo(
                "The log then shows its checkout page and the `chainpay devnet pay` command that "
                "pays it (devnet_session_created)."
            )


@app.command()
def demo(
    pay: bool = typer.Option(
        False,
        "--pay",
        help="Pay the session from the devnet's funded account and exit once it is completed",
    ),
    host: str | None = typer.Option(
        None, metavar="ADDRESS", help="Bind address (default CHAINPAY_HOST or 127.0.0.1)"
    ),
    port: int | None = typer.Option(
        None, metavar="PORT", help="Port (default CHAINPAY_PORT or 8000)"
    ),
    org: int | None = typer.Option(
        None, "--org", metavar="ID", help="Organization id (default: the only one)"
    ),
) -> None:
    """Serve as `chainpay serve` does, create a test session through the API and print its \
checkout page; then wait for it to be paid (--pay: pay it on the devnet) and exit.

Exits 0 once the session is completed (or on Ctrl-C), 1 when it expires unpaid. The demo's \
API key is a test key of its own, never printed and revoked on exit.
    """
    from chainpay import demo as demo_run
    from chainpay import devnet

    settings = _settings()
    if "log_level" not in settings.model_fields_set and not _state.get("debug"):
        # The demo's own lines are its output; the server's JSON lines only when something is wrong.
        settings = settings.model_copy(update={"log_level": "warning"})
    configure_logging(settings.log_level)
    settings.check_chains()
    _prepare_database(settings)
    settings, base_url = _bound(settings, host, port)
    demo_run.check_port(host or settings.host, port or settings.port)

    def run_demo(served: Settings) -> int:
        return demo_run.run(
            served,
            base_url=base_url,
            host=host,
            port=port,
            pay=pay,
            organization_id=org,
            echo=typer.echo,
        )

    if not devnet.needs_devnet(settings):
        _first_start(settings, devnet_mode=False, base_url=base_url)
        raise typer.Exit(run_demo(settings))
    typer.echo("No chains configured: starting a local devnet (two anvil chains, test mode).")
    with devnet.devnet_settings(settings) as with_devnet:
        # The demo prints its own session's page and pay command; its log shows only problems.
        _first_start(with_devnet, devnet_mode=True, base_url=base_url, log_hint=False)
        code = run_demo(with_devnet)
    raise typer.Exit(code)


@app.command()
def watcher() -> None:
    """Run only the chain watchers (scale-out role; one active per chain across processes)."""
    from chainpay import roles

    settings = _settings()
    configure_logging(settings.log_level)
    _prepare_database(settings)
    roles.run(roles.watcher(settings))


@app.command()
def worker() -> None:
    """Run the webhook sender and the periodic jobs (scale-out role; any number share the work)."""
    from chainpay import roles

    settings = _settings()
    configure_logging(settings.log_level)
    _prepare_database(settings)
    roles.run(roles.worker(settings))


@app.command("bot")
def bot_command(
    webhook: str | None = typer.Option(
        None,
        metavar="URL",
        help="Webhook mode: Telegram posts updates to this https URL (any number of replicas); "
        "default long polling (one replica)",
    ),
    listen: str = typer.Option(
        "127.0.0.1:8081", metavar="HOST:PORT", help="Where the webhook server listens"
    ),
) -> None:
    """Run only the Telegram bot (scale-out role; needs CHAINPAY_TELEGRAM_BOT_TOKEN)."""
    from chainpay import roles
    from core.chains import ConfigurationError

    settings = _settings()
    configure_logging(settings.log_level)
    if not settings.telegram_bot_token:
        raise ConfigurationError(
            "CHAINPAY_TELEGRAM_BOT_TOKEN is not set: give the bot's token from @BotFather"
        )
    host, _sep, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise typer.BadParameter("give HOST:PORT, e.g. 127.0.0.1:8081", param_hint="--listen")
    if webhook is not None and not webhook.startswith("https://"):
        raise typer.BadParameter("Telegram posts only to https URLs", param_hint="--webhook")
    _prepare_database(settings)
    roles.run(
        roles.telegram_bot(
            settings, webhook_url=webhook, listen_host=host, listen_port=int(port_text)
        )
    )


@app.command()
def api(
    host: str | None = typer.Option(
        None, metavar="ADDRESS", help="Bind address (default CHAINPAY_HOST or 127.0.0.1)"
    ),
    port: int | None = typer.Option(
        None, metavar="PORT", help="Port (default CHAINPAY_PORT or 8000)"
    ),
) -> None:
    """Run only the HTTP API (scale-out role; migrate first with `chainpay migrate`)."""
    from chainpay import roles

    settings = _settings()
    configure_logging(settings.log_level)
    _prepare_database(settings)
    roles.run(roles.api(settings, host=host, port=port))


# --- chainpay dev: helpers for developing against chainpay -----------------------------------

dev_app = _Typer(help="Development helpers: a local webhook receiver.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")


@dev_app.command("webhook-listen")
def dev_webhook_listen(
    port: int = typer.Option(
        0,
        "--port",
        metavar="PORT",
        min=0,
        max=65535,
        help="Port on 127.0.0.1 (default: a free one)",
    ),
    org: int | None = typer.Option(
        None, "--org", metavar="ID", help="Organization id (default: the only one)"
    ),
) -> None:
    """Receive webhooks on 127.0.0.1 as a test endpoint of the organization, printing each \
delivery with its Standard Webhooks and QBitFlow v1 verification; Ctrl-C removes the endpoint."""
    from chainpay import devnet, webhook_listen

    settings = _settings()
    _prepare_database(settings)
    if not (settings.webhooks_allow_private or devnet.needs_devnet(settings)):
        raise AppError(
            "chainpay delivers webhooks to 127.0.0.1 only on the devnet (no chains configured) "
            "or with CHAINPAY_WEBHOOKS_ALLOW_PRIVATE=true.\n"
            "Set it (development only) for `chainpay serve` and for this command."
        )
    if not asyncio.run(bootstrap.has_organizations(settings)):
        raise AppError(
            "No organization here yet: start `chainpay serve` (or `chainpay demo`) in this "
            "directory first."
        )
    asyncio.run(webhook_listen.listen(settings, port=port, organization_id=org, echo=typer.echo))
