"""Fuzzing `read_job_metadata` with generated job metadata (a fixed seed: the same values on
every run; no hypothesis, a small generator of the shapes that broke it or could).

What must hold for every value: only a dial request is ever refused (InvalidMetadata, one
short line), anything else is read or ignored, and no number but clean ASCII E.164 ever comes
out as one to dial or to transfer to.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from telephony.domain.dial_request import (
    DIAL_KEY,
    MAX_CONTEXT_ITEMS,
    MAX_CONTEXT_KEY_LENGTH,
    MAX_CONTEXT_VALUE_LENGTH,
    InvalidMetadata,
    read_job_metadata,
)

SEED = 19
VALUES = 3000
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
SIP = re.compile(r"sip:[A-Za-z0-9_.!~*+-]{1,64}@[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")

ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
NUMBERS = ["+14155550123", "+15105550123", "+442079460018", "+33142685300", "+61293744000"]
# Characters that have hurt parsers, terminals or SIP headers.
NASTY = ["\x00", "\x7f", "\n", "\r", "\t", "\u202e", "\u200f", "\ufeff", "<", ">", '"', "'", " "]
NASTY += ["\\", ";", "@", ":", "\u00a0", "\ud800", "\U0001f600", "\u0663", "\uff13", "%00"]
_POOL_RNG = random.Random(SEED)
# Each pool twice over, so a slice from anywhere in its first half is whole.
POOLS = [
    2 * "".join(_POOL_RNG.choice("abc XYZ 019=+-@") for _ in range(10_000)),
    2 * "".join(_POOL_RNG.choice(NASTY) for _ in range(2_000)),
    2 * "".join(chr(_POOL_RNG.randint(1, 0x10FFFF)) for _ in range(2_000)),
]


def spellings(rng: random.Random, number: str) -> str:
    """`number` as people, programs and attackers write it."""
    national = number[2:] if number.startswith("+1") else number[1:]
    forms = [
        number,
        number[1:],
        number + "\n",
        " " + number,
        f"+1 {national[:3]} {national[3:6]} {national[6:]}",
        f"+1-{national[:3]}-{national[3:6]}-{national[6:]}",
        f"({national[:3]}) {national[3:6]}-{national[6:]}",
        number.translate(ARABIC_INDIC),
        number.translate(FULL_WIDTH),
        "tel:" + number,
        number + "0" * rng.randint(1, 9),
        number[: rng.randint(1, len(number))],
        number[:5] + rng.choice(NASTY) + number[5:],
        "+" + "9" * rng.randint(1, 30),
        "+0" + number[2:],
    ]
    return rng.choice(forms)


def transfer_target(rng: random.Random) -> object:
    host = rng.choice(["pbx.example.com", "10.0.0.1", "a" * 64 + ".com", "h" * 300, "[::1]"])
    forms: list[object] = [
        spellings(rng, rng.choice(NUMBERS)),
        "tel:" + spellings(rng, rng.choice(NUMBERS)),
        f"sip:desk@{host}",
        f"sip:desk@{host}:{rng.choice([5060, 0, 65535, 65536, 99999])}",
        f"sip:de{rng.choice(NASTY)}sk@pbx.example.com",
        f"sip:desk@pbx{rng.choice(NASTY)}.example.com",
        f"sips:desk@{host}",
        "sip:@pbx.example.com",
        "sip:" + "u" * rng.randint(60, 70) + "@pbx.example.com",
        f'sip:desk@pbx.example.com>;x="{rng.choice(NASTY)}"',
        "SIP:desk@pbx.example.com",
        rng.randint(0, 10**12),
        None,
        ["tel:+14155550123"],
    ]
    return rng.choice(forms)


def text_value(rng: random.Random) -> str:
    """A slice of one of the pools (cheap: thousands of values are made per run)."""
    size = rng.choice([0, 1, 10, 100, 499, 500, 501, 5000, 70_000])
    pool = rng.choice(POOLS)
    start = rng.randrange(len(pool))
    return pool[start : start + size] if size <= len(pool) // 2 else pool * (size // len(pool))


def json_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randint(0, 9 if depth < 2 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1.5, 1e308, 10**18, 10**99])
    if kind in (2, 3):
        return text_value(rng)
    if kind == 4:
        return spellings(rng, rng.choice(NUMBERS))
    if kind == 5:
        return rng.choice(["NaN", "-0", "1e400"])
    if kind in (6, 7):
        return {text_value(rng)[:80]: json_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]


def nested(rng: random.Random, inner: str) -> str:
    depth = rng.choice([15, 16, 17, 33, 1000, 30_000, 100_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return opener * depth + inner + closer * depth


def huge_int(rng: random.Random) -> str:
    return rng.choice(["", "-"]) + "9" * rng.choice([99, 100, 101, 4300, 4301, 10_000])


def dial_request(rng: random.Random) -> str:
    number = rng.choice(NUMBERS)
    data: dict[str, object] = {DIAL_KEY: number if rng.random() < 0.6 else spellings(rng, number)}
    if rng.random() < 0.4:
        data["transfer_to"] = rng.choice([rng.choice(NUMBERS), transfer_target(rng)])
    if rng.random() < 0.2:
        data["dtmf"] = rng.choice(["ww1234#", "1" * 33, "12\n", "\u0661\u0662", 12])
    if rng.random() < 0.2:
        data["force"] = rng.choice([True, "yes", 1])
    if rng.random() < 0.3:
        keys = rng.choice([1, 5, 50, 51, 500])
        data["context"] = {
            rng.choice(["name", "k" * rng.choice([63, 64]), text_value(rng)[:70]]) + str(i): (
                rng.choice([text_value(rng), rng.randint(0, 9), True, None, {"a": 1}])
                if i < 3
                else rng.choice(["Dana", 3, False])
            )
            for i in range(keys)
        }
    if rng.random() < 0.05:
        data[text_value(rng)[:50]] = 1
    return json.dumps(data, ensure_ascii=rng.random() < 0.5)


def inbound(rng: random.Random) -> str:
    data = {text_value(rng)[:100]: json_value(rng) for _ in range(rng.choice([0, 3, 20, 60]))}
    return json.dumps(data, ensure_ascii=rng.random() < 0.5)


def hostile_text(rng: random.Random) -> str:
    forms: list[Callable[[], str]] = [
        lambda: nested(rng, "1"),
        lambda: nested(rng, f'"{DIAL_KEY}"'),
        lambda: f'{{"{DIAL_KEY}": "+14155550123", "context": {nested(rng, "1")}}}',
        lambda: f'{{"tier": {nested(rng, "[]")}}}',
        lambda: f'{{"n": {huge_int(rng)}}}',
        lambda: f'{{"{DIAL_KEY}": {huge_int(rng)}}}',
        lambda: f'{{"{DIAL_KEY}": "+14155550123", "context": {{"n": {huge_int(rng)}}}}}',
        lambda: huge_int(rng),
        lambda: '{"a": "' + "x" * rng.choice([63_000, 64_000, 70_000]) + '"}',
        lambda: text_value(rng),
        lambda: json.dumps(json_value(rng)),
        lambda: rng.choice(['{"a": NaN}', '{"a": Infinity}', "[1e999]", '{"a": 1', '"\\ud800"']),
        lambda: f'{{"{DIAL_KEY}": "+14155550123"' + rng.choice(NASTY),
        lambda: ('{"' + DIAL_KEY + '": "+14155550123", "x": "' + "\\" * rng.randint(1, 9)) + '"}',
    ]
    return rng.choice(forms)()


def mutated(rng: random.Random, text: str) -> str:
    """A near-valid value: a slice cut, a character dropped or a nasty one put in."""
    if not text:
        return text
    at = rng.randrange(len(text))
    return rng.choice([text[:at], text[:at] + text[at + 1 :], text[:at] + rng.choice(NASTY)])


def generated(count: int) -> list[str]:
    rng = random.Random(SEED)
    makers = [dial_request, dial_request, inbound, hostile_text]
    values = []
    for _ in range(count):
        text = rng.choice(makers)(rng)
        values.append(mutated(rng, text) if rng.random() < 0.2 else text)
    return values


def check(metadata: str) -> str:
    """Read `metadata`, check what came of it; the outcome: refused, dial or inbound."""
    try:
        read = read_job_metadata(metadata)
    except InvalidMetadata as e:
        # Only a dial request is refused (an inbound caller is never hung up on), in one line.
        assert DIAL_KEY in metadata or "\\u" in metadata, metadata[:200]
        message = str(e)
        assert "\n" not in message and len(message) < 1000, message[:300]
        return "refused"
    dial = read.dial
    if dial is None:
        assert len(read.context) <= MAX_CONTEXT_ITEMS
        assert all(len(k) <= MAX_CONTEXT_KEY_LENGTH for k in read.context)
        assert all(len(v) <= MAX_CONTEXT_VALUE_LENGTH for v in read.context.values())
        return "inbound"
    assert E164.fullmatch(dial.phone_number), dial.phone_number
    if dial.transfer_to is not None:
        number = dial.transfer_to.removeprefix("tel:")
        assert E164.fullmatch(number) or SIP.fullmatch(dial.transfer_to), dial.transfer_to
    assert re.fullmatch(r"[0-9*#wW]{0,32}", dial.dtmf), dial.dtmf
    assert isinstance(dial.force, bool)
    assert len(dial.context) <= MAX_CONTEXT_ITEMS
    assert all(len(k) <= MAX_CONTEXT_KEY_LENGTH for k in dial.context)
    assert all(len(v) <= MAX_CONTEXT_VALUE_LENGTH for v in dial.context.values())
    return "dial"


def test_generated_metadata_never_escapes_and_only_clean_e164_is_dialed():
    values = generated(VALUES)
    outcomes = {"refused": 0, "dial": 0, "inbound": 0}
    for metadata in values:
        outcomes[check(metadata)] += 1
    # The generator reaches every outcome, so the checks above ran on each.
    assert len(values) >= 2000
    assert all(count >= 50 for count in outcomes.values()), outcomes
