"""CSV files a spreadsheet can open without running anything in them (OWASP, CSV injection).

A spreadsheet evaluates a cell that starts with `=`, `+`, `-` or `@` as a formula
(`=HYPERLINK(...)`, `=cmd|' /C calc'!A0`), and one starting with a tab or a carriage return
too. Transcripts, names, metadata and contact columns are text from outside, so every CSV the
product writes goes through `SafeCsvWriter`:

- a text cell starting with one of those characters, or with blanks and then one of them
  (`" =1+1"`; some programs trim blanks), gets a leading `'`: the spreadsheet shows it as
  text. This includes phone numbers: `'+15105550123` stays text, `+` and all, where a bare
  `+15105550123` would become a number (its `+` lost, a longer one shown as 4.42E+11);
- numbers the product writes as numbers (durations, counts, codes) are left alone;
- every cell is in double quotes, so a `;` or `,` inside a value cannot start a new cell in
  a spreadsheet that splits on another separator than ours.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` with a leading `'` if a spreadsheet would evaluate it; non-text unchanged."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS) or value.lstrip().startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeCsvWriter:
    """csv.writer's writerow, with every cell through `safe_cell` and in double quotes."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, quoting=csv.QUOTE_ALL)

    def writerow(self, cells: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in cells])
