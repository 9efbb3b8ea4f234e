"""The OWASP CSV-injection rule every CSV the product writes follows (telephony.domain.spreadsheet);
the exports themselves are tested with their commands (test_calls_cli, test_call_campaign)."""

from __future__ import annotations

import pytest

from telephony.domain.spreadsheet import safe_cell


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        "+1+1",
        "-1+1",
        "@SUM(A1)",
        "\t=1+1",
        "\rx",
        "\tplain",  # a tab or CR first is enough (OWASP)
        " =1+1",
        "\n @x",  # blanks first, then a trigger
        "+15105550123",  # a phone number: kept as text, '+' and all
        "-3.5",  # text that looks like a number is text too
    ],
)
def test_a_cell_a_spreadsheet_would_evaluate_gets_a_leading_quote(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["", "Ada", "a=b", "café -1", "'=1", -3.5, 0, None, 480])
def test_text_and_numbers_that_are_not_formulas_are_left_alone(value: object) -> None:
    assert safe_cell(value) == value
