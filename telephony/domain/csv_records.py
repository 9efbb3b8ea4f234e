"""One strict, bounded CSV reader for the files people give us (campaign lists, contacts).

Python's csv module is lenient: an unterminated quote swallows every following line into
one value, and `"a"b` quietly becomes `ab`. For a list of phone numbers that silently merges
rows, so here a record is refused, with its line number, when:

- its quoting is malformed (strict mode: text after a closing quote, a quote never closed);
- it spans more than one physical line, unless `line_breaks` allows it (a quoted value
  holding a line break is almost always a stray quote; a call list never needs one);
- a value is longer than `max_field_chars`, or more than `max_rows` rows follow the header.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

MAX_FIELD_CHARS = 10_000
MAX_ROWS = 100_000  # not counting the header


class CsvFormatError(ValueError):
    """A record that cannot be trusted; `line` is where it starts (1 = the first line)."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


def csv_records(
    text: str,
    *,
    max_rows: int = MAX_ROWS,
    max_field_chars: int = MAX_FIELD_CHARS,
    line_breaks: bool = False,
) -> Iterator[tuple[int, list[str]]]:
    """(the line a record starts on, its fields) for each record that is not blank, the
    first being the header; raises CsvFormatError at the first record that breaks the rules
    above."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0  # the last physical line consumed
    count = -1  # the header is not a row
    while True:
        start = end + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            problem = str(e)
            if "unexpected end of data" in problem:
                problem = 'a quote (") opened on this line is never closed'
            raise CsvFormatError(start, f"not valid CSV: {problem}") from None
        end = reader.line_num
        if end > start and not line_breaks:
            raise CsvFormatError(
                start,
                f'a quoted value runs on to line {end} (a stray or unclosed quote (")?): '
                "values cannot contain line breaks",
            )
        longest = max((len(cell) for cell in record), default=0)
        if longest > max_field_chars:
            raise CsvFormatError(
                start, f"a value of {longest} characters (at most {max_field_chars})"
            )
        if not any(cell.strip() for cell in record):
            continue
        count += 1
        if count > max_rows:
            raise CsvFormatError(start, f"more than {max_rows} rows: split the file")
        yield start, record
