"""Caller lookup: contacts files, CONTACT_LOOKUP functions, and a lookup that never hurts a call."""

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from telephony.domain.contacts import (
    ContactsError,
    build_lookup,
    check_contacts_settings,
    file_lookup,
    import_lookup,
    load_contacts,
    look_up_caller,
)
from telephony.domain.settings import PROJECT_ROOT, Settings

ADA = "+15105550101"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# Functions CONTACT_LOOKUP can name as tests.test_contacts:<function>.


def sync_lookup(number: str) -> dict[str, str] | None:
    return {"name": "Sync Caller", "Tier": 2} if number == ADA else None  # type: ignore[dict-item]


async def async_lookup(number: str) -> dict[str, str] | None:
    await asyncio.sleep(0)
    return {"name": "Async Caller"} if number == ADA else None


NOT_CALLABLE = {"name": "not a function"}

_release = threading.Event()


def blocking_lookup(number: str) -> dict[str, str]:
    _release.wait(5)
    return {"name": "Too Late"}


class _AsyncCallable:
    async def __call__(self, number: str) -> dict[str, str]:
        return {"name": "Callable Object"}


async_callable = _AsyncCallable()


# CSV


def test_csv_fields_name_and_normalized_numbers(tmp_path):
    path = write(
        tmp_path,
        "contacts.csv",
        "phone_number,Name,account,notes\n"
        '+1 510 555 0101,Ada Lovelace,A-1,"likes tea, not coffee"\n'
        "+1-510-555-0102,Grace Hopper,A-2,\n"
        "(+1) 510.555.0103, Alan Turing ,,\n",
    )
    assert load_contacts(path) == {
        ADA: {"name": "Ada Lovelace", "account": "A-1", "notes": "likes tea, not coffee"},
        "+15105550102": {"name": "Grace Hopper", "account": "A-2"},
        "+15105550103": {"name": "Alan Turing"},
    }


def test_csv_with_bom_blank_lines_and_short_rows(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes("\ufeffphone_number,name,notes\n\n+15105550101,Zoë\n\n".encode())
    assert load_contacts(path) == {ADA: {"name": "Zoë"}}


def test_csv_missing_phone_number_column(tmp_path):
    path = write(tmp_path, "contacts.csv", "number,name\n+15105550101,Ada\n")
    with pytest.raises(ContactsError, match=r"line 1: the header has no phone_number column"):
        load_contacts(path)


def test_csv_bad_number_names_its_line(tmp_path):
    path = write(
        tmp_path,
        "contacts.csv",
        'phone_number,name\n+15105550101,Ada\n+15105550102,"Grace\nHopper"\n555-1234,Bob\n',
    )
    with pytest.raises(ContactsError) as e:
        load_contacts(path)
    assert str(e.value).startswith("CONTACTS_FILE ")
    assert "contacts.csv line 5: phone_number '555-1234' is not a valid" in str(e.value)
    assert "+15105550123" in str(e.value)


def test_csv_empty_number(tmp_path):
    path = write(tmp_path, "contacts.csv", "phone_number,name\n,Nobody\n")
    with pytest.raises(ContactsError, match="line 2: phone_number is empty"):
        load_contacts(path)


def test_csv_duplicate_names_both_lines(tmp_path):
    path = write(
        tmp_path, "contacts.csv", "phone_number,name\n+15105550101,Ada\n+1 510-555-0101,Again\n"
    )
    with pytest.raises(ContactsError, match=r"line 3: \+15105550101 is already listed at line 2"):
        load_contacts(path)


def test_csv_too_many_values(tmp_path):
    path = write(tmp_path, "contacts.csv", "phone_number,name\n+15105550101,Lovelace, Ada\n")
    with pytest.raises(ContactsError, match="line 2: 3 values but the header names 2 columns"):
        load_contacts(path)


def test_csv_column_named_twice(tmp_path):
    path = write(tmp_path, "contacts.csv", "phone_number,name,Name\n")
    with pytest.raises(ContactsError, match="column 'name' appears twice"):
        load_contacts(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes("phone_number,name\n+15105550101,Zoë\n".encode("latin-1"))
    with pytest.raises(ContactsError, match=r"is not UTF-8 text \(byte 0xeb at offset 33\)"):
        load_contacts(path)


@pytest.mark.parametrize("name", ["contacts.csv", "contacts.json"])
@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_empty_file_means_no_contacts(tmp_path, name, text):
    assert load_contacts(write(tmp_path, name, text)) == {}


def test_header_only_csv_means_no_contacts(tmp_path):
    assert load_contacts(write(tmp_path, "contacts.csv", "phone_number,name\n")) == {}


def test_other_extension(tmp_path):
    with pytest.raises(ContactsError, match=r"must end in \.csv or \.json"):
        load_contacts(write(tmp_path, "contacts.txt", "phone_number\n"))


def test_unreadable_file(tmp_path):
    with pytest.raises(ContactsError, match="cannot be read"):
        load_contacts(tmp_path / "missing.csv")


def test_path_inside_the_project_is_shown_relative():
    with pytest.raises(ContactsError, match=r"^CONTACTS_FILE no-such-contacts\.csv cannot"):
        load_contacts(PROJECT_ROOT / "no-such-contacts.csv")


# JSON


def test_json_list_of_objects(tmp_path):
    path = write(
        tmp_path,
        "contacts.json",
        '[{"phone_number": "+1 (510) 555-0101", "name": "Ada", "vip": true, "visits": 3,'
        ' "tags": ["a", "b"], "notes": null}]',
    )
    assert load_contacts(path) == {
        ADA: {"name": "Ada", "vip": "true", "visits": "3", "tags": '["a","b"]'}
    }


def test_json_object_by_number(tmp_path):
    path = write(
        tmp_path,
        "contacts.json",
        '{"+1 510 555 0101": {"name": "Ada"}, "+15105550102": {"phone_number": "+15105550102"}}',
    )
    assert load_contacts(path) == {ADA: {"name": "Ada"}, "+15105550102": {}}


def test_broken_json_gives_position(tmp_path):
    path = write(tmp_path, "contacts.json", '[\n  {"phone_number": "+15105550101",}\n]')
    with pytest.raises(ContactsError, match=r"is not valid JSON \(.* at line 2 column 35\)"):
        load_contacts(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"just text"', r"holds str: it must be a list of objects"),
        ('[["+15105550101", "Ada"]]', r"entry \[0\] is list: it must be"),
        ('[{"name": "Ada"}]', r'entry \[0\] has no "phone_number"'),
        ('{"+15105550101": "Ada"}', r"key '\+15105550101' is str: it must be"),
        ('{"5550101": {"name": "Ada"}}', r"key '5550101': phone_number '5550101' is not a valid"),
        ('[{"phone_number": 15105550101}]', r"entry \[0\]: phone_number '15105550101' is not"),
        ('[{"phone_number": null}]', r"entry \[0\]: phone_number must be text"),
        ('{"+15105550101": {"phone_number": "+15105550102"}}', r"is another number"),
    ],
)
def test_json_of_the_wrong_shape(tmp_path, text, message):
    with pytest.raises(ContactsError, match=message):
        load_contacts(write(tmp_path, "contacts.json", text))


def test_json_duplicate_names_both_entries(tmp_path):
    path = write(
        tmp_path,
        "contacts.json",
        '[{"phone_number": "+15105550101"}, {"phone_number": "+1 510 555 0101"}]',
    )
    with pytest.raises(
        ContactsError, match=r"entry \[1\]: \+15105550101 is already listed at entry \[0\]"
    ):
        load_contacts(path)


def test_json_object_duplicate_after_normalizing(tmp_path):
    path = write(tmp_path, "contacts.json", '{"+15105550101": {}, "+1-510-555-0101": {}}')
    with pytest.raises(ContactsError, match=r"is already listed at key '\+15105550101'"):
        load_contacts(path)


# The example files


@pytest.mark.parametrize("name", ["contacts.example.csv", "contacts.example.json"])
def test_example_files_parse(name):
    contacts = load_contacts(PROJECT_ROOT / name)
    assert len(contacts) >= 3
    assert all(number.startswith("+1510555") for number in contacts)
    assert contacts[ADA]["name"] == "Ada Lovelace"
    assert set(contacts[ADA]) == {"name", "account", "notes"}


def test_example_files_agree():
    assert load_contacts(PROJECT_ROOT / "contacts.example.csv") == load_contacts(
        PROJECT_ROOT / "contacts.example.json"
    )


# Lookups


async def test_file_lookup_reads_once(tmp_path):
    path = write(tmp_path, "contacts.csv", "phone_number,name\n+15105550101,Ada\n")
    lookup = file_lookup(path)
    path.unlink()
    assert await lookup(ADA) == {"name": "Ada"}
    assert await lookup("+15105550199") is None


async def test_import_lookup_sync_function():
    lookup = import_lookup("tests.test_contacts:sync_lookup")
    assert await lookup(ADA) == {"name": "Sync Caller", "Tier": 2}
    assert await look_up_caller(lookup, ADA) == {"name": "Sync Caller", "tier": "2"}
    assert await look_up_caller(lookup, "+15105550199") is None


async def test_import_lookup_async_function():
    lookup = import_lookup(" tests.test_contacts:async_lookup ")
    assert await look_up_caller(lookup, ADA) == {"name": "Async Caller"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.test_contacts", r"must look like package\.module:function"),
        (":sync_lookup", r"must look like package\.module:function"),
        ("tests.no_such_module:f", r"module 'tests\.no_such_module' cannot be imported"),
        ("tests.test_contacts:no_such_function", r"has no 'no_such_function'"),
        ("tests.test_contacts:NOT_CALLABLE", r"is dict, not a function"),
    ],
)
def test_bad_contact_lookup_spec(spec, message):
    with pytest.raises(ContactsError, match=rf"^CONTACT_LOOKUP='{spec}'.*{message}"):
        import_lookup(spec)


async def test_build_lookup_precedence(tmp_path):
    path = write(tmp_path, "contacts.csv", "phone_number,name\n+15105550101,From File\n")
    assert build_lookup(Settings()) is None

    from_file = build_lookup(Settings(contacts_file=path))
    assert from_file is not None
    assert await from_file(ADA) == {"name": "From File"}

    both = build_lookup(
        Settings(contacts_file=path, contact_lookup="tests.test_contacts:async_lookup")
    )
    assert both is not None
    assert await both(ADA) == {"name": "Async Caller"}


def test_build_lookup_raises_on_a_broken_file(tmp_path):
    path = write(tmp_path, "contacts.csv", "name\nAda\n")
    with pytest.raises(ContactsError, match="no phone_number column"):
        build_lookup(Settings(contacts_file=path))


# look_up_caller: never raises, never blocks long


async def test_known_and_unknown_callers(tmp_path):
    lookup = file_lookup(write(tmp_path, "contacts.csv", "phone_number,name\n+15105550101,Ada\n"))
    assert await look_up_caller(lookup, ADA) == {"name": "Ada"}
    assert await look_up_caller(lookup, "+15105550199") is None


@pytest.mark.parametrize("number", ["", "5551234", "sip-15105550101", "+1 510 555 0101"])
async def test_no_lookup_for_an_empty_or_malformed_number(number):
    calls: list[str] = []

    async def lookup(n: str) -> dict[str, str]:
        calls.append(n)
        return {"name": "x"}

    assert await look_up_caller(lookup, number) is None
    assert calls == []


async def test_no_lookup_configured():
    assert await look_up_caller(None, ADA) is None


async def test_a_lookup_that_raises_is_logged_with_the_number_masked(caplog):
    async def broken(number: str) -> dict[str, str]:
        raise ConnectionError(f"CRM down while looking up {number}")

    with caplog.at_level(logging.WARNING, logger="telephony.domain.contacts"):
        assert await look_up_caller(broken, ADA) is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "ConnectionError" in record.getMessage()
    assert "+1********01" in record.getMessage()
    assert ADA not in caplog.text


async def test_a_lookup_that_raises_synchronously():
    def broken(number: str):
        raise KeyError(number)

    assert await look_up_caller(broken, ADA) is None  # type: ignore[arg-type]


async def test_a_lookup_that_hangs_times_out(caplog):
    async def hangs(number: str) -> dict[str, str]:
        await asyncio.sleep(30)
        return {"name": "never"}

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="telephony.domain.contacts"):
        assert await look_up_caller(hangs, ADA, timeout=0.2) is None
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 1.0
    assert "timed out after 0.2s" in caplog.text
    assert ADA not in caplog.text


async def test_a_blocking_sync_function_does_not_stall_the_call():
    lookup = import_lookup("tests.test_contacts:blocking_lookup")
    _release.clear()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        assert await look_up_caller(lookup, ADA, timeout=0.2) is None
    finally:
        _release.set()
        task.cancel()
    assert time.monotonic() - started < 1.0
    assert ticks >= 5  # the event loop kept running while the function blocked


@pytest.mark.parametrize("result", [["Ada"], "Ada", 42])
async def test_a_lookup_returning_something_else_gives_none(result, caplog):
    async def odd(number: str):
        return result

    with caplog.at_level(logging.WARNING, logger="telephony.domain.contacts"):
        assert await look_up_caller(odd, ADA) is None  # type: ignore[arg-type]
    assert "not a mapping" in caplog.text


# Start-up checks


def test_check_contacts_settings(tmp_path):
    good = write(tmp_path, "good.csv", "phone_number,name\n+15105550101,Ada\n")
    bad = write(tmp_path, "bad.json", "[1, 2]")

    assert check_contacts_settings(Settings()) == []
    assert check_contacts_settings(Settings(contacts_file=good)) == []
    assert check_contacts_settings(Settings(contact_lookup="tests.test_contacts:sync_lookup")) == []

    [problem] = check_contacts_settings(Settings(contacts_file=bad))
    assert problem.startswith("CONTACTS_FILE ") and "entry [0] is int" in problem

    [problem] = check_contacts_settings(Settings(contact_lookup="nope"))
    assert problem.startswith("CONTACT_LOOKUP='nope' must look like package.module:function")

    # The lookup in use is the one checked; a missing file is the settings parser's to report.
    assert check_contacts_settings(Settings(contacts_file=tmp_path / "missing.csv")) == []
    assert (
        check_contacts_settings(
            Settings(contacts_file=bad, contact_lookup="tests.test_contacts:sync_lookup")
        )
        == []
    )


async def test_import_lookup_callable_object_with_async_call():
    lookup = import_lookup("tests.test_contacts:async_callable")
    assert await look_up_caller(lookup, ADA) == {"name": "Callable Object"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('phone_number,name\n+15105550101,"Ada\n+15105550102,Grace\n', "line 2: not valid CSV"),
        ('phone_number,name\n+15105550101,"Ada"x\n+15105550102,Grace\n', "line 2: not valid CSV"),
    ],
)
def test_csv_malformed_row_is_refused_with_its_line_never_merged(tmp_path, text, message):
    path = write(tmp_path, "contacts.csv", text)
    with pytest.raises(ContactsError, match=f"^CONTACTS_FILE .*contacts.csv {message}"):
        load_contacts(path)
