"""The structured types: a regular expression finds candidates, a checksum or a parser decides.

Each recogniser yields `Entity` objects; scores are what a match means on its own, raised a
little by context words just before it ("SSN", "card", "call me at").
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator

import phonenumbers
from phonenumbers import PhoneNumber
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from custos.privacy.pii.entities import Entity, PiiType

CONTEXT_WINDOW = 48
CONTEXT_BOOST = 0.15

_CONTEXT = {
    PiiType.phone: re.compile(
        r"\b(?:phone|tel|telephone|mobile|cell|call|calls|called|ring|text|whatsapp|sms|fax|"
        r"number|reach|contact|telefon|téléphone|portable|handy|móvil|teléfono|llam\w*)\b",
        re.IGNORECASE,
    ),
    PiiType.ssn: re.compile(r"\b(?:ssn|social\s+security|ss#|tax\s+id|tin)\b", re.IGNORECASE),
    PiiType.credit_card: re.compile(
        r"\b(?:card|credit|debit|visa|mastercard|amex|discover|cc|pan|payment|charged?)\b",
        re.IGNORECASE,
    ),
    PiiType.iban: re.compile(r"\b(?:iban|account|bank|sepa|transfer|konto|compte)\b", re.I),
    PiiType.ip_address: re.compile(r"\b(?:ip|address|host|from|login|logged|server)\b", re.I),
}


def _context(kind: PiiType, text: str, start: int) -> bool:
    pattern = _CONTEXT.get(kind)
    return bool(pattern and pattern.search(text, max(0, start - CONTEXT_WINDOW), start))


def _scored(kind: PiiType, text: str, start: int, end: int, score: float, reason: str) -> Entity:
    if _context(kind, text, start):
        score, reason = min(1.0, score + CONTEXT_BOOST), f"{reason}; context word"
    return Entity(kind, start, end, round(score, 2), reason)


# -- email -----------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


def emails(text: str) -> Iterator[Entity]:
    for m in _EMAIL.finditer(text):
        yield Entity(PiiType.email, m.start(), m.end(), 0.95, "email address syntax")


# -- SSN -------------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-])")


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    # Never issued: area 000, 666 or 900-999; group 00; serial 0000.
    return (
        area != "000"
        and area != "666"
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def ssns(text: str) -> Iterator[Entity]:
    for m in _SSN.finditer(text):
        area, sep, group, serial = m.groups()
        if not _ssn_valid(area, group, serial):
            continue
        if sep == "-":
            score, reason = 0.8, "US SSN shape, valid area/group/serial"
        elif _context(PiiType.ssn, text, m.start()):
            score, reason = 0.7, "nine digits, valid area/group/serial"
        else:
            continue  # nine bare digits are too often something else
        yield _scored(PiiType.ssn, text, m.start(), m.end(), score, reason)


# -- credit cards ----------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    three, six = int(digits[:3]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16:
        return "mastercard"
    if two in (34, 37) and n == 15:
        return "amex"
    if (four == 6011 or two == 65 or 644 <= three <= 649 or 622126 <= six <= 622925) and (
        16 <= n <= 19
    ):
        return "discover"
    if 3528 <= four <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= three <= 305 or two in (36, 38, 39) or three == 309) and 14 <= n <= 19:
        return "diners"
    if two == 62 and 16 <= n <= 19:
        return "unionpay"
    if (two == 50 or 56 <= two <= 69) and 12 <= n <= 19:
        return "maestro"
    return None


def cards(text: str) -> Iterator[Entity]:
    for m in _CARD.finditer(text):
        raw = m.group()
        separators = {ch for ch in raw if not ch.isdigit()}
        if len(separators) > 1:
            continue  # "1234-5678 9012-3456" is not how anyone writes a card number
        digits = raw.replace(" ", "").replace("-", "")
        if not luhn_valid(digits):
            continue
        issuer = card_issuer(digits)
        if issuer is None or _is_reference(text, m.start()):
            continue
        score = 0.9 if separators else 0.8
        yield _scored(
            PiiType.credit_card, text, m.start(), m.end(), score, f"{issuer} prefix, Luhn valid"
        )


# -- IBAN ------------------------------------------------------------------------------------

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

_IBAN = re.compile(r"(?<![\w])([A-Z]{2})(\d{2})((?:[ ]?[A-Z0-9]){10,30})(?![\w])")


def iban_valid(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def ibans(text: str) -> Iterator[Entity]:
    for m in _IBAN.finditer(text):
        compact = m.group().replace(" ", "")
        expected = IBAN_LENGTHS.get(compact[:2])
        if expected is None or len(compact) < expected:
            continue
        # A greedy match may run into the next word ("DE89... BIC"); trim to the country length.
        end = m.start()
        taken = 0
        for index, ch in enumerate(m.group()):
            if ch != " ":
                taken += 1
            if taken == expected:
                end = m.start() + index + 1
                break
        if iban_valid(compact[:expected]):
            yield _scored(
                PiiType.iban, text, m.start(), end, 0.9, f"{compact[:2]} IBAN, mod-97 valid"
            )


# -- IP addresses ----------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})"
    r"(?:%\w+)?(?![\w:])|(?<![\w:])::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}(?![\w:])"
)


def ip_addresses(text: str) -> Iterator[Entity]:
    if text.count(".") >= 3:
        yield from _ipv4(text)
    if text.count(":") >= 2:
        yield from _ipv6(text)


def _ipv4(text: str) -> Iterator[Entity]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield _scored(PiiType.ip_address, text, m.start(), m.end(), 0.85, "IPv4 address")


def _ipv6(text: str) -> Iterator[Entity]:
    for m in _IPV6.finditer(text):
        candidate = m.group()
        if candidate.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(candidate.split("%", 1)[0])
        except ValueError:
            continue
        yield _scored(PiiType.ip_address, text, m.start(), m.end(), 0.85, "IPv6 address")


# -- phone numbers ---------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w#@/.+-])\+?\(?\d[\d \t().\-/]{4,22}\d(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
    r"(?![\w@]|[.-]\d)"
)
# Numbers right after these are references (orders, invoices, tickets), not personal data.
_REFERENCE_BEFORE = re.compile(
    r"(?:#|\border(?:\s+(?:no\.?|number))?|\binvoice(?:\s+(?:no\.?|number))?|\bref\.?|"
    r"\breference|\bticket|\bsku|\bid|\bcase|\btracking(?:\s+(?:no\.?|number))?|\bpo|"
    r"\bitem|\bversion|\bv|\bserial(?:\s+(?:no\.?|number))?)\s*:?\s*$",
    re.IGNORECASE,
)
# Dates, decimals and dotted versions have the digits of a phone number but not its shape.
_NOT_PHONE_SHAPE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}|\d+\.\d+|"
    r"\d{1,3}(?:\.\d{1,3}){3})$"
)
_SSN_SHAPE = re.compile(r"^\d{3}[- ]\d{2}[- ]\d{4}$")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,5}$")
_BARE_SCORE = 0.4
FALLBACK_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "IN")


def _overlaps(start: int, end: int, taken: list[tuple[int, int]]) -> bool:
    for a, b in taken:  # noqa: SIM110 (a loop: no generator frame per span)
        if start < b and a < end:
            return True
    return False


def _is_reference(text: str, start: int) -> bool:
    return bool(_REFERENCE_BEFORE.search(text, max(0, start - 16), start))


@functools.cache
def _region_facts(region: str) -> tuple[int, str, frozenset[int]]:
    """Country code, trunk prefix and the possible lengths of its national numbers."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return 0, "", frozenset()
    lengths = frozenset(metadata.general_desc.possible_length or ())
    return metadata.country_code or 0, metadata.national_prefix or "", lengths


def _could_be_national(digits: str, region: str) -> bool:
    _, prefix, lengths = _region_facts(region)
    if len(digits) not in lengths and len(digits) - len(prefix) not in lengths:
        return False
    # Where the trunk prefix is 0 (most of Europe), numbers are written starting with it;
    # North American numbers never start with 0.
    if prefix == "0":
        return digits.startswith("0")
    return not (prefix == "1" and digits.startswith("0"))


def _number(country_code: int, national: str) -> PhoneNumber:
    number = PhoneNumber(country_code=country_code, national_number=int(national))
    zeros = len(national) - len(national.lstrip("0"))
    if zeros:  # a leading zero that belongs to the number (Italy)
        number.italian_leading_zero = True
        if zeros > 1:
            number.number_of_leading_zeros = zeros
    return number


# The number is built from its digits and checked against the region's metadata directly:
# phonenumbers.parse() would normalise the text character by character first, which is
# most of its cost, for digits we already have. (Checked against parse() on the benchmark
# corpus: the same verdict for every candidate.)
def _valid_national(digits: str, region: str) -> bool:
    country_code, prefix, lengths = _region_facts(region)
    national = digits
    if prefix and digits.startswith(prefix) and len(digits) - len(prefix) in lengths:
        national = digits[len(prefix) :]
    if not national or not country_code:
        return False
    return bool(phonenumbers.is_valid_number_for_region(_number(country_code, national), region))


def _valid_international(digits: str) -> str | None:
    """The main region of a valid number written with its country code, or None."""
    for size in (1, 2, 3):
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size] or 0))
        if not regions:
            continue
        national, main = digits[size:], regions[0]
        if main != "001":
            _, prefix, lengths = _region_facts(main)
            if prefix == "0" and national.startswith("0") and len(national) - 1 in lengths:
                national = national[1:]  # "+49 (0)30 ...": the trunk prefix in brackets
        if not national:
            return None
        valid = phonenumbers.is_valid_number(_number(int(digits[:size]), national))
        return str(main) if valid else None
    return None


def _parse_phone(candidate: str, regions: tuple[str, ...]) -> tuple[str, bool] | None:
    """(region, international) when the candidate is a valid number in some region."""
    number_part = _EXTENSION.sub("", candidate)
    digits = "".join(filter(str.isdigit, number_part))
    if number_part.startswith(("+", "00")):
        found = _valid_international(digits[2:] if number_part.startswith("00") else digits)
        return (found, True) if found else None
    for region in regions:
        if _could_be_national(digits, region) and _valid_national(digits, region):
            return region, False
    return None


def phones(
    text: str,
    default_region: str = "US",
    taken: list[tuple[int, int]] | None = None,
    min_score: float = 0.0,
) -> Iterator[Entity]:
    """Phone numbers; `taken` are spans already found to be something more specific (a card,
    an IBAN, an IP address), which are not parsed again as numbers. Candidates that could
    not reach `min_score` whatever the parser said are not parsed at all."""
    regions = (default_region, *(r for r in FALLBACK_REGIONS if r != default_region))
    for m in _PHONE.finditer(text):
        candidate = m.group().rstrip(" \t")
        start, end = m.start(), m.start() + len(candidate)
        if candidate.startswith("(") and ")" not in candidate:
            candidate, start = candidate[1:], start + 1
        digits = sum(map(str.isdigit, candidate))
        if digits < 7 or _NOT_PHONE_SHAPE.match(candidate):
            continue
        if "x" in candidate or "ext" in candidate:
            digits = sum(map(str.isdigit, _EXTENSION.sub("", candidate)))
        if not 7 <= digits <= 15:
            continue
        if taken and _overlaps(start, end, taken):
            continue
        if _is_reference(text, start):
            continue
        # Nine digits written 3-2-4, or after "SSN", are a social security number (valid or
        # not), not a phone number.
        if digits == 9 and (_SSN_SHAPE.match(candidate) or _context(PiiType.ssn, text, start)):
            continue
        formatted = not candidate.lstrip("+").isdigit()
        context = _context(PiiType.phone, text, start)
        if not formatted and not candidate.startswith(("+", "00")):
            best = _BARE_SCORE + (CONTEXT_BOOST if context else 0)
            if best < min_score:
                continue  # bare digits with nothing saying they are a phone number
        parsed = _parse_phone(candidate, regions)
        if parsed is None:
            continue
        region, international = parsed
        if international:
            score, reason = 0.85, f"valid international number ({region})"
        elif region == default_region and formatted:
            score, reason = 0.7, f"valid {region} number"
        elif formatted:
            score, reason = 0.55, f"valid number if read as {region}"
        else:
            score, reason = _BARE_SCORE, f"unformatted digits, valid as {region}"
        if context:
            score, reason = min(1.0, score + CONTEXT_BOOST), f"{reason}; context word"
        yield Entity(PiiType.phone, start, end, round(score, 2), reason)
