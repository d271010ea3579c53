"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The secret is `whsec_` + base64 of 32 random bytes. Each message carries `webhook-id` (the
event id, the same on every retry), `webhook-timestamp` (Unix seconds, when this attempt was
signed) and `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over
`<id>.<timestamp>.<body>`, keyed with the secret's decoded bytes. During a rotation's grace
period the header holds two signatures, space-separated, new first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(signature(s, message_id, timestamp, body) for s in secrets_)
