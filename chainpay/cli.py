"""The `chainpay` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import typer
from pydantic import TypeAdapter, ValidationError

from chainpay import bootstrap, migrations
from chainpay.logs import configure_logging
from core.config import Settings
from core.errors import AppError
from core.schemas import Email

DEFAULT_OWNER_EMAIL = "owner@example.com"

app = typer.Typer(
    help="chainpay: self-hosted stablecoin payments for Telegram merchants.",
    no_args_is_help=True,
    add_completion=False,
)
org_app = typer.Typer(
    help="Manage organizations (merchants) on this chainpay.", no_args_is_help=True
)
app.add_typer(org_app, name="org")
wallet_app = typer.Typer(
    help="Receiving wallets (account xpubs) of organizations.", no_args_is_help=True
)
app.add_typer(wallet_app, name="wallet")
devnet_app = typer.Typer(help="Local devnet: two anvil chains with test stablecoins.")
app.add_typer(devnet_app, name="devnet")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.secho(f"Invalid configuration: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def _valid_email(value: str) -> str:
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
) -> None:
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
    name: str = typer.Argument(..., help="Organization name"),
    owner_email: str = typer.Option(
        ..., "--owner-email", callback=_valid_email, help="The owner's email"
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
        ..., help="Account-level xpub of m/44'/60'/0' (never a private key)"
    ),
    org: int | None = typer.Option(None, "--org", help="Organization id (default: the only one)"),
) -> None:
    """Register the account xpub deposit addresses are derived from (m/44'/60'/0'/0/i)."""
    settings = _settings()
    _prepare_database(settings)
    try:
        organization_id = asyncio.run(bootstrap.set_xpub(settings, xpub, org))
    except AppError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Organization #{organization_id} now receives at addresses derived from this xpub.")


@devnet_app.callback(invoke_without_command=True)
def devnet_run(
    ctx: typer.Context,
    block_time: float = typer.Option(1.0, "--block-time", help="Seconds per block"),
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
    session_uuid: str = typer.Argument(..., help="The session to pay"),
    chain: int = typer.Option(..., "--chain", help="Chain id"),
    token: str = typer.Option("USDT", "--token", help="Token symbol or contract"),
    amount: str | None = typer.Option(
        None, "--amount", help="Token units (default: the quoted amount)"
    ),
) -> None:
    """Pay a session from anvil's funded dev account."""
    from chainpay import devnet

    settings = _settings()
    if settings.chains_file is None and devnet.CHAINS_FILE.exists():
        settings = settings.model_copy(update={"chains_file": devnet.CHAINS_FILE.resolve()})
    try:
        tx = asyncio.run(devnet.pay_session(settings, session_uuid, chain, token, amount))
    except AppError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(tx)


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    settings = _settings()
    migrations.upgrade(settings.database_url)
    typer.echo("Database is up to date.")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default CHAINPAY_HOST or 127.0.0.1)"),
    port: int | None = typer.Option(None, help="Port (default CHAINPAY_PORT or 8000)"),
) -> None:
    """Run everything in one process: the API (bot, watchers and scheduler join in later releases).

    On the embedded SQLite default, an empty database is migrated and initialized on the first
    start (as `chainpay init` would), and the owner's API key is printed once.
    """
    from chainpay import devnet, roles  # heavy (web3, uvicorn): imported when used

    settings = _settings()
    configure_logging(settings.log_level)
    _prepare_database(settings)
    if not devnet.needs_devnet(settings):
        _first_start(settings, devnet_mode=False)
        roles.run(roles.serve(settings, host=host, port=port))
        return
    typer.echo("No chains configured: starting a local devnet (two anvil chains, test mode).")
    with devnet.devnet_settings(settings) as with_devnet:
        typer.echo(
            f"Devnet chains written to {devnet.CHAINS_FILE}; pay with `chainpay devnet pay`."
        )
        _first_start(with_devnet, devnet_mode=True)
        roles.run(roles.serve(with_devnet, host=host, port=port))


def _first_start(settings: Settings, *, devnet_mode: bool) -> None:
    if settings.is_sqlite and not asyncio.run(bootstrap.has_organizations(settings)):
        typer.echo("Empty database: creating the first organization (as `chainpay init`).")
        # On the devnet only test chains exist, so the first key is a test key with a dev wallet.
        _create(
            "My shop",
            DEFAULT_OWNER_EMAIL,
            test_key=devnet_mode,
            as_json=False,
            first=True,
            dev_wallet=devnet_mode,
        )


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
    """Run only the webhook sender (scale-out role; any number of them share the work)."""
    from chainpay import roles

    settings = _settings()
    configure_logging(settings.log_level)
    _prepare_database(settings)
    roles.run(roles.worker(settings))


@app.command()
def api(
    host: str | None = typer.Option(None, help="Bind address (default CHAINPAY_HOST or 127.0.0.1)"),
    port: int | None = typer.Option(None, help="Port (default CHAINPAY_PORT or 8000)"),
) -> None:
    """Run only the HTTP API (scale-out role; migrate first with `chainpay migrate`)."""
    from chainpay import roles

    settings = _settings()
    configure_logging(settings.log_level)
    _prepare_database(settings)
    roles.run(roles.api(settings, host=host, port=port))
