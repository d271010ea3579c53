"""The detector on its own: each type, its checks, and the look-alikes it must leave."""

from __future__ import annotations

import pytest

from custos.privacy.pii import Detector, PiiType, scan


def _found(text: str, **kw: object) -> list[tuple[str, str]]:
    return [(e.type.value, e.text(text)) for e in scan(text, **kw)]  # type: ignore[arg-type]


class TestStructuredTypes:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "Write to jane.doe+news@example.co.uk today",
                ("email", "jane.doe+news@example.co.uk"),
            ),
            ("Call me on (415) 555-2671 tonight", ("phone", "(415) 555-2671")),
            ("Office +44 20 7946 0958 ext", ("phone", "+44 20 7946 0958")),
            ("Mein Handy: +49 151 23456789", ("phone", "+49 151 23456789")),
            ("SSN 123-45-6789 on file", ("ssn", "123-45-6789")),
            ("Paid with 4111 1111 1111 1111 yesterday", ("credit_card", "4111 1111 1111 1111")),
            ("Amex 3782-822463-10005 declined", ("credit_card", "3782-822463-10005")),
            ("IBAN GB82 WEST 1234 5698 7654 32 please", ("iban", "GB82 WEST 1234 5698 7654 32")),
            ("FR1420041010050500013M02606 is the account", ("iban", "FR1420041010050500013M02606")),
            ("Login from 203.0.113.77 failed", ("ip_address", "203.0.113.77")),
            ("From 2001:db8::8a2e:370:7334 too", ("ip_address", "2001:db8::8a2e:370:7334")),
        ],
    )
    def test_each_type_is_found_with_its_exact_span(
        self, text: str, expected: tuple[str, str]
    ) -> None:
        assert expected in _found(text)

    @pytest.mark.parametrize(
        "text",
        [
            "Order #4111111111111111 shipped",  # Luhn-valid, but an order number
            "Card 4111 1111 1111 1112 was typed wrong",  # Luhn fails
            "SSN 000-12-3456 is not valid",
            "SSN 666-12-3456 is not valid",
            "SSN 923-45-6789 is not valid",
            "SSN 123-00-6789 is not valid",
            "IBAN GB82 WEST 1234 5698 7654 33 has a bad check",
            "Version 1.2.3.4567 released",
            "Meeting at 12:30:45 sharp",
            "Invoice 2026-0042 due",
            "Tracking no. 9400111899223817",
        ],
    )
    def test_look_alikes_are_left_alone(self, text: str) -> None:
        structured = {"credit_card", "ssn", "iban", "ip_address", "phone"}
        assert [f for f in _found(text) if f[0] in structured] == []

    def test_each_hit_has_a_score_and_a_reason(self) -> None:
        [hit] = scan("card: 5555 5555 5555 4444")
        assert hit.type is PiiType.credit_card
        assert 0 < hit.score <= 1
        assert "mastercard" in hit.reason
        assert "Luhn" in hit.reason


class TestNamesAndAddresses:
    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("Hello, my name is Priya Raghunathan and I need help.", "Priya Raghunathan"),
            ("Dear Mrs. Okafor,\nyour order shipped.", "Okafor"),
            ("Thanks for your help.\n\nBest regards,\nJohan de Vries", "Johan de Vries"),
            ("Spoke with Camille Dubois about the refund.", "Camille Dubois"),
            ("Bonjour, je m'appelle Élodie Martin.", "Élodie Martin"),
        ],
    )
    def test_names_found_by_their_context(self, text: str, name: str) -> None:
        assert ("person", name) in _found(text)

    def test_the_tenants_own_customer_names_are_found_anywhere(self) -> None:
        text = "Ingrid Solberg wants to cancel next month."
        assert ("person", "Ingrid Solberg") not in _found(text)
        assert ("person", "Ingrid Solberg") in _found(text, known_names=["Ingrid Solberg"])

    @pytest.mark.parametrize(
        ("text", "address"),
        [
            (
                "Ship to 1600 Amphitheatre Parkway, Mountain View, CA 94043 please",
                "1600 Amphitheatre Parkway, Mountain View, CA 94043",
            ),
            ("Neue Adresse: Hauptstraße 5, 10115 Berlin.", "Hauptstraße 5, 10115 Berlin"),
            ("Livraison au 54, rue de Lemaire 75001 Paris", "54, rue de Lemaire 75001 Paris"),
            ("Send it to 221B Baker Street, London NW1 6XE", "221B Baker Street, London NW1 6XE"),
        ],
    )
    def test_street_addresses(self, text: str, address: str) -> None:
        assert ("address", address) in _found(text)

    def test_plain_prose_has_nothing(self) -> None:
        text = "The Quarterly Report shows Strong Growth in Europe and Asia this year."
        assert _found(text) == []


class TestThresholds:
    def test_min_score_and_per_type_thresholds(self) -> None:
        text = "the code is 4155552671 or jane@example.com"
        assert {t for t, _ in _found(text)} == {"email"}  # bare digits score below 0.5
        low = Detector(min_score=0.3).scan(text)
        assert {e.type for e in low} == {PiiType.email, PiiType.phone}
        strict = Detector(thresholds={PiiType.email: 0.99}).scan(text)
        assert strict == []

    def test_types_can_be_limited(self) -> None:
        text = "jane@example.com 203.0.113.9"
        only = Detector(types=frozenset({PiiType.ip_address})).scan(text)
        assert [e.type for e in only] == [PiiType.ip_address]


class TestPhoneValidation:
    @pytest.mark.parametrize(
        "number",
        [
            "(415) 555-2671",
            "415-555-2671",
            "1-800-555-0199",
            "+1 (415) 555-2671",
            "+44 20 7946 0958",
            "020 7946 0958",
            "+49(0)8063608377",
            "0049 30 1234567",
            "03533 74068",
            "04 15 39 15 00",
            "+33 (0)1 41 63 60 83",
            "0141008060",
            "+39 3227783534",
            "(091) 5000806",
            "+34 878 915 000",
            "555-0000",
            "000-000-0000",
            "+999 1234 5678",
            "0800 123",
        ],
    )
    def test_agrees_with_phonenumbers_parse(self, number: str) -> None:
        """Numbers are validated from their digits without phonenumbers.parse(): in every
        region the number may be written in, the verdict must be the one parse() and
        is_valid_number give. (Regions are tried only where the national form fits: a
        German number written nationally starts with its trunk 0.)"""
        import phonenumbers

        from custos.privacy.pii.patterns import FALLBACK_REGIONS, _could_be_national, _parse_phone

        regions = ("US", *(r for r in FALLBACK_REGIONS if r != "US"))
        ours = _parse_phone(number, regions)
        international = number.startswith(("+", "00"))
        text = "+" + number[2:] if number.startswith("00") else number
        expected = None
        digits = "".join(ch for ch in number if ch.isdigit())
        for region in (None,) if international else regions:
            if region is not None and not _could_be_national(digits, region):
                continue
            try:
                parsed = phonenumbers.parse(text, region)
            except phonenumbers.NumberParseException:
                continue
            ok = (
                phonenumbers.is_valid_number(parsed)
                if region is None
                else phonenumbers.is_valid_number_for_region(parsed, region)
            )
            if ok:
                expected = international
                break
        assert (ours is not None, ours[1] if ours else None) == (
            expected is not None,
            expected,
        )
