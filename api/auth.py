"""API keys with roles, sent as ``Authorization: Bearer <key>``; only SHA-256 hashes are stored.

Roles nest: ``viewer`` reads; ``operator`` also ingests events, writes annotations and acts on
alerts; ``admin`` also changes configuration and deletes. With no keys configured the API is
open, which the CLI allows only on a loopback address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel

from api.problems import Problem

ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    sha256: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "spk_" + secrets.token_urlsafe(32)


def parse_keys(entries: list[str]) -> list[ApiKey]:
    """``name:role:sha256hex`` entries (as in config or SNAKEPIT_PERF_API_KEYS)."""
    keys = []
    for entry in entries:
        parts = entry.strip().split(":")
        if len(parts) != 3 or parts[1] not in ROLES or len(parts[2]) != 64:
            raise ValueError(f"API key entry {entry[:40]!r}...: expected name:role:sha256hex "
                             f"with role one of {', '.join(ROLES)}")
        keys.append(ApiKey(*parts))
    return keys


class Authenticator:
    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def check(self, request: Request, role: str) -> ApiKey | None:
        if not self.keys:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "Unauthorized", "send an API key as 'Authorization: Bearer <key>'",
                          param="Authorization")
        key = self.find(token)
        if key is None:
            raise Problem(401, "Unauthorized", "unknown API key", param="Authorization")
        if ROLES.index(key.role) < ROLES.index(role):
            raise Problem(403, "Forbidden",
                          f"key '{key.name}' has role {key.role}; this needs {role}")
        return key

    def find(self, token: str) -> ApiKey | None:
        digest = hash_key(token.strip())
        for key in self.keys:
            if hmac.compare_digest(key.sha256, digest):
                return key
        return None


def require(role: str):
    """A route dependency: ``dependencies=[Depends(require("operator"))]``."""

    def dependency(request: Request) -> None:
        request.app.state.auth.check(request, role)

    return dependency


class Caller(BaseModel):
    name: str
    role: str


def caller(role: str = "viewer"):
    """A route parameter dependency that checks ``role`` and returns who is calling; with no
    keys configured (loopback only) that is ``local``, an admin."""

    def dependency(request: Request) -> Caller:
        key = request.app.state.auth.check(request, role)
        return Caller(name="local", role="admin") if key is None else Caller(name=key.name,
                                                                              role=key.role)

    return dependency
