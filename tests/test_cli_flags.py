"""Every flag of `python -m telephony` that takes a number has a range: an out-of-range,
huge or non-finite value is one usage line naming the flag (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator

import pytest

from telephony.__main__ import commands, main
from telephony.operator.cli import build_parser

HOSTILE = ("99999999999999999999", "-99999999999999999999", "1e999", "inf", "nan", "9" * 5000)


def flags(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    """(command path, flag, type function) for every typed option of every command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from flags(sub, (*path, name))
        elif action.option_strings and action.type is not None:
            yield path, action.option_strings[-1], action.type


ALL_FLAGS = sorted(
    {
        (path, flag): kind
        for path, flag, kind in flags(build_parser([group.load() for group in commands()]))
    }.items()
)


@pytest.mark.parametrize(
    ("command", "flag", "kind"),
    [(path, flag, kind) for (path, flag), kind in ALL_FLAGS],
    ids=[" ".join((*path, flag)) for (path, flag), _ in ALL_FLAGS],
)
def test_every_numeric_flag_refuses_values_out_of_its_range(command, flag, kind):
    for text in HOSTILE:
        try:
            value = kind(text)
        except argparse.ArgumentTypeError as e:
            assert len(str(e).splitlines()) == 1
            continue
        # Accepted: a text, a path... but never a number no store or clock can hold.
        numbers = value if isinstance(value, tuple) else (value,)
        for number in numbers:
            if isinstance(number, int | float):
                assert math.isfinite(number) and abs(number) <= 1e9, (command, flag, text)


def test_the_numeric_flags_are_found():
    found = {(" ".join(path), flag) for (path, flag), _ in ALL_FLAGS}
    assert {("calls list", "--limit"), ("campaign", "--rate"), ("call", "--timeout")} <= found


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calls", "list", "--limit", "99999999999999999999"], "argument --limit: "),
        (["calls", "export", "--format", "csv", "--limit", "1" + "0" * 30], "argument --limit: "),
        (["calls", "deliver", "--limit", "9" * 5000], "argument --limit: "),
        (["calls", "list", "--until", "9999-12-31"], "argument --until: "),
        (["calls", "list", "--since", "0001-01-01"], "argument --since: "),
        (["campaign", "x.csv", "--retry-after", "1e308"], "argument --retry-after: "),
        (["campaign", "x.csv", "--concurrency", "100000"], "argument --concurrency: "),
        (["call", "+15105550123", "--timeout", "1e300"], "argument --timeout: "),
        (["status", "--request-timeout", "1e300"], "argument --request-timeout: "),
    ],
)
def test_a_huge_number_is_one_error_line_naming_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
):
    assert main(argv) == 2
    err = capsys.readouterr().err
    [error] = [line for line in err.splitlines() if "error:" in line]
    assert message in error
    assert "Traceback" not in err
