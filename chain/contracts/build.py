"""Rebuild TestStablecoin.json from TestStablecoin.sol with the npm `solc` package (solcjs).

npm install --no-save --prefix .cache/npm solc@0.8.30
python -m chain.contracts.build
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def solcjs() -> str:
    local = ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "solcjs"
    found = str(local) if local.exists() else shutil.which("solcjs")
    if not found:
        sys.exit("solcjs not found: npm install --no-save --prefix .cache/npm solc@0.8.30")
    return found


def main() -> None:
    source = HERE / "TestStablecoin.sol"
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                solcjs(),
                "--optimize",
                "--bin",
                "--abi",
                "-o",
                out,
                "--base-path",
                str(HERE),
                str(source),
            ],
            check=True,
        )
        outputs = {
            p.suffix: p
            for p in Path(out).iterdir()
            if "TestStablecoin" in p.name
            and p.name.endswith(("_TestStablecoin.bin", "_TestStablecoin.abi"))
        }
        artifact = {
            "contractName": "TestStablecoin",
            "source": "TestStablecoin.sol",
            "compiler": subprocess.run(
                [solcjs(), "--version"], capture_output=True, text=True
            ).stdout.strip(),
            "abi": json.loads(outputs[".abi"].read_text()),
            "bytecode": "0x" + outputs[".bin"].read_text().strip(),
        }
    (HERE / "TestStablecoin.json").write_text(json.dumps(artifact, indent=1) + "\n")
    print(f"wrote {HERE / 'TestStablecoin.json'}")


if __name__ == "__main__":
    main()
