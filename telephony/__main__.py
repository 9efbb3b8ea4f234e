"""`python -m telephony`: the operator's command line (telephony/operator/cli), plus the
benchmark (telephony/devtools) where the development tools are installed.

Every import waits until a command runs: `--help` answers without loading the framework,
SQLAlchemy or the bench. Ctrl-C at any moment, imports included, exits 130 without a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

try:
    import importlib.util

    from telephony.operator.cli import COMMAND_GROUPS, CommandGroup, LazyGroup, interrupted, run
    from telephony.operator.cli import main as operator_main
except KeyboardInterrupt:  # Ctrl-C while the command line itself loads
    sys.exit(130)

BENCH = LazyGroup(
    "telephony.devtools.bench_cli",
    {"bench": "Benchmark the agent's latency (and capacity) against local provider stand-ins."},
)


def commands() -> tuple[CommandGroup, ...]:
    """The operator's commands, and the bench where the development tools are installed."""
    try:
        installed = importlib.util.find_spec(BENCH.module) is not None
    except ImportError:  # the shipped image carries no development tools
        installed = False
    return (*COMMAND_GROUPS, *([BENCH] if installed else []))


def main(argv: Sequence[str] | None = None) -> int:
    return operator_main(argv, commands())


if __name__ == "__main__":
    try:
        run(commands())
    except KeyboardInterrupt:  # between run()'s own handlers, e.g. as it returns
        interrupted()
