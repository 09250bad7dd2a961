"""Topic and channel names: ``^[.a-zA-Z0-9_-]+(#ephemeral)?$``, 1..64 characters."""

from __future__ import annotations

import pytest

from client.protocol import (
    EPHEMERAL_SUFFIX,
    is_ephemeral,
    is_valid_channel_name,
    is_valid_topic_name,
)

VALID = [
    "a",
    "x" * 64,
    "events",
    "Events.v2_raw-1",
    ".",
    "-",
    "_",
    "0123456789",
    "a#ephemeral",
    "x" * 54 + "#ephemeral",  # 64 with the suffix
]

INVALID = [
    "",
    "x" * 65,
    "x" * 55 + "#ephemeral",  # 65 with the suffix
    "#ephemeral",
    "a#ephemeral#ephemeral",
    "a#Ephemeral",
    "a#ephem",
    "a#",
    "#a",
    "a b",
    " a",
    "a ",
    "a\n",
    "a\t",
    "a/b",
    "a:b",
    "a*",
    "a,b",
    "é",
    "a\u0661",  # ARABIC-INDIC DIGIT ONE is a digit to \d, not to NSQ
    "a#ephemeralx",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_names(name: str) -> None:
    assert is_valid_topic_name(name)
    assert is_valid_channel_name(name)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names(name: str) -> None:
    assert not is_valid_topic_name(name)
    assert not is_valid_channel_name(name)


def test_every_allowed_character() -> None:
    import string

    allowed = set(string.ascii_letters + string.digits + "._-")
    for code in range(256):
        ch = chr(code)
        assert is_valid_topic_name("a" + ch) is (ch in allowed), repr(ch)


def test_is_ephemeral() -> None:
    assert EPHEMERAL_SUFFIX == "#ephemeral"
    assert is_ephemeral("a#ephemeral")
    assert is_ephemeral("x" * 54 + "#ephemeral")
    assert not is_ephemeral("a")
    assert not is_ephemeral("ephemeral")
    assert not is_ephemeral("a#ephemeralx")
    assert not is_ephemeral("a#Ephemeral")
