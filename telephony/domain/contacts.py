"""Caller lookup: the caller's contact record (name and other fields) by phone number.

Two sources, chosen by settings:

- CONTACT_LOOKUP="package.module:function": your own function (sync or async) taking the
  caller's E.164 number and returning a mapping of fields ("name", ...) or None.
- CONTACTS_FILE: a CSV or JSON file, loaded once per worker process when the lookup is built.

CSV: a header row with a `phone_number` column; every other column is a field and `name`
is the name the agent greets the caller by. JSON: a list of objects each with
"phone_number", or an object mapping number -> object of fields. Numbers may contain
spaces, dashes, dots and parentheses; what remains must be E.164 (+15105550123).

The lookup runs at call start through `look_up_caller`, which never raises and gives up
after a short timeout: a slow or broken lookup costs the caller their name, not the call.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telephony.domain.bounded_json import (
    MAX_FILE_BYTES,
    InputFileError,
    JsonLimitError,
    loads_bounded,
    read_text_file,
)
from telephony.domain.csv_records import CsvFormatError, csv_records
from telephony.domain.paths import PROJECT_ROOT
from telephony.domain.phone_numbers import InvalidDestination, human_number, is_e164, mask_number

if TYPE_CHECKING:
    from telephony.domain.settings import Settings

logger = logging.getLogger("telephony.domain.contacts")

Contact = Mapping[str, str]
ContactLookup = Callable[[str], Awaitable[Contact | None]]

NUMBER_FIELD = "phone_number"
_EXAMPLE_NUMBER = "+15105550123"
# What a number may carry besides digits and '+', removed before checking it is E.164.


class ContactsError(ValueError):
    """A contacts file or CONTACT_LOOKUP that cannot be used; the message says what to fix."""


def _shown(path: Path) -> str:
    """The path as the user wrote it: relative to the project when it lies inside."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _text(value: object) -> str:
    """A field value as text: JSON true/false stay lowercase, lists and objects stay JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value).strip()


def _fields(items: Any, where: str) -> dict[str, str]:
    """Field name -> text, names lowercased, empty values left out."""
    fields: dict[str, str] = {}
    for key, value in items:
        name = str(key).strip().lower()
        if not name or name == NUMBER_FIELD:
            continue
        if name in fields:
            raise ContactsError(f"{where}: field {name!r} appears twice")
        text = _text(value)
        if text:
            fields[name] = text
    return fields


def _number(raw: object, where: str) -> str:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise ContactsError(
            f"{where}: {NUMBER_FIELD} must be text like '{_EXAMPLE_NUMBER}', "
            f"got {type(raw).__name__}"
        )
    text = str(raw)
    if not text.strip():
        raise ContactsError(f"{where}: {NUMBER_FIELD} is empty")
    try:
        return human_number(text, field=NUMBER_FIELD)
    except InvalidDestination as e:
        raise ContactsError(f"{where}: {e}, e.g. {_EXAMPLE_NUMBER}") from None


def _add(
    contacts: dict[str, dict[str, str]],
    seen: dict[str, str],
    number: str,
    fields: dict[str, str],
    where: str,
    label: str,
) -> None:
    if number in contacts:
        raise ContactsError(f"{where}: {number} is already listed at {seen[number]}")
    contacts[number] = fields
    seen[number] = label


def _read_text(path: Path, shown: str) -> str:
    try:
        return read_text_file(
            path, name=f"CONTACTS_FILE {shown}", utf8_fix="save it as UTF-8 (in Excel: CSV UTF-8)"
        )
    except InputFileError as e:
        raise ContactsError(str(e)) from None


def _parse_csv(text: str, shown: str) -> dict[str, dict[str, str]]:
    contacts: dict[str, dict[str, str]] = {}
    seen: dict[str, str] = {}
    header: list[str] | None = None
    try:
        # Strict: an unclosed quote is refused, not merged with the rows after it. Quoted
        # values may hold line breaks here (a name or a note over two lines).
        for start, row in csv_records(text, line_breaks=True):
            if header is None:
                header = [cell.strip().lower() for cell in row]
                if NUMBER_FIELD not in header:
                    raise ContactsError(
                        f"CONTACTS_FILE {shown} line {start}: the header has no "
                        f"{NUMBER_FIELD} column: the first row must name the columns, "
                        f"e.g. {NUMBER_FIELD},name"
                    )
                named = [h for h in header if h]
                if len(named) != len(set(named)):
                    twice = next(h for h in named if named.count(h) > 1)
                    raise ContactsError(
                        f"CONTACTS_FILE {shown} line {start}: column {twice!r} appears twice"
                    )
                continue
            where = f"CONTACTS_FILE {shown} line {start}"
            if len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
                raise ContactsError(
                    f"{where}: {len(row)} values but the header names {len(header)} columns "
                    "(quote values that contain commas)"
                )
            values = dict(zip(header, row, strict=False))
            number = _number(values.get(NUMBER_FIELD, ""), where)
            fields = _fields(((k, v) for k, v in values.items() if k), where)
            _add(contacts, seen, number, fields, where, f"line {start}")
    except CsvFormatError as e:
        raise ContactsError(f"CONTACTS_FILE {shown} {e}") from None
    return contacts


_JSON_SHAPE = (
    f'a list of objects each with "{NUMBER_FIELD}", or an object mapping each number '
    'to an object of fields, e.g. {"+15105550123": {"name": "Ada"}}'
)


def _parse_json(text: str, shown: str) -> dict[str, dict[str, str]]:
    if not text.strip():
        return {}
    try:
        data = loads_bounded(text, max_chars=MAX_FILE_BYTES)
    except JsonLimitError as e:
        raise ContactsError(f"CONTACTS_FILE {shown} {e}") from None
    contacts: dict[str, dict[str, str]] = {}
    seen: dict[str, str] = {}
    if isinstance(data, list):
        for index, entry in enumerate(data):
            label = f"entry [{index}]"
            where = f"CONTACTS_FILE {shown} {label}"
            if not isinstance(entry, dict):
                raise ContactsError(f"{where} is {type(entry).__name__}: it must be {_JSON_SHAPE}")
            if NUMBER_FIELD not in entry:
                raise ContactsError(f'{where} has no "{NUMBER_FIELD}"')
            number = _number(entry[NUMBER_FIELD], where)
            _add(contacts, seen, number, _fields(entry.items(), where), where, label)
    elif isinstance(data, dict):
        for key, entry in data.items():
            label = f"key {key!r}"
            where = f"CONTACTS_FILE {shown} {label}"
            number = _number(key, where)
            if not isinstance(entry, dict):
                raise ContactsError(f"{where} is {type(entry).__name__}: it must be {_JSON_SHAPE}")
            inner = entry.get(NUMBER_FIELD)
            if inner is not None and _number(inner, where) != number:
                raise ContactsError(f'{where}: its "{NUMBER_FIELD}" {inner!r} is another number')
            _add(contacts, seen, number, _fields(entry.items(), where), where, label)
    else:
        raise ContactsError(
            f"CONTACTS_FILE {shown} holds {type(data).__name__}: it must be {_JSON_SHAPE}"
        )
    return contacts


def load_contacts(path: Path) -> dict[str, dict[str, str]]:
    """E.164 number -> fields (`phone_number` itself left out); raise ContactsError on any fault."""
    shown = _shown(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ContactsError(f"CONTACTS_FILE {shown} must end in .csv or .json")
    text = _read_text(path, shown)
    if suffix == ".csv":
        return _parse_csv(text, shown)
    return _parse_json(text, shown)


def file_lookup(path: Path) -> ContactLookup:
    """A lookup over the contacts file, read now; each lookup is a dictionary read."""
    contacts = load_contacts(path)
    logger.info("loaded %d contacts from %s", len(contacts), _shown(path))

    async def lookup(number: str) -> Contact | None:
        record = contacts.get(number)
        return dict(record) if record is not None else None

    return lookup


def import_lookup(spec: str) -> ContactLookup:
    """The function CONTACT_LOOKUP names ("package.module:function"), made async.

    A sync function runs in a worker thread, so a slow database call cannot stall the call's
    event loop and the lookup timeout still applies.
    """
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ContactsError(
            f"CONTACT_LOOKUP={spec!r} must look like package.module:function, "
            "e.g. mycrm.lookup:find_caller"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as e:
        raise ContactsError(
            f"CONTACT_LOOKUP={spec!r}: module {module_name!r} cannot be imported "
            f"({type(e).__name__}: {e}); check the name and that it is on the Python path"
        ) from e
    try:
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError as e:
        raise ContactsError(
            f"CONTACT_LOOKUP={spec!r}: module {module_name!r} has no {attr!r}"
        ) from e
    if not callable(target):
        raise ContactsError(
            f"CONTACT_LOOKUP={spec!r} is {type(target).__name__}, not a function: "
            "name a function taking the caller's number"
        )
    function = target
    # A coroutine function is awaited on the loop; anything else runs in a thread, and an
    # awaitable it hands back (an object with `async def __call__`) is awaited on the loop.
    is_async = inspect.iscoroutinefunction(function)

    async def lookup(number: str) -> Contact | None:
        if is_async:
            return await function(number)
        result = await asyncio.to_thread(function, number)
        if inspect.isawaitable(result):
            result = await result
        return result

    return lookup


def build_lookup(settings: Settings) -> ContactLookup | None:
    """CONTACT_LOOKUP if set, else the CONTACTS_FILE lookup, else None; ContactsError if broken."""
    if settings.contact_lookup:
        if settings.contacts_file:
            logger.info("CONTACT_LOOKUP is set, so CONTACTS_FILE is not used")
        return import_lookup(settings.contact_lookup)
    if settings.contacts_file:
        return file_lookup(settings.contacts_file)
    return None


async def _call(lookup: ContactLookup, number: str) -> object:
    result = lookup(number)
    if inspect.isawaitable(result):
        return await result
    return result


async def look_up_caller(
    lookup: ContactLookup | None, number: str, *, timeout: float = 1.0
) -> Contact | None:
    """The caller's record, or None: unknown, no lookup, a bad number, too slow, or an error.

    Never raises (other than the caller's own cancellation): a failed lookup is logged
    with the number masked and the call goes on without a name.
    """
    if lookup is None or not number or not is_e164(number):
        return None
    masked = mask_number(number)
    try:
        result = await asyncio.wait_for(_call(lookup, number), timeout)
    except TimeoutError:
        logger.warning("contact lookup for %s timed out after %gs", masked, timeout)
        return None
    except Exception as e:
        logger.warning("contact lookup for %s failed: %s", masked, type(e).__name__)
        return None
    if result is None:
        return None
    if not isinstance(result, Mapping):
        logger.warning(
            "contact lookup for %s returned %s, not a mapping of fields",
            masked,
            type(result).__name__,
        )
        return None
    try:
        return _fields(result.items(), "contact lookup")
    except ContactsError:
        logger.warning("contact lookup for %s returned a field name twice", masked)
        return None


def check_contacts_settings(settings: Settings) -> list[str]:
    """Start-up problems with the lookup in use: a bad CONTACT_LOOKUP or contacts file.

    A missing CONTACTS_FILE is already reported by the settings parser.
    """
    try:
        if settings.contact_lookup:
            import_lookup(settings.contact_lookup)
        elif settings.contacts_file and settings.contacts_file.is_file():
            load_contacts(settings.contacts_file)
    except ContactsError as e:
        return [str(e)]
    return []
