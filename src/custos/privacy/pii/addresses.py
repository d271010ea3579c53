"""Street addresses in running text, by the shapes they take in English, German, French,
Spanish, Italian and Dutch: a house number and a street with its type word, extended by a
unit, a city, a state or region and a postal code where they follow."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from custos.privacy.pii.entities import Entity, PiiType

# USPS street suffixes (Publication 28, C1) and their common abbreviations, plus the British
# and Irish ones.
_SUFFIXES = """
alley aly allee annex anx arcade arc avenue ave av bayou beach bch bend bluff bluffs bottom
boulevard blvd branch br bridge brg brook brooks burg burgs bypass byp camp cp canyon cyn cape
causeway cswy center ctr centre circle cir circles cliff cliffs club common commons corner
corners course court ct courts cove coves creek crk crescent cres crest crossing xing crossroad
curve dale dam divide drive dr drives estate estates expressway expy extension ext fall falls
ferry fields field flat flats ford fords forest forge forges fork forks fort ft freeway fwy
garden gardens gdns gateway glen glens green greens grove groves harbor harbour harbors haven
heights hts highway hwy hill hills hollow inlet island islands isle junction junctions key keys
knoll knolls lake lakes land landing lane ln light lights loaf lock locks lodge loop mall manor
manors meadow meadows mews mill mills mission motorway mount mountain mountains neck orchard
oval overpass park parks parkway pkwy parkways pass passage path pike pine pines place pl plain
plains plaza plz point points port ports prairie radial ramp ranch rapid rapids rest ridge
ridges river road rd roads route rte row rue run shoal shoals shore shores skyway spring springs
spur spurs square sq squares station stravenue stream street st streets summit terrace ter
throughway trace track trafficway trail trl trailer tunnel turnpike underpass union unions
valley valleys via viaduct view views village villages ville vista walk walks wall way ways well
wells close drove gate gardens grange rise wharf quay
""".split()  # noqa: SIM905 (a word list reads better as text)
_SUFFIX = "|".join(sorted({re.escape(s) for s in _SUFFIXES}, key=len, reverse=True))

_CAP = r"[A-ZÀ-ÖØ-Þ0-9][\wÀ-ÿ'\u2019.-]*"
_UNIT = (
    r"(?:,?[ \t]+(?:apt\.?|apartment|suite|ste\.?|unit|#|flat|floor|fl\.?|room|rm\.?)"
    r"[ \t]*#?[\w-]{1,6})"
)
_US_TAIL = (
    r"(?:,?(?:[ \t]+|[ \t]*\n[ \t]*)[A-Z][\w'.-]*(?:[ \t]+[A-Z][\w'.-]*){0,3},?[ \t]+"
    r"[A-Z]{2}[ \t]+\d{5}(?:-\d{4})?)"
)
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ \t]*\d[A-Z]{2}"
_UK_TAIL = (
    rf"(?:,?(?:[ \t]+|[ \t]*\n[ \t]*)[A-Z][\w'.-]*(?:[ \t]+[A-Z][\w'.-]*){{0,2}}"
    rf"(?:,?(?:[ \t]+|[ \t]*\n[ \t]*){_UK_POSTCODE}))"
)
_TOWN_WORD = r"[A-ZÀ-Þ][\wÀ-ÿ'\u2019-]*"
_EU_TAIL = (
    rf"(?:,?(?:[ \t]+|[ \t]*\n[ \t]*)\d{{4,5}}[ \t]+{_TOWN_WORD}(?:[ \t-]+{_TOWN_WORD}){{0,2}})"
)

_ENGLISH = re.compile(
    rf"(?<![\w-])(?:(?:flat|apartment|unit|suite)[ \t]+\w{{1,5}},?[ \t]+)?\d{{1,6}}[A-Za-z]?[ \t]+"
    rf"(?:(?:[NSEW]|north|south|east|west)\.?[ \t]+)?(?:{_CAP}[ \t]+){{1,4}}"
    rf"(?i:{_SUFFIX})\b\.?{_UNIT}?(?:{_US_TAIL}|{_UK_TAIL})?",
)
# Faker's British streets have no house number on the street line: "Flat 4\nSmith roads".
_BRITISH_FLAT = re.compile(
    rf"(?<![\w-])(?:flat|apartment|studio)[ \t]+\d{{1,4}}[A-Za-z]?[ \t]*(?:,[ \t]*|\n[ \t]*)"
    rf"(?:{_CAP}[ \t]+){{1,3}}(?i:{_SUFFIX})\b{_UK_TAIL}?",
    re.IGNORECASE,
)
_GERMAN = re.compile(
    r"(?<![\w-])(?:[A-ZÄÖÜ][\wäöüß-]*[ \t]?(?i:straße|strasse|str\.|weg|gasse|platz|allee|ring|"
    r"damm|ufer|chaussee|steig|pfad|markt)|(?:Am|An der|Im|In der|Auf dem|Zum|Zur)[ \t]+"
    r"[A-ZÄÖÜ][\wäöüß-]+)[ \t]+\d{1,4}[a-z]?(?:[/-]\d{1,4}[a-z]?)?"
    rf"{_EU_TAIL}?"
)
_ROMANCE_TYPES = (
    r"rue|avenue|av\.|boulevard|bd|bld|chemin|allée|impasse|place|quai|route|cours|passage|"
    r"square|voie|rond-point|calle|c/|avenida|avda\.?|paseo|plaza|camino|carrera|ronda|"
    r"travesía|glorieta|callejón|cuesta|acceso|alameda|bajada|cañada|carrer|carretera|pasadizo|"
    r"pasaje|rambla|ruta|sendero|urbanización|"
    r"via|viale|piazza|corso|vicolo|largo|strada|contrada|straat|laan|"
    r"weg|plein|gracht|kade|singel|dreef|rua|travessa|largo"
)
_ROMANCE_NAME = (
    r"(?:(?:de|du|des|la|le|les|l'|d'|del|de la|de los|de las|di|della|dei|van|der)[ \t]*)?"
    rf"{_TOWN_WORD}(?:[ \t]+(?:(?:de|du|des|la|le|del|di|y|e|van|der)[ \t]+)?{_TOWN_WORD}){{0,3}}"
)
_ROMANCE_NUMBER_FIRST = re.compile(
    rf"(?<![\w-])\d{{1,4}}(?:[ \t]?(?:bis|ter|quater))?,?[ \t]+(?i:{_ROMANCE_TYPES})[ \t]+"
    rf"{_ROMANCE_NAME}{_EU_TAIL}?"
)
_ROMANCE_NUMBER_LAST = re.compile(
    rf"(?<![\w-])(?i:{_ROMANCE_TYPES})[ \t]+{_ROMANCE_NAME},?[ \t]+(?:n[º°o]\.?[ \t]*)?\d{{1,4}}"
    rf"(?:[ \t]?[A-Za-z])?(?:,?[ \t]+(?:\d{{1,2}}º?|[A-Z]|piso|puerta|esc\.?)[^\n,]{{0,12}})?"
    rf"{_EU_TAIL}?"
)
_NUMBERED_DUTCH = re.compile(
    r"(?<![\w-])[A-Z][\w-]*(?:straat|laan|weg|plein|gracht|kade|singel|dreef|hof|park|"
    r"boulevard|steeg|pad|dijk|markt)[ \t]+"
    rf"\d{{1,4}}[a-zA-Z]?{_EU_TAIL}?"
)

# Each shape runs only on texts holding one of its type words: most texts hold none, and
# substring tests on the lower-cased text cost far less than the patterns (or than a
# case-insensitive alternation, which is slower in `re` than the patterns themselves).
_GERMAN_HINTS = (
    "straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "ring", "damm", "ufer",
    "chaussee", "steig", "pfad", "markt", "am ", "an der ", "im ", "in der ", "auf dem ",
    "zum ", "zur ",
)  # fmt: skip
_ROMANCE_HINTS = tuple(
    t.replace("\\.", ".").replace("\\", "").rstrip("?") for t in _ROMANCE_TYPES.split("|")
)
_DUTCH_HINTS = (
    "straat", "laan", "weg", "plein", "gracht", "kade", "singel", "dreef", "hof", "park",
    "boulevard", "steeg", "pad", "dijk", "markt",
)  # fmt: skip
_FLAT_HINTS = ("flat", "apartment", "studio")
_SUFFIX_SET = frozenset(_SUFFIXES)
_WORDS = re.compile(r"[a-z]+")


def _english_hint(lower: str) -> bool:
    return not _SUFFIX_SET.isdisjoint(_WORDS.findall(lower))


def _any_of(hints: tuple[str, ...]) -> Callable[[str], bool]:
    return lambda lower: any(hint in lower for hint in hints)


_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[str], bool], float, str], ...] = (
    (_ENGLISH, _english_hint, 0.75, "house number, street and street type"),
    (_BRITISH_FLAT, _any_of(_FLAT_HINTS), 0.7, "flat, street, street type"),
    (_GERMAN, _any_of(_GERMAN_HINTS), 0.75, "street with its type and a house number"),
    (_ROMANCE_NUMBER_FIRST, _any_of(_ROMANCE_HINTS), 0.75, "house number and street type"),
    (_ROMANCE_NUMBER_LAST, _any_of(_ROMANCE_HINTS), 0.7, "street type, street and house number"),
    (_NUMBERED_DUTCH, _any_of(_DUTCH_HINTS), 0.7, "street with its type and a house number"),
)
_DIGIT = re.compile(r"\d")


def addresses(text: str) -> Iterator[Entity]:
    if not _DIGIT.search(text):
        return  # no house number, no address
    lower = text.lower()
    for regex, hint, score, reason in _PATTERNS:
        if not hint(lower):
            continue
        for m in regex.finditer(text):
            start, end = m.start(), m.end()
            while end > start and text[end - 1] in " \t\n,.":
                end -= 1
            # A postal code and town after the street make it surer.
            tail = re.search(r"\d{4,5}|[A-Z]{2} \d{5}|[A-Z]\d[A-Z\d]? ?\d[A-Z]{2}", text[start:end])
            bonus = 0.1 if tail and tail.start() > 3 else 0.0
            yield Entity(PiiType.address, start, end, round(score + bonus, 2), reason)
