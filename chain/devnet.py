"""Local devnet: anvil nodes on loopback with a test stablecoin each, for newcomers and tests.

anvil comes from the npm package `@foundry-rs/anvil-linux-amd64`; `ensure_anvil()` installs it
into `.cache/npm` on first use (CI does the same up front).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract

ROOT = Path(__file__).resolve().parents[1]
NPM_PREFIX = ROOT / ".cache" / "npm"
ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"
ARTIFACT = Path(__file__).resolve().parent / "contracts" / "TestStablecoin.json"
# anvil's first default account (from the public "test test ... junk" mnemonic): deployer and payer.
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEFAULT_CHAINS = ((31337, 6), (31338, 18))


class DevnetError(RuntimeError):
    pass


def ensure_anvil() -> str:
    """Path of the anvil binary, installing the npm package into .cache/npm when missing."""
    local = NPM_PREFIX / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    npm = shutil.which("npm")
    if npm is None:
        raise DevnetError(
            "the devnet needs anvil: install Node.js (for npm, which fetches it) or put anvil "
            "on PATH (https://getfoundry.sh)"
        )
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    # A first start would otherwise sit silent while ~40 MB download (minutes on a slow line).
    print(
        f"Fetching anvil (npm package {ANVIL_PACKAGE}, about 40 MB) into {NPM_PREFIX}; "
        "this happens once...",
        file=sys.stderr,
        flush=True,
    )
    installed = subprocess.run(
        [
            npm,
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(NPM_PREFIX),
            ANVIL_PACKAGE,
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        # npm's most telling line is its longest one (the log file's path comes last).
        lines = [line for line in installed.stderr.splitlines() if "complete log" not in line]
        said = max(lines, key=len, default="no output").strip()
        raise DevnetError(
            f"npm could not install {ANVIL_PACKAGE} (exit {installed.returncode}): {said}"
        )
    if not local.exists():
        raise DevnetError(f"npm installed {ANVIL_PACKAGE} but {local} is missing")
    return str(local)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends SIGTERM to anvil when its parent dies, so a
    killed `chainpay serve` or test run never leaves nodes behind."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Anvil:
    chain_id: int
    port: int
    process: subprocess.Popen[bytes]

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """anvil answers WebSocket JSON-RPC (eth_subscribe) on the same port."""
        return f"ws://127.0.0.1:{self.port}"

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        response = httpx.post(
            self.rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
            timeout=30,
        )
        body = response.json()
        if "error" in body:
            raise DevnetError(f"{method}: {body['error']}")
        return body["result"]

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_anvil(
    chain_id: int,
    *,
    port: int | None = None,
    block_time: float | None = None,
    state: Path | None = None,
) -> Anvil:
    """An anvil node on 127.0.0.1; `block_time=None` mines one block per transaction.

    With `state`, the chain is loaded from and saved to that file, so it survives restarts.
    """
    port = port or free_port()
    args = [
        ensure_anvil(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--quiet",
    ]
    if block_time is not None:
        args += ["--block-time", str(block_time)]
    if state is not None:
        args += ["--state", str(state), "--state-interval", "5"]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent
    )
    node = Anvil(chain_id, port, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevnetError(f"anvil exited with {process.returncode}")
        try:
            if int(node.rpc("eth_chainId"), 16) == chain_id:
                return node
        except (httpx.TransportError, DevnetError):
            time.sleep(0.05)
    node.stop()
    raise DevnetError("anvil did not answer within 30 s")


def _artifact() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ARTIFACT.read_text())
    return data


def token_contract(w3: Web3, address: str) -> Contract:
    return w3.eth.contract(address=to_checksum_address(address), abi=_artifact()["abi"])


def deploy_token(
    rpc_url: str, *, symbol: str = "USDT", decimals: int = 6, name: str | None = None
) -> str:
    """Deploy TestStablecoin from the dev account; returns its checksummed address."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    artifact = _artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(name or f"Test {symbol}", symbol, decimals).transact(
        {"from": DEV_ACCOUNT}
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    address = receipt["contractAddress"]
    if address is None:
        raise DevnetError("token deployment produced no contract")
    token = token_contract(w3, address)
    minted = token.functions.mint(DEV_ACCOUNT, 10**12 * 10**decimals).transact(
        {"from": DEV_ACCOUNT}
    )
    w3.eth.wait_for_transaction_receipt(minted, timeout=30)
    return str(address)


def transfer(
    rpc_url: str, token: str, to: str, amount: int, *, sender: str = DEV_ACCOUNT, wait: bool = True
) -> str:
    """Send `amount` base units of `token` to `to`; returns the tx hash (0x…)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    contract = token_contract(w3, token)
    tx = contract.functions.transfer(to_checksum_address(to), amount).transact({"from": sender})
    if wait:
        w3.eth.wait_for_transaction_receipt(tx, timeout=60)
    return "0x" + bytes(tx).hex().removeprefix("0x")


@dataclass
class Devnet:
    nodes: list[Anvil]
    tokens: dict[int, tuple[str, int]] = field(
        default_factory=dict
    )  # chain id -> (contract, decimals)

    def node(self, chain_id: int) -> Anvil:
        return next(n for n in self.nodes if n.chain_id == chain_id)

    def chains_toml(self, *, confirmations: int = 2) -> str:
        lines = []
        for node in self.nodes:
            contract, decimals = self.tokens[node.chain_id]
            lines += [
                "[[chains]]",
                f"id = {node.chain_id}",
                f'name = "Devnet {node.chain_id}"',
                f'rpc_urls = ["{node.rpc_url}"]',
                f'ws_url = "{node.ws_url}"',
                f"confirmations = {confirmations}",
                "test = true",
                f'tokens = [{{ symbol = "USDT", contract = "{contract}", decimals = {decimals} }}]',
                "",
            ]
        return "\n".join(lines)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextmanager
def running_devnet(
    chains: tuple[tuple[int, int], ...] = DEFAULT_CHAINS,
    *,
    block_time: float | None = None,
    state_dir: Path | None = None,
) -> Iterator[Devnet]:
    """Anvil nodes with a deployed test stablecoin each (decimals per chain), stopped afterwards.

    With `state_dir` the chains and their tokens persist across runs (for `chainpay serve`).
    """
    devnet = Devnet(nodes=[])
    known: dict[str, str] = {}
    tokens_file = state_dir / "tokens.json" if state_dir else None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        if tokens_file and tokens_file.exists():
            known = json.loads(tokens_file.read_text())
    try:
        for chain_id, decimals in chains:
            state = state_dir / f"anvil-{chain_id}.json" if state_dir else None
            node = start_anvil(chain_id, block_time=block_time, state=state)
            devnet.nodes.append(node)
            address = known.get(str(chain_id))
            if address is None or node.rpc("eth_getCode", [address, "latest"]) in ("0x", "0x0"):
                address = deploy_token(node.rpc_url, decimals=decimals)
            devnet.tokens[chain_id] = (address, decimals)
        if tokens_file is not None:
            tokens_file.write_text(json.dumps({str(k): v[0] for k, v in devnet.tokens.items()}))
        yield devnet
    finally:
        devnet.stop()


def write_chains_file(devnet: Devnet, path: Path, *, confirmations: int = 2) -> Path:
    path.write_text(devnet.chains_toml(confirmations=confirmations))
    os.chmod(path, 0o644)
    return path
