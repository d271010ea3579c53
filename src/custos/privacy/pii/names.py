"""Person names: no model, so names are found where people write them, after the words that
announce them ("my name is", "Dear", "Mr.", a signature's "Regards,"), and wherever the
tenant's own customer names occur."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from custos.privacy.pii.entities import Entity, PiiType

_UPPER = "A-ZÀ-ÖØ-ÞĀ-Ž"
_LOWER = "a-zß-öø-ÿā-ž"
_APOSTROPHES = "'\u2019"
_WORD = (
    rf"[{_UPPER}](?:[{_LOWER}]+|\.)(?:[{_APOSTROPHES}][{_UPPER}]?[{_LOWER}]+|[{_UPPER}][{_LOWER}]+)*"
    rf"(?:-[{_UPPER}][{_LOWER}]+)?"
)
_PARTICLE = r"(?:van|von|de|der|den|du|da|di|del|della|des|le|la|bin|ibn|al|dos|das|ten|ter|zu|y)"
NAME = rf"{_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD}){{0,3}}"

# Words that are capitalised but are not names, where a cue could run into them.
_NOT_NAMES = frozenset(
    """
    a an the this that these those it its i we you he she they our your my his her their all any
    every each team support customer customers client clients service services sales billing
    account accounts office department dept company inc ltd llc gmbh sa group there everyone
    everybody folks guys sir madam monsieur madame herr frau mr mrs ms dr hello hi hey dear
    thanks thank regards best cheers sincerely yours kind warm please note order invoice ticket
    case ref item product subscription plan payment refund monday tuesday wednesday thursday
    friday saturday sunday today tomorrow yesterday january february march april may june july
    august september october november december mon tue wed thu fri sat sun jan feb mar apr jun
    jul aug sep sept oct nov dec street road avenue lane drive city state country email phone
    mobile address ok okay yes no not also just still again more new old
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


def _phrases(text: str) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(line.split()) for line in text.strip().splitlines())


# Cues, as the words just before the name (lower-cased, punctuation after them dropped).
_STRONG = _phrases(
    """
    my name is
    my name's
    name:
    i am
    i'm
    this is
    je m'appelle
    je suis
    ich bin
    ich heiße
    mein name ist
    me llamo
    mi nombre es
    soy
    mi chiamo
    sono
    mijn naam is
    ik ben
    signed
    signed by
    attn
    attn:
    attention:
    c/o
    contact person
    contact person:
    account holder
    account holder:
    cardholder
    cardholder:
    customer name:
    full name:
    """
)
_TITLES = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "sir",
        "dame",
        "lord",
        "lady",
        "herr",
        "frau",
        "monsieur",
        "madame",
        "mme",
        "mlle",
        "m",
        "señor",
        "señora",
        "señorita",
        "sr",
        "sra",
        "srta",
        "don",
        "doña",
        "signor",
        "signora",
        "sig",
        "sig.ra",
        "dhr",
        "mevr",
    ]
)
_GREETINGS = _phrases(
    """
    dear
    hi
    hello
    hey
    good morning
    good afternoon
    good evening
    bonjour
    bonsoir
    cher
    chère
    hallo
    liebe
    lieber
    sehr geehrte
    sehr geehrter
    hola
    estimado
    estimada
    querido
    querida
    ciao
    gentile
    caro
    cara
    beste
    geachte
    """
)
_CLOSINGS = frozenset(
    line.strip()
    for line in """
    regards
    best regards
    kind regards
    warm regards
    best wishes
    best
    thanks
    many thanks
    thank you
    cheers
    sincerely
    yours sincerely
    yours truly
    yours faithfully
    cordially
    respectfully
    cordialement
    bien cordialement
    merci
    amitiés
    mit freundlichen grüßen
    viele grüße
    beste grüße
    lg
    mfg
    danke
    saludos
    un saludo
    atentamente
    gracias
    cordiali saluti
    saluti
    grazie
    met vriendelijke groet
    groeten
    bedankt
    """.strip().splitlines()
)
_WEAK = _phrases(
    """
    customer
    customer:
    client
    client:
    caller
    agent
    colleague
    manager
    member
    patient
    tenant
    guest
    user
    with
    from
    by
    to
    for
    cc
    cc:
    ask
    asked
    told
    called
    emailed
    spoke to
    spoke with
    talked to
    contacted
    contact
    contact:
    forward to
    forwarded to
    assigned to
    escalated to
    and
    per
    via
    mit
    von
    avec
    de la part de
    con
    para
    por
    """
)

# The last word of every cue (with its punctuation dropped), for a quick first test.
_CUE_ENDINGS = frozenset(
    {phrase[-1].rstrip(":") for phrases in (_STRONG, _GREETINGS, _WEAK) for phrase in phrases}
    | {phrase[-1] for phrases in (_STRONG, _WEAK) for phrase in phrases}
    | {closing.split()[-1] for closing in _CLOSINGS}
    | _TITLES
)
# A run of capitalised words that nothing announces scores this (plus 0.1 for two words).
_BARE_SCORE = 0.35

# A run of capitalised words (with name particles between them): every name is one.
_RUN = re.compile(NAME)
_NON_SPACE = re.compile(r"\S+")
_CONTEXT_CHARS = 60
_SENTENCE_END = (".", "!", "?")


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Drop leading and trailing words that are not names; None when nothing is left."""
    words = text[start:end].split()
    if (
        words[0].lower().rstrip(".") not in _NOT_NAMES
        and words[-1].lower().rstrip(".") not in _NOT_NAMES
    ):
        # Most runs: nothing to drop.
        return None if all(word.endswith(".") for word in words) else (start, end)
    first, last = 0, len(words)
    while first < last and words[first].lower().rstrip(".") in _NOT_NAMES:
        first += 1
    while last > first and words[last - 1].lower().rstrip(".") in _NOT_NAMES:
        last -= 1
    if first == last:
        return None
    if all(word.endswith(".") for word in words[first:last]):
        return None  # initials or abbreviations alone
    # Runs are single-spaced or tab-separated words: find the kept words' offsets.
    offset = start
    for word in words[:first]:
        offset = text.index(word, offset) + len(word)
    begin = text.index(words[first], offset)
    finish = begin
    for word in words[first:last]:
        finish = text.index(word, finish) + len(word)
    return begin, finish


def _ends_with(tokens: list[str], phrases: frozenset[tuple[str, ...]]) -> bool:
    return (
        tuple(tokens[-1:]) in phrases
        or tuple(tokens[-2:]) in phrases
        or tuple(tokens[-3:]) in phrases
        or tuple(tokens[-4:]) in phrases
    )


def _cue(text: str, start: int) -> tuple[float, str, int] | None:
    """What announces a name starting at `start`: (score, reason, minimum words)."""
    line_start = text.rfind("\n", 0, start) + 1
    on_line = text[line_start:start]
    if not on_line.strip():
        # The name opens its line: a signature when the line before is a closing.
        previous = text[text.rfind("\n", 0, max(0, line_start - 1)) + 1 : max(0, line_start - 1)]
        if previous.strip().rstrip(",.!-\u2013\u2014 ").lower() in _CLOSINGS:
            return 0.7, "signature after a closing", 1
        return None
    before = text[max(line_start, start - _CONTEXT_CHARS) : start]
    raw = before.split()
    if not raw:
        return None
    last = raw[-1].lower()
    # Most runs follow no cue at all: one set look-up rules them out.
    if (
        last.rstrip(",;!?:.") not in _CUE_ENDINGS
        and on_line.strip().rstrip(",!-\u2013\u2014 ").lower() not in _CLOSINGS
    ):
        return None
    if last.rstrip(".") in _TITLES and before.endswith((" ", "\t")):
        return 0.75, "after a title", 1
    if on_line.strip().rstrip(",!-\u2013\u2014 ").lower() in _CLOSINGS:
        return 0.7, "signature after a closing", 1
    tokens = [t.lower().rstrip(",;!?") for t in raw]
    if _ends_with(tokens, _STRONG) and not last.endswith((".", "!", "?")):
        return 0.75, "introduced as a name", 1
    if _ends_with(tokens, _GREETINGS) and not last.endswith(_SENTENCE_END):
        # A greeting opens its sentence.
        index = len(tokens) - next(
            size for size in (1, 2) if size <= len(tokens) and tuple(tokens[-size:]) in _GREETINGS
        )
        if index == 0 or raw[index - 1].endswith((*_SENTENCE_END, ",", ":", ">")):
            return 0.65, "after a greeting", 1
    if _ends_with(tokens, _WEAK) and not last.endswith(_SENTENCE_END):
        return 0.5, "capitalised words after a cue", 2
    return None


def _cued(text: str, run: re.Match[str], min_score: float) -> Entity | None:
    span = _trim(text, run.start(), run.end())
    if span is None:
        return None
    words = text[span[0] : span[1]].split()
    found = _cue(text, span[0])
    if found is None:
        score, reason, min_words = _BARE_SCORE, "capitalised words", 2
    else:
        score, reason, min_words = found
    if len(words) < min_words:
        return None
    score = round(min(1.0, score + (0.1 if len(words) > 1 else 0.0)), 2)
    if score < min_score:
        return None
    return Entity(PiiType.person, span[0], span[1], score, reason)


def name_candidates(text: str) -> set[str]:
    """Capitalised runs of two to four words, lower-cased: what could be a known name."""
    found: set[str] = set()
    for m in _RUN.finditer(text):
        words = m.group().split()
        for size in range(2, len(words) + 1):
            for i in range(len(words) - size + 1):
                found.add(" ".join(words[i : i + size]).lower())
    return found


def _known(text: str, run: re.Match[str], names: frozenset[str]) -> Iterator[Entity]:
    """Occurrences of the given (lower-cased, multi-word) names in a run, longest first."""
    value = run.group()
    if " " not in value and "\t" not in value:
        return  # one word: known names have two or more
    if value.lower() in names:  # the common case: the run is the name
        yield Entity(PiiType.person, run.start(), run.end(), 0.9, "a known customer's name")
        return
    words = list(_NON_SPACE.finditer(value))
    for size in range(len(words) - 1, 1, -1):
        hit = False
        for i in range(len(words) - size + 1):
            start, end = run.start() + words[i].start(), run.start() + words[i + size - 1].end()
            if text[start:end].lower() in names:
                yield Entity(PiiType.person, start, end, 0.9, "a known customer's name")
                hit = True
        if hit:
            return


def prepare(names: Iterable[str]) -> frozenset[str]:
    """Known names as `known` wants them: lower-cased, two words or more."""
    return frozenset(" ".join(n.split()).lower() for n in names if n and len(n.split()) > 1)


def _nothing_announces(text: str, start: int) -> bool:
    """True when no cue can stand before `start`: not at the start of a line, and the word
    before is the last word of no cue. A cheap test that rules out most runs."""
    line_start = text.rfind("\n", 0, start) + 1
    before = text[max(line_start, start - _CONTEXT_CHARS) : start]
    if not before.strip():
        return False  # opens its line: perhaps a signature
    last = before.rsplit(None, 1)[-1].lower().rstrip(",;!?:.-\u2013\u2014")
    return last not in _CUE_ENDINGS


def persons(
    text: str, known_names: frozenset[str] = frozenset(), min_score: float = 0.0
) -> Iterator[Entity]:
    """Known names and names by their context, from one pass over the capitalised runs."""
    uncued_can_pass = min_score <= _BARE_SCORE + 0.1
    for run in _RUN.finditer(text):
        if known_names:
            yield from _known(text, run, known_names)
        if not uncued_can_pass:
            first = run.group().split(None, 1)[0].lower().rstrip(".")
            # A run opening with a title or greeting carries its own cue; others need one
            # before them.
            if first not in _NOT_NAMES and _nothing_announces(text, run.start()):
                continue
        cued = _cued(text, run, min_score)
        if cued is not None:
            yield cued
