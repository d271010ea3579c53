"""Street addresses in running text, by the shapes they take in English, German, French,
Spanish, Italian and Dutch: a house number and a street with its type word, extended by a
unit, a city, a state or region and a postal code where they follow."""

from __future__ import annotations

import re
from collections.abc import Iterator

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

# English street lines are matched in steps (see _english): a house number, up to four
# capitalised words, then a street type looked up in a set. One alternation of 300 types
# tried at every position, case-insensitively, is the slowest thing `re` could be asked.
_HOUSE = re.compile(
    r"(?<![\w-])\d{1,6}[A-Za-z]?[ \t]+(?:(?:[NSEW]|north|south|east|west)\.?[ \t]+)?"
)
# "Flat 3, 12 Park Road": a unit before the house number belongs to the address.
_UNIT_BEFORE = re.compile(r"(?:flat|apartment|unit|suite)[ \t]+\w{1,5},?[ \t]+$", re.IGNORECASE)
_STREET_WORD = re.compile(r"([^\W_][\w'\u2019.-]*)[ \t]*")
_CAP_WORD = re.compile(_CAP)
_ENGLISH_TAIL = re.compile(rf"{_UNIT}?(?:{_US_TAIL}|{_UK_TAIL})?")
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

# Each shape is tried only where one of its street type words stands: the text's words are
# found once, looked up in sets, and a pattern is matched at those places alone. Scanning
# every position with an alternation of hundreds of type words, case-insensitively, is the
# slowest thing `re` can be asked to do.
_TOKEN = re.compile(r"[^\W\d_][\w'\u2019.-]*")
_LETTERS = re.compile(r"[^\W\d_]+")
_SUFFIX_SET = frozenset(_SUFFIXES)
_FLAT_WORDS = frozenset({"flat", "apartment", "studio"})
_GERMAN_ENDINGS = (
    "straße", "strasse", "str", "weg", "gasse", "platz", "allee", "ring", "damm", "ufer",
    "chaussee", "steig", "pfad", "markt",
)  # fmt: skip
_GERMAN_OPENERS = frozenset({"Am", "An", "Im", "In", "Auf", "Zum", "Zur"})
_GERMAN_OPENING = re.compile(r"\b(?:Am|An der|Im|In der|Auf dem|Zum|Zur) [A-ZÄÖÜ]")
_ROMANCE_WORDS = frozenset(
    t.replace("\\.", ".").replace("\\", "").rstrip("?").rstrip(".").rstrip("/")
    for t in _ROMANCE_TYPES.split("|")
) | {"rond"}  # "rond-point": the text's words are split at the hyphen
_DUTCH_ENDINGS = (
    "straat", "laan", "weg", "plein", "gracht", "kade", "singel", "dreef", "hof", "park",
    "boulevard", "steeg", "pad", "dijk", "markt",
)  # fmt: skip
_DIGIT = re.compile(r"\d")
_POSTAL = re.compile(r"\d{4,5}|[A-Z]{2} \d{5}|[A-Z]\d[A-Z\d]? ?\d[A-Z]{2}")

_ENGLISH_REASON = "house number, street and street type"


def _english(text: str) -> Iterator[tuple[int, int]]:
    for house in _HOUSE.finditer(text):
        position, names = house.end(), 0
        while names <= 4:
            word = _STREET_WORD.match(text, position)
            if word is None:
                break
            value = word.group(1)
            bare = value.rstrip(".")
            if names and bare.lower() in _SUFFIX_SET:
                end = word.start(1) + len(bare)
                if text.startswith(".", end):
                    end += 1
                tail = _ENGLISH_TAIL.match(text, end)
                unit = _UNIT_BEFORE.search(text, max(0, house.start() - 20), house.start())
                yield unit.start() if unit else house.start(), tail.end() if tail else end
                break
            if names == 4 or not _CAP_WORD.fullmatch(value):
                break
            names += 1
            position = word.end()


def _candidates(text: str) -> Iterator[tuple[int, int, float, str]]:
    lower = text.lower()
    present = set(_LETTERS.findall(lower))
    if not _SUFFIX_SET.isdisjoint(present):
        for start, end in _english(text):
            yield start, end, 0.75, _ENGLISH_REASON
    if not _FLAT_WORDS.isdisjoint(present):
        for flat in _BRITISH_FLAT.finditer(text):
            yield flat.start(), flat.end(), 0.7, "flat, street and street type"
    romance = not _ROMANCE_WORDS.isdisjoint(present)
    german = any(map(lower.__contains__, _GERMAN_ENDINGS)) or bool(_GERMAN_OPENING.search(text))
    dutch = any(map(lower.__contains__, _DUTCH_ENDINGS))
    if not (romance or german or dutch):
        return
    for token in _TOKEN.finditer(text):
        start, word = token.start(), token.group()
        low = word.lower().rstrip(".")
        found: re.Match[str] | None = None
        if german and (low.endswith(_GERMAN_ENDINGS) or word in _GERMAN_OPENERS):
            found = _GERMAN.match(text, start)
            if found:
                yield found.start(), found.end(), 0.75, "street with its type and a house number"
        if dutch and low.endswith(_DUTCH_ENDINGS):
            found = _NUMBERED_DUTCH.match(text, start)
            if found:
                yield found.start(), found.end(), 0.7, "street with its type and a house number"
        if romance and low in _ROMANCE_WORDS:
            found = _ROMANCE_NUMBER_LAST.match(text, start)
            if found:
                yield found.start(), found.end(), 0.7, "street type, street and house number"
    if romance:
        for number_first in _ROMANCE_NUMBER_FIRST.finditer(text):
            yield number_first.start(), number_first.end(), 0.75, "house number and street type"


def addresses(text: str) -> Iterator[Entity]:
    if not _DIGIT.search(text):
        return  # no house number, no address
    for start, end, score, reason in _candidates(text):
        while end > start and text[end - 1] in " \t\n,.":
            end -= 1
        # A postal code and town after the street make it surer.
        tail = _POSTAL.search(text, start, end)
        bonus = 0.1 if tail and tail.start() > start + 3 else 0.0
        yield Entity(PiiType.address, start, end, round(score + bonus, 2), reason)
