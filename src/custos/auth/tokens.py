"""Access tokens (HS256 JWTs, short-lived) and opaque refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from custos.config import Settings
from custos.exceptions import Unauthorized
from custos.kit.crypto import derive_key, keyed_hash, random_base62
from custos.kit.ids import ulid
from custos.kit.time import utcnow

ALGORITHM = "HS256"
REFRESH_TOKEN_PREFIX = "crt_"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    tenant_id: str
    kind: str
    session_id: str | None
    scopes: frozenset[str] | None
    expires_at: int


class Tokens:
    def __init__(self, settings: Settings) -> None:
        secret = settings.secret_key.get_secret_value()
        self._signing_key = derive_key(secret, "jwt-hs256")
        self._refresh_key = derive_key(secret, "refresh-token")
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.access_ttl = settings.access_token_ttl_seconds

    def issue_access(
        self,
        *,
        subject: str,
        tenant_id: str,
        kind: str,
        session_id: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> str:
        now = utcnow()
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "tid": tenant_id,
            "knd": kind,
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=self.access_ttl),
            "jti": ulid(),
        }
        if session_id:
            claims["sid"] = session_id
        if scopes is not None:
            claims["scope"] = " ".join(sorted(scopes))
        return jwt.encode(claims, self._signing_key, algorithm=ALGORITHM)

    def decode_access(self, token: str) -> AccessClaims:
        try:
            # The algorithm list is fixed: a token's own `alg` header (none, RS256, ...) is
            # never trusted to choose how it is checked.
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=5,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("The access token is invalid") from None
        if claims.get("typ") != "access" or not isinstance(claims.get("tid"), str):
            raise Unauthorized("The access token is invalid")
        scope = claims.get("scope")
        return AccessClaims(
            subject=str(claims["sub"]),
            tenant_id=claims["tid"],
            kind=str(claims.get("knd", "user")),
            session_id=claims.get("sid"),
            scopes=frozenset(scope.split()) if isinstance(scope, str) else None,
            expires_at=int(claims["exp"]),
        )

    def new_refresh_token(self) -> tuple[str, str]:
        token = REFRESH_TOKEN_PREFIX + random_base62(43)
        return token, self.hash_refresh_token(token)

    def hash_refresh_token(self, token: str) -> str:
        return keyed_hash(self._refresh_key, token)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")
