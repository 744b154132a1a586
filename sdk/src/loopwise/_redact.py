"""Built-in redactors: functions from text to text, run on captured content before export.

They run on the export thread, on the captured text (for a structured value, its JSON), so a
redactor never costs the app's thread anything. Replacements contain no quote or backslash,
so JSON stays valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?!\w)")
# A phone number: an optional +country code, then 7 to 12 more digits in groups separated by
# spaces, dots, dashes or a parenthesised area code. Runs of digits with no separators and no
# "+" are left alone: they are more often ids, amounts or timestamps than phone numbers.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?|\d{1,4}[\s.-])(?:\d{2,4}[\s.-]){1,3}\d{2,4}(?![\w])"
    r"|(?<![\w+])\+\d{8,14}(?!\w)"
)
# 13 to 19 digits, optionally grouped by single spaces or dashes; confirmed by the Luhn check.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def redact_emails(text: str) -> str:
    """Replace e-mail addresses with ``[REDACTED_EMAIL]``.

    Example:
        >>> redact_emails("write to ana.lima+ops@example.co.uk today")
        'write to [REDACTED_EMAIL] today'
    """
    return _EMAIL.sub("[REDACTED_EMAIL]", text)


def redact_phone_numbers(text: str) -> str:
    """Replace phone numbers (grouped digits, or ``+`` and 8 to 14 digits) with ``[REDACTED_PHONE]``.

    Example:
        >>> redact_phone_numbers("call +1 415-555-0132 or (020) 7946 0958, order 20261122")
        'call [REDACTED_PHONE] or [REDACTED_PHONE], order 20261122'
    """

    def sub(m: re.Match[str]) -> str:
        digits = sum(ch.isdigit() for ch in m.group())
        return "[REDACTED_PHONE]" if 7 <= digits <= 15 else m.group()  # E.164 allows at most 15

    return _PHONE.sub(sub, text)


def redact_card_numbers(text: str) -> str:
    """Replace payment card numbers that pass the Luhn check with ``[REDACTED_CARD]``.

    Example:
        >>> redact_card_numbers("card 4111 1111 1111 1111, ref 1234 5678 9012 3456")
        'card [REDACTED_CARD], ref 1234 5678 9012 3456'
    """

    def sub(m: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", m.group())
        return "[REDACTED_CARD]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else m.group()

    return _CARD.sub(sub, text)


# Cards first: a card number would otherwise partly match the phone pattern.
BUILTIN_REDACTORS: dict[str, tuple[Callable[[str], str], ...]] = {
    "emails": (redact_emails,),
    "phones": (redact_phone_numbers,),
    "cards": (redact_card_numbers,),
    "pii": (redact_card_numbers, redact_emails, redact_phone_numbers),
}
