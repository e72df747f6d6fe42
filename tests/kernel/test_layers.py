"""The layers contract in pyproject.toml places every module of leadline/.

import-linter checks only the modules a contract names: a kernel module missing from the
kernel layer could import upward unnoticed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CLI = {"leadline.__main__", "leadline.cli", "leadline.commands"}


def layers_contract() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [contract["layers"] for contract in contracts if contract["id"] == "layers"]
    return list(layers)


def leadline_modules() -> set[str]:
    package = ROOT / "leadline"
    files = {f"leadline.{path.stem}" for path in package.glob("*.py")}
    packages = {f"leadline.{path.parent.name}" for path in package.glob("*/__init__.py")}
    return (files | packages) - {"leadline.__init__"}


def test_the_kernel_layer_names_every_module_of_leadline_outside_the_cli() -> None:
    kernel = {name.strip() for name in layers_contract()[-1].split(":")}

    assert kernel == leadline_modules() - CLI


def test_the_cli_is_the_top_of_the_layers() -> None:
    assert set(layers_contract()[:3]) == CLI
