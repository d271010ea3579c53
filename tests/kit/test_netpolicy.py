"""The address policy: what a webhook URL may name, decided without trusting its spelling."""

from __future__ import annotations

import ipaddress

import pytest

from custos.kit.netpolicy import AddressPolicy, RefusedAddress, blocked_reason, literal_ip
from tests.ssrf_forms import ELSEWHERE, loopback_forms

STRICT = AddressPolicy([])
FORMS = {**loopback_forms(8080), **ELSEWHERE}


class TestRefusedWhenSaved:
    def test_there_are_at_least_fifteen_known_forms(self) -> None:
        assert len(FORMS) >= 15

    @pytest.mark.parametrize("url", FORMS.values(), ids=FORMS.keys())
    async def test_each_bypass_form_is_refused(self, url: str) -> None:
        with pytest.raises(RefusedAddress):
            await STRICT.check_resolved(url)

    @pytest.mark.parametrize(
        "url",
        [
            "https://hooks.example.com/custos",
            "http://93.184.215.14:8443/in",
            "https://[2606:4700:4700::1111]/hook",
            "https://HOOKS.Example.com./x?y=1",
        ],
    )
    def test_public_addresses_and_names_are_allowed(self, url: str) -> None:
        STRICT.check_url(url)

    async def test_any_private_answer_refuses_the_name(self) -> None:
        async def mixed(_host: str, _port: int) -> list[str]:
            return ["93.184.215.14", "10.1.2.3"]

        with pytest.raises(RefusedAddress, match="private"):
            await STRICT.check_resolved("https://hooks.example.com/", resolver=mixed)

    async def test_a_name_that_does_not_resolve_yet_is_checked_when_sent(self) -> None:
        async def nothing(_host: str, _port: int) -> list[str]:
            raise OSError("no such name")

        target = await STRICT.check_resolved("https://not-yet.example.com/", resolver=nothing)
        assert target.host == "not-yet.example.com"


class TestAllowList:
    def test_an_allowed_address_or_network_opens_exactly_that(self) -> None:
        policy = AddressPolicy(["127.0.0.1", "10.20.0.0/16"])
        policy.check_url("http://127.0.0.1:9000/")
        policy.check_url("http://2130706433:9000/")
        policy.check_url("http://10.20.3.4/")
        for url in ("http://127.0.0.2/", "http://10.21.0.1/", "http://169.254.169.254/"):
            with pytest.raises(RefusedAddress):
                policy.check_url(url)

    def test_an_allowed_host_name_may_resolve_anywhere(self) -> None:
        policy = AddressPolicy(["hooks.internal"])
        policy.check_url("http://hooks.internal/x")
        with pytest.raises(RefusedAddress):
            policy.check_url("http://other.internal/x")

    @pytest.mark.parametrize("entry", ["", "not a host!", "10.0.0.0/33"])
    def test_a_malformed_entry_is_refused(self, entry: str) -> None:
        with pytest.raises(ValueError, match="neither a host name"):
            AddressPolicy([entry])


class TestAddresses:
    @pytest.mark.parametrize(
        ("host", "address"),
        [
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("10.1.258", "10.1.1.2"),
            ("0", "0.0.0.0"),
        ],
    )
    def test_numeric_forms_read_as_inet_aton_reads_them(self, host: str, address: str) -> None:
        assert literal_ip(host) == ipaddress.ip_address(address)

    @pytest.mark.parametrize(
        "host", ["256.1.1.1", "1.2.3.4.5", "0x1.0x100.1.1", "08.1.1.1", "a.0x7f"]
    )
    def test_malformed_numeric_hosts_are_refused(self, host: str) -> None:
        with pytest.raises(RefusedAddress):
            literal_ip(host)

    def test_a_name_is_not_an_address(self) -> None:
        assert literal_ip("hooks.example.com") is None
        assert literal_ip("deadbeef.example") is None

    @pytest.mark.parametrize(
        "address",
        [
            "64:ff9b::a9fe:a9fe",
            "2002:a00:1::",
            "::ffff:10.0.0.1",
            "2001::1",
            "fec0::1",
            "::127.0.0.1",
        ],
    )
    def test_ipv6_forms_of_private_addresses_are_refused(self, address: str) -> None:
        assert blocked_reason(ipaddress.ip_address(address)) is not None

    @pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"])
    def test_public_addresses_pass(self, address: str) -> None:
        assert blocked_reason(ipaddress.ip_address(address)) is None
