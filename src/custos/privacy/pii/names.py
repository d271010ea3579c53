"""Person names: no model, so names are found where people write them, after the words that
announce them ("my name is", "Dear", "Mr.", a signature's "Regards,"), and wherever the
tenant's own customer names occur."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from custos.privacy.pii.entities import Entity, PiiType

_UPPER = "A-ZÀ-ÖØ-ÞĀ-Ž"
_LOWER = "a-zß-öø-ÿā-ž"
_WORD = rf"[{_UPPER}](?:[{_LOWER}]+|\.)(?:['’][{_UPPER}]?[{_LOWER}]+|[{_UPPER}][{_LOWER}]+)*(?:-[{_UPPER}][{_LOWER}]+)?"
_PARTICLE = r"(?:van|von|de|der|den|du|da|di|del|della|des|le|la|bin|ibn|al|dos|das|ten|ter|zu|y)"
NAME = rf"{_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD}){{0,3}}"

# Words that are capitalised but are not names, where a cue could run into them.
_NOT_NAMES = frozenset(
    """
    a an the this that these those it its i we you he she they our your my his her their
    all any every each team support customer customers client clients service services sales
    billing account accounts office department dept company inc ltd llc gmbh sa group
    there everyone everybody folks guys sir madam monsieur madame herr frau mr mrs ms dr
    hello hi hey dear thanks thank regards best cheers sincerely yours kind warm
    please note order invoice ticket case ref item product subscription plan payment refund
    monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday
    january february march april may june july august september october november december
    mon tue wed thu fri sat sun jan feb mar apr jun jul aug sep sept oct nov dec
    street road avenue lane drive city state country email phone mobile address
    ok okay yes no not also just still again more new old
    """.split()
)

_STRONG = (
    r"my\s+name\s+is|my\s+name's|name\s*:|i\s+am|i'm|this\s+is|"
    r"je\s+m'appelle|je\s+suis|ich\s+bin|ich\s+heiße|mein\s+name\s+ist|me\s+llamo|"
    r"mi\s+nombre\s+es|soy|mi\s+chiamo|sono|mijn\s+naam\s+is|ik\s+ben|"
    r"signed|signed\s+by|attn\.?:?|attention\s*:|c/o|contact\s+person\s*:?|"
    r"account\s+holder\s*:?|cardholder\s*:?|customer\s+name\s*:?|full\s+name\s*:?"
)
_TITLE = (
    r"mr|mrs|ms|miss|mx|dr|prof|sir|dame|lord|lady|herr|frau|monsieur|madame|mme|mlle|m|"
    r"señor|señora|señorita|sr|sra|srta|don|doña|signor|signora|sig|sig\.ra|dhr|mevr"
)
_GREETING = (
    r"dear|hi|hello|hey|good\s+morning|good\s+afternoon|good\s+evening|"
    r"bonjour|bonsoir|cher|chère|hallo|liebe|lieber|sehr\s+geehrte|sehr\s+geehrter|"
    r"hola|estimado|estimada|querido|querida|ciao|gentile|caro|cara|beste|geachte"
)
_CLOSING = (
    r"regards|best\s+regards|kind\s+regards|warm\s+regards|best\s+wishes|best|thanks|"
    r"many\s+thanks|thank\s+you|cheers|sincerely|yours\s+sincerely|yours\s+truly|"
    r"yours\s+faithfully|cordially|respectfully|"
    r"cordialement|bien\s+cordialement|merci|amitiés|mit\s+freundlichen\s+grüßen|"
    r"viele\s+grüße|beste\s+grüße|lg|mfg|danke|saludos|un\s+saludo|atentamente|gracias|"
    r"cordiali\s+saluti|saluti|grazie|met\s+vriendelijke\s+groet|groeten|bedankt"
)
_WEAK = (
    r"customer|client|caller|agent|colleague|manager|member|patient|tenant|guest|user|"
    r"with|from|by|to|for|cc|ask|asked|told|called|emailed|spoke\s+(?:to|with)|"
    r"talked\s+to|contacted|contact|forward(?:ed)?\s+to|assigned\s+to|escalated\s+to|"
    r"and|or|per|via|mit|von|avec|de\s+la\s+part\s+de|con|de|para|por"
)

_FLAGS = re.IGNORECASE
# Cue words are matched case-insensitively, the name after them case-sensitively: (?-i:...).
# The name sits in a lookahead, so a cue's match never swallows the next cue.
_STRONG_RE = re.compile(rf"(?<!\w)(?:{_STRONG})(?=[ \t]+(?-i:(?P<name>{NAME})))", _FLAGS)
_TITLE_RE = re.compile(rf"(?<!\w)(?:{_TITLE})\.?(?=[ \t]+(?-i:(?P<name>{NAME})))", _FLAGS)
_GREETING_RE = re.compile(
    rf"(?:^|(?<=[\s>]))(?:{_GREETING})(?=[ \t]+(?-i:(?P<name>{NAME})))", _FLAGS
)
_CLOSING_RE = re.compile(
    rf"(?:^|(?<=\n))[ \t]*(?:{_CLOSING})(?=[ \t]*[,!.]?[ \t]*(?:\n[ \t]*|[ \t]*[-–—][ \t]*|[ \t]+)"
    rf"(?-i:(?P<name>{NAME})))",
    _FLAGS | re.MULTILINE,
)
_WEAK_RE = re.compile(rf"(?<!\w)(?:{_WEAK})(?=[ \t]+(?-i:(?P<name>{NAME})))", _FLAGS)
_BARE_RE = re.compile(rf"(?<![\w.])(?P<name>{_WORD}(?:[ \t]+{_WORD}){{1,2}})")


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Drop leading and trailing words that are not names; None when nothing is left."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    while words and text[words[0][0] : words[0][1]].lower().rstrip(".") in _NOT_NAMES:
        words.pop(0)
    while words and text[words[-1][0] : words[-1][1]].lower().rstrip(".") in _NOT_NAMES:
        words.pop()
    if not words:
        return None
    first, last = words[0][0], words[-1][1]
    # A trailing "Jr." keeps its name but not the dot-abbreviation alone.
    if text[first:last].endswith(".") and last - first <= 3:
        return None
    return first, last


def _from(
    regex: re.Pattern[str], text: str, score: float, reason: str, min_words: int
) -> Iterator[Entity]:
    for m in regex.finditer(text):
        span = _trim(text, m.start("name"), m.end("name"))
        if span is None:
            continue
        words = text[span[0] : span[1]].split()
        if len(words) < min_words or all(w.endswith(".") for w in words):
            continue
        bonus = 0.1 if len(words) > 1 else 0.0
        yield Entity(PiiType.person, span[0], span[1], round(min(1.0, score + bonus), 2), reason)


def name_candidates(text: str) -> set[str]:
    """Capitalised runs of two to four words, lower-cased: what could be a known name."""
    found: set[str] = set()
    for m in re.finditer(rf"{_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD}){{1,3}}", text):
        words = m.group().split()
        for size in range(2, len(words) + 1):
            for i in range(len(words) - size + 1):
                found.add(" ".join(words[i : i + size]).lower())
    return found


def known(text: str, names: Iterable[str]) -> Iterator[Entity]:
    wanted = {n.lower() for n in names if n and " " in n.strip()}
    if not wanted:
        return
    for m in re.finditer(rf"{_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD}){{1,3}}", text):
        words = list(re.finditer(r"\S+", m.group()))
        for size in range(len(words), 1, -1):
            hit = False
            for i in range(len(words) - size + 1):
                start, end = m.start() + words[i].start(), m.start() + words[i + size - 1].end()
                if text[start:end].lower() in wanted:
                    yield Entity(PiiType.person, start, end, 0.9, "a known customer's name")
                    hit = True
            if hit:
                break


def persons(text: str, known_names: Iterable[str] = ()) -> Iterator[Entity]:
    yield from known(text, known_names)
    yield from _from(_STRONG_RE, text, 0.75, "introduced as a name", 1)
    yield from _from(_TITLE_RE, text, 0.75, "after a title", 1)
    yield from _from(_GREETING_RE, text, 0.65, "after a greeting", 1)
    yield from _from(_CLOSING_RE, text, 0.7, "signature after a closing", 1)
    yield from _from(_WEAK_RE, text, 0.5, "capitalised words after a cue", 2)
    yield from _from(_BARE_RE, text, 0.35, "capitalised words", 2)
