"""`Email`: pydantic's `EmailStr`, with a fast path for the common address.

email-validator costs tens of microseconds an address (Unicode tables, IDNA), which a bulk
import of 100,000 customers pays 100,000 times. Almost every real address is plain ASCII:
a dot-atom of letters, digits and `_ + -` before the @, and lower-risk hostname labels
after it. For those the library's answer is known (valid; the domain lower-cased, the local
part kept, or lower-cased for the RFC 2142 mailbox names), so we give it without the call.
Anything else (quotes, Unicode, Punycode, `--`, special-use domains, lengths near a limit)
goes to pydantic's own validator: what is accepted, refused and how it is normalised does
not change. tests/kit/test_email.py compares the two on generated addresses.
"""

from __future__ import annotations

import re
from typing import Annotated

import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from pydantic import AfterValidator, WithJsonSchema
from pydantic.networks import validate_email

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*"  # local part: a dot-atom of common characters
    rf"@(?:{_LABEL}\.)+[a-z]{{2,63}}",  # domain: hostname labels, a letters-only TLD
    re.IGNORECASE | re.ASCII,
)
_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
# Well inside email-validator's limits (64 before the @, 253 after, 254 in all).
_MAX_LOCAL = 64
_MAX_TOTAL = 200


_SPECIAL = frozenset(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def _special(domain: str) -> bool:
    labels = domain.split(".")
    return any(".".join(labels[i:]) in _SPECIAL for i in range(len(labels)))


def normalise(value: str) -> str | None:
    """The library's normalised form of a plain address, or None to ask the library."""
    if len(value) > _MAX_TOTAL or _PLAIN.fullmatch(value) is None or "--" in value:
        return None
    local, _, domain = value.rpartition("@")
    domain = domain.lower()
    if len(local) > _MAX_LOCAL or _special(domain):
        return None
    if local.lower() in _MAILBOXES:
        local = local.lower()
    return f"{local}@{domain}"


def validate(value: str) -> str:
    fast = normalise(value)
    return fast if fast is not None else validate_email(value)[1]


# As `EmailStr` is built: the string schema first (same coercion, same errors), then this.
Email = Annotated[
    str,
    AfterValidator(validate),
    WithJsonSchema({"type": "string", "format": "email"}),
]
