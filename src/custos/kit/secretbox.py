"""Secrets Custos must use again later (webhook signing secrets), kept encrypted at rest.

AES-256-GCM under a key derived from CUSTOS_SECRET_KEY per purpose; the row's id is bound as
associated data, so a ciphertext copied onto another row does not decrypt. Changing
CUSTOS_SECRET_KEY makes existing ciphertexts unreadable (the secrets must then be rotated).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custos.kit.crypto import derive_key

_VERSION = "v1"


class SecretBox:
    def __init__(self, master: str, purpose: str) -> None:
        self._aead = AESGCM(derive_key(master, f"secretbox:{purpose}"))

    def seal(self, plaintext: str, bound_to: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, bound_to: str) -> str:
        version, _, body = token.partition(".")
        if version != _VERSION:
            raise ValueError("unknown secret format")
        raw = base64.urlsafe_b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except InvalidTag:
            raise ValueError("the secret cannot be decrypted with this secret key") from None
