"""Forged, altered and expired access tokens are all 401."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from custos.kit.crypto import derive_key
from custos.runtime import Runtime
from tests.factories import Factory, bearer, login


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> list[str]:
    return token.split(".")


def _claims(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def _signing_key(runtime: Runtime) -> bytes:
    return derive_key(runtime.settings.secret_key.get_secret_value(), "jwt-hs256")


@pytest.fixture
async def valid_token(client: httpx.AsyncClient, factory: Factory) -> str:
    tenant = await factory.tenant()
    return (await login(client, tenant.admin))["access_token"]


async def _status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code


class TestJwtAttacks:
    async def test_the_untouched_token_works(
        self, client: httpx.AsyncClient, valid_token: str
    ) -> None:
        assert await _status(client, valid_token) == 200

    async def test_alg_none_is_rejected(self, client: httpx.AsyncClient, valid_token: str) -> None:
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = _segments(valid_token)[1]
        for forged in (f"{header}.{payload}.", f"{header}.{payload}.e30"):
            assert await _status(client, forged) == 401

    async def test_hs_rs_confusion_is_rejected(
        self, client: httpx.AsyncClient, valid_token: str
    ) -> None:
        # An attacker signs with HS256 using a public key as the secret, hoping the server
        # verifies "RS256 with its public key" by trusting the header.
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = _claims(valid_token)
        rs_token = jwt.encode(claims, private, algorithm="RS256")
        assert await _status(client, rs_token) == 401
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _segments(valid_token)[1]
        import hashlib
        import hmac

        signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
        assert await _status(client, f"{header}.{body}.{_b64(signature)}") == 401

    async def test_tampered_payload_is_rejected(
        self, client: httpx.AsyncClient, valid_token: str, factory: Factory
    ) -> None:
        other = await factory.tenant()
        header, _, signature = _segments(valid_token)
        claims = _claims(valid_token)
        claims["tid"] = other.id  # try to move the token to another tenant
        payload = _b64(json.dumps(claims).encode())
        assert await _status(client, f"{header}.{payload}.{signature}") == 401

    async def test_expired_token_is_rejected(
        self, client: httpx.AsyncClient, valid_token: str, runtime: Runtime
    ) -> None:
        claims = _claims(valid_token)
        past = datetime.now(UTC) - timedelta(hours=1)
        claims.update(iat=past - timedelta(minutes=15), nbf=past - timedelta(minutes=15), exp=past)
        token = jwt.encode(claims, _signing_key(runtime), algorithm="HS256")
        response = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert response.status_code == 401
        assert "expired" in response.json()["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_token_without_exp_is_rejected(
        self, client: httpx.AsyncClient, valid_token: str, runtime: Runtime
    ) -> None:
        claims = _claims(valid_token)
        del claims["exp"]
        token = jwt.encode(claims, _signing_key(runtime), algorithm="HS256")
        assert await _status(client, token) == 401

    async def test_token_signed_with_another_key_is_rejected(
        self, client: httpx.AsyncClient, valid_token: str
    ) -> None:
        token = jwt.encode(_claims(valid_token), b"k" * 32, algorithm="HS256")
        assert await _status(client, token) == 401

    async def test_a_refresh_token_is_not_an_access_token(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        tokens = await login(client, tenant.admin)
        assert await _status(client, tokens["refresh_token"]) == 401

    async def test_wrong_audience_or_type_is_rejected(
        self, client: httpx.AsyncClient, valid_token: str, runtime: Runtime
    ) -> None:
        for change in ({"aud": "someone-else"}, {"typ": "refresh"}, {"iss": "evil"}):
            claims = {**_claims(valid_token), **change}
            token = jwt.encode(claims, _signing_key(runtime), algorithm="HS256")
            assert await _status(client, token) == 401, change

    @pytest.mark.parametrize(
        "header",
        ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-token", "Bearer a.b.c"],
    )
    async def test_garbage_credentials_are_401(
        self, client: httpx.AsyncClient, header: str
    ) -> None:
        response = await client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
