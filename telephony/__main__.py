"""`python -m telephony`: the operator's command line (telephony/operator/cli), plus the
benchmark (telephony/devtools) where the development tools are installed."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from telephony.operator.cli import COMMAND_GROUPS, run
from telephony.operator.cli import main as operator_main

try:
    from telephony.devtools import bench_cli
except ImportError:  # the shipped image carries no development tools
    bench_cli = None

COMMANDS: tuple[ModuleType, ...] = (*COMMAND_GROUPS, *([bench_cli] if bench_cli else []))


def main(argv: Sequence[str] | None = None) -> int:
    return operator_main(argv, COMMANDS)


if __name__ == "__main__":
    run(COMMANDS)
