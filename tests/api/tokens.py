"""Minting OIDC access tokens for tests: keys generated here, tokens signed with PyJWT, and
the forgeries an attacker would try (unsigned, HMAC-signed with the public key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        encoder = RSAAlgorithm if self.algorithm.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = json.loads(encoder.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_signing_key(algorithm: str = "RS256") -> SigningKey:
    private: PrivateKey
    if algorithm.startswith("RS"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(uuid.uuid4().hex[:12], algorithm, private)


def claims(
    issuer: str, audience: str, org_id: uuid.UUID, role: str, **overrides: Any
) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": issuer,
        "aud": audience,
        "sub": "user-" + uuid.uuid4().hex[:8],
        "iat": now,
        "exp": now + 600,
        "org_id": str(org_id),
        "role": role,
    }
    return {**base, **overrides}


def sign(key: SigningKey, payload: dict[str, Any]) -> str:
    return jwt.encode(payload, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(kid: str, payload: dict[str, Any]) -> str:
    """`alg: none`, no signature."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def hmac_with_public_key(key: SigningKey, payload: dict[str, Any]) -> str:
    """HS256 with the issuer's public key as the HMAC secret (the HS/RS confusion attack)."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    signing_input = f"{header}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"
