"""The first devnet start fetches anvil with npm: it says so, and a failed fetch is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain import devnet
from chain.devnet import DevnetError, ensure_anvil


def fake_npm(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script)
    npm.chmod(0o755)


@pytest.fixture
def no_anvil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(devnet, "NPM_PREFIX", tmp_path / "npm")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path


def test_first_start_says_what_it_fetches(
    no_anvil: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Like npm: the package's bin lands in <prefix>/node_modules/.bin.
    fake_npm(
        no_anvil / "bin",
        'while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix="$2"; shift; done\n'
        '[ -n "$prefix" ] || exit 3\n'
        '/bin/mkdir -p "$prefix/node_modules/.bin" && : > "$prefix/node_modules/.bin/anvil"\n',
    )
    assert ensure_anvil() == str(no_anvil / "npm" / "node_modules" / ".bin" / "anvil")
    said = capsys.readouterr().err
    assert "Fetching anvil (npm package @foundry-rs/anvil-linux-amd64" in said
    assert str(no_anvil / "npm") in said


def test_a_failed_fetch_says_npms_reason_in_one_line(no_anvil: Path) -> None:
    fake_npm(
        no_anvil / "bin",
        "echo 'npm error code ENOTFOUND' >&2\n"
        "echo 'npm error network request to https://registry.npmjs.org failed' >&2\n"
        "echo 'npm error A complete log of this run can be found in: /x.log' >&2\n"
        "exit 1\n",
    )
    with pytest.raises(DevnetError, match="network request to https://registry.npmjs.org failed"):
        ensure_anvil()


def test_no_npm_says_how_to_get_anvil(no_anvil: Path) -> None:
    with pytest.raises(DevnetError, match="install Node.js"):
        ensure_anvil()
