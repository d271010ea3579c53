"""The labelled corpus for bench/pii.py: realistic CRM notes, support emails and tickets
written with Faker in seven locales, each entity's span recorded as it is written in, plus
hard negatives (order and tracking numbers, Luhn-invalid card-like numbers, invalid SSNs,
IBANs with a wrong check, versions, dates, prices, capitalised words that are not names).

Built from templates and Faker values with a fixed seed; nothing here looks at what the
detector finds. Phone numbers are Faker's, kept when `phonenumbers` calls them valid for
their country (real numbers are; Faker draws some unassigned ranges): both detectors are
measured on the same numbers.
"""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from faker import Faker

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL", "it_IT")
REGION = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES",
          "nl_NL": "NL", "it_IT": "IT"}  # fmt: skip
TYPES = ("email", "phone", "ssn", "credit_card", "ip_address", "iban", "person", "address")


@dataclass
class Sample:
    text: str
    locale: str
    spans: list[tuple[str, int, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "locale": self.locale, "spans": self.spans}


# English is what most tenants' staff write in, whatever the customer's country; the native
# templates below add the customer's own language.
TEMPLATES_EN = [
    "Customer {person} called about invoice 2024-{n5}. Call back on {phone}.",
    "Spoke with {person} today; new email is {email}.",
    "Hi team, {person} ({email}) wants to upgrade to the annual plan.",
    "Please update the shipping address to {address}.",
    "My name is {person} and I was charged twice on my card {card}.",
    "Refund issued to card ending {last4}. Customer: {person}.",
    "Dear {person},\nthank you for your order #{n8}. It ships to {address}.",
    "Thanks for the quick help!\n\nBest regards,\n{person}",
    "Login attempts from {ip} were blocked for account {email}.",
    "SSN on file: {ssn}. Verified by phone with {person}.",
    "Bank details for the refund: IBAN {iban}, account holder {person}.",
    "{person} wants to cancel the subscription before the next billing date.",
    "Please send the contract to {email} and copy {email2}.",
    "Tel: {phone} | Mobile: {phone2}",
    "Order {n8} delayed. {person} asked us to call {phone} after 5pm.",
    "Moved from {address} to {address2} last month.",
    "Card {card} expired, customer will send a new one.",
    "Our server at {ip} logged a failed payment for {person}.",
    "I'm {person}, you can reach me at {phone} or {email}.",
    "Escalated to {person} in billing. Ticket #{n6}.",
    "Contact person: {person}, {address}, {phone}",
    "Customer says the SSN {ssn} was typed wrong on the form.",
    "Direct debit mandate signed, IBAN {iban}.",
    "Kind regards,\n{person}\n{phone}",
    "New device registered from IP {ip}.",
    "Hello {person}, your password was reset from {ip}.",
    "Delivery failed at {address}; courier will retry tomorrow.",
    "{person} prefers email ({email}) over phone.",
    "Chargeback on {card} disputed by the bank.",
    "Wire transfer received from {iban}.",
]
TEMPLATES_NATIVE = {
    "de_DE": [
        "Kunde {person} hat angerufen, Rückruf unter {phone}.",
        "Neue Adresse: {address}. E-Mail: {email}.",
        "Sehr geehrte Frau {last}, vielen Dank für Ihre Bestellung.",
        "Mit freundlichen Grüßen\n{person}",
        "Bitte die Erstattung auf IBAN {iban} überweisen.",
        "Mein Name ist {person}, meine Telefonnummer ist {phone}.",
    ],
    "fr_FR": [
        "Bonjour, je m'appelle {person} et j'habite au {address}.",
        "Merci de rappeler {person} au {phone}.",
        "Cordialement,\n{person}",
        "Remboursement sur le compte IBAN {iban}.",
        "Nouvelle adresse e-mail : {email}.",
        "Colis livré au {address}.",
    ],
    "es_ES": [
        "Hola, me llamo {person} y vivo en {address}.",
        "Llamar a {person} al {phone} mañana.",
        "Saludos,\n{person}",
        "Devolución a la cuenta {iban}.",
        "Su correo es {email}.",
    ],
    "nl_NL": [
        "Klant {person} belde, terugbellen op {phone}.",
        "Nieuw adres: {address}.",
        "Met vriendelijke groet,\n{person}",
        "Terugbetaling naar IBAN {iban}.",
    ],
    "it_IT": [
        "Il cliente {person} ha chiamato, richiamare al {phone}.",
        "Nuovo indirizzo: {address}.",
        "Cordiali saluti,\n{person}",
        "Rimborso sul conto {iban}.",
    ],
}
# Sentences with nothing personal in them: the look-alikes a detector must leave alone.
NEGATIVES = [
    "Order #{n8} shipped on {date}.",
    "Invoice INV-{year}-{n5} is due on {date}, total {price}.",
    "Tracking number 1Z{alnum} via UPS.",
    "Reference {bad_card} was rejected by the gateway.",
    "The form had SSN {bad_ssn}, which is not a valid number.",
    "Transfer reference {bad_iban} bounced.",
    "Release v{ver} fixes the export bug.",
    "Meeting moved to {date} at {time}.",
    "Account ID: {n10}.",
    "Thanks, Support Team",
    "Dear Customer, your ticket #{n6} was closed.",
    "Best regards, The Billing Team",
    "The Quarterly Review is on Monday in Conference Room B.",
    "SKU {sku} is back in stock; {qty} units at {price}.",
    "Batch {n6} processed in {ms} ms.",
    "Please rate our service from 1 to 10.",
    "Warehouse Berlin received {qty} parcels.",
    "Case {n6} escalated to Tier 2.",
    "Postcode lookup failed for zone {n5}.",
    "Build {n8} of the Mobile App passed all checks.",
]


def _luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {}
        for index, locale in enumerate(LOCALES):
            fake = Faker(locale)
            fake.seed_instance(seed + index)
            self.fakers[locale] = fake
        self.persons: list[str] = []

    # -- values ----------------------------------------------------------------------------

    def person(self, fake: Faker) -> str:
        name = f"{fake.first_name()} {fake.last_name()}"
        self.persons.append(name)
        return name

    def phone(self, fake: Faker, locale: str) -> str:
        for _ in range(30):
            number = fake.phone_number()
            try:
                parsed = phonenumbers.parse(number, REGION[locale])
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed):
                return number
        example = phonenumbers.example_number(REGION[locale])
        assert example is not None
        return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)

    def card(self, fake: Faker) -> str:
        kind = self.rng.choice(["visa16", "mastercard", "amex", "discover", "jcb", "visa13"])
        number = fake.credit_card_number(card_type=kind)
        style = self.rng.random()
        if style < 0.4:
            return number
        sep = " " if style < 0.75 else "-"
        if len(number) == 15:
            return sep.join([number[:4], number[4:10], number[10:]])
        return sep.join(number[i : i + 4] for i in range(0, len(number), 4))

    def iban(self, fake: Faker) -> str:
        value = fake.iban()
        if self.rng.random() < 0.5:
            return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return value

    def ip(self, fake: Faker) -> str:
        roll = self.rng.random()
        if roll < 0.55:
            return fake.ipv4_public()
        if roll < 0.75:
            return fake.ipv4_private()
        full = fake.ipv6()
        return str(ipaddress.IPv6Address(full)) if roll < 0.9 else full

    def address(self, fake: Faker, locale: str) -> str:
        street = fake.street_address().replace("\n", ", ")
        roll = self.rng.random()
        if roll < 0.3:
            return street
        if locale == "en_US":
            return f"{street}, {fake.city()}, {fake.state_abbr()} {fake.zipcode()}"
        if locale == "en_GB":
            return f"{street}, {fake.city()} {fake.postcode()}"
        return f"{street}, {fake.postcode()} {fake.city()}"

    def ssn(self) -> str:
        return str(self.fakers["en_US"].ssn())  # a US number, whatever the customer's country

    # -- negatives -------------------------------------------------------------------------

    def bad_card(self) -> str:
        prefix = self.rng.choice(["4", "51", "37", "6011"])
        length = 15 if prefix == "37" else 16
        body = prefix + "".join(
            str(self.rng.randint(0, 9)) for _ in range(length - len(prefix) - 1)
        )
        good = _luhn_digit(body)
        wrong = str((int(good) + self.rng.randint(1, 9)) % 10)
        number = body + wrong
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))

    def bad_ssn(self) -> str:
        area = self.rng.choice(["000", "666", str(self.rng.randint(900, 999))])
        return f"{area}-{self.rng.randint(10, 99)}-{self.rng.randint(1000, 9999)}"

    def bad_iban(self, fake: Faker) -> str:
        value = fake.iban()
        check = (int(value[2:4]) + self.rng.randint(1, 90)) % 100
        return f"{value[:2]}{check:02d}{value[4:]}"

    # -- texts -----------------------------------------------------------------------------

    def fill(self, template: str, locale: str) -> Sample:
        fake = self.fakers[locale]
        rng = self.rng
        values: dict[str, tuple[str | None, str]] = {}
        makers = {
            "person": lambda: ("person", self.person(fake)),
            "last": lambda: ("person", fake.last_name()),
            "email": lambda: ("email", fake.email()),
            "email2": lambda: ("email", fake.free_email()),
            "phone": lambda: ("phone", self.phone(fake, locale)),
            "phone2": lambda: ("phone", self.phone(fake, locale)),
            "card": lambda: ("credit_card", self.card(fake)),
            "ip": lambda: ("ip_address", self.ip(fake)),
            "iban": lambda: ("iban", self.iban(fake)),
            "address": lambda: ("address", self.address(fake, locale)),
            "address2": lambda: ("address", self.address(fake, locale)),
            "ssn": lambda: ("ssn", self.ssn()),
            "last4": lambda: (None, f"{self.rng.randint(0, 9999):04d}"),
            "n5": lambda: (None, str(self.rng.randint(10_000, 99_999))),
            "n6": lambda: (None, str(self.rng.randint(100_000, 999_999))),
            "n8": lambda: (None, str(self.rng.randint(10_000_000, 99_999_999))),
            "n10": lambda: (None, str(self.rng.randint(10**9, 10**10 - 1))),
            "date": lambda: (None, fake.date(pattern="%Y-%m-%d")),
            "time": lambda: (None, fake.time()),
            "year": lambda: (None, str(self.rng.randint(2019, 2026))),
            "price": lambda: (None, f"${rng.randint(1, 4999)}.{rng.randint(0, 99):02d}"),
            "alnum": lambda: (None, "".join(rng.choice("0123456789ABCDEFGHJK") for _ in range(16))),
            "bad_card": lambda: (None, self.bad_card()),
            "bad_ssn": lambda: (None, self.bad_ssn()),
            "bad_iban": lambda: (None, self.bad_iban(fake)),
            "ver": lambda: (None, f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}"),
            "sku": lambda: (None, f"SKU-{rng.randint(10000, 99999)}-{rng.choice('ABCDEF')}"),
            "qty": lambda: (None, str(self.rng.randint(2, 500))),
            "ms": lambda: (None, str(self.rng.randint(5, 9000))),
        }  # fmt: skip
        text = ""
        spans: list[tuple[str, int, int]] = []
        cursor = 0
        for m in re.finditer(r"\{(\w+)\}", template):
            text += template[cursor : m.start()]
            key = m.group(1)
            if key not in values:
                values[key] = makers[key]()
            kind, value = values[key]
            if kind is not None:
                spans.append((kind, len(text), len(text) + len(value)))
            text += value
            cursor = m.end()
        text += template[cursor:]
        return Sample(text, locale, spans)

    def sample(self) -> Sample:
        locale = self.rng.choice(LOCALES)
        parts: list[Sample] = []
        for _ in range(self.rng.choice([1, 1, 2, 2, 3])):
            roll = self.rng.random()
            if roll < 0.3:
                template = self.rng.choice(NEGATIVES)
            elif roll < 0.5 and locale in TEMPLATES_NATIVE:
                template = self.rng.choice(TEMPLATES_NATIVE[locale])
            else:
                template = self.rng.choice(TEMPLATES_EN)
            parts.append(self.fill(template, locale))
        text = ""
        spans: list[tuple[str, int, int]] = []
        for part in parts:
            if text:
                # After a letter or a signature, the next note starts on a new paragraph.
                text += "\n\n" if "\n" in text or part.text.startswith("Dear") else " "
            offset = len(text)
            spans += [(k, s + offset, e + offset) for k, s, e in part.spans]
            text += part.text
        return Sample(text, locale, spans)


def build(count: int, seed: int) -> tuple[list[Sample], list[str]]:
    """The samples, and the names of the people in them (for a simulated customer list)."""
    generator = Generator(seed)
    samples = [generator.sample() for _ in range(count)]
    return samples, generator.persons
