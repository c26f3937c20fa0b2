"""Console users, sessions and CSRF tokens.

Passwords are hashed with Argon2id (memory-hard); session cookies are random tokens stored only
as hashes, HttpOnly and SameSite=Strict (Secure when served over HTTPS); every POST carries
the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("agent", "manager")
SESSION_SECONDS = 12 * 3600
_hasher = PasswordHasher()  # Argon2id, 64 MiB, 3 passes: the library's RFC 9106 low-memory profile
# A fixed hash to verify against when the user does not exist, so timing does not reveal names.
_DUMMY = _hasher.hash("kefu-no-such-user")


class AuthError(Exception):
    """Login refused, or a user cannot be created."""


@dataclass(frozen=True)
class User:
    """A signed-in console user."""

    username: str
    role: str
    csrf: str

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(db: sqlite_utils.Database, username: str, password: str, role: str, now: float) -> None:
    """Create or update a console user."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if not username.strip() or len(username) > 64:
        raise AuthError("username must be 1-64 characters")
    if len(password) < 8:
        raise AuthError("password must be at least 8 characters")
    with db.atomic():
        db.table("users").upsert(
            {"username": username.strip(), "password_hash": _hasher.hash(password), "role": role, "created_at": now},
            pk="username",
        )


def login(db: sqlite_utils.Database, username: str, password: str, now: float) -> str:
    """Check the password and open a session; returns the cookie token."""
    row = db.execute("SELECT password_hash, role FROM users WHERE username = ?", [username]).fetchone()
    try:
        _hasher.verify(row[0] if row else _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise AuthError("用户名或密码错误") from None
    if row is None:
        raise AuthError("用户名或密码错误")
    token = secrets.token_urlsafe(32)
    with db.atomic():
        db.table("sessions").insert(
            {
                "token_hash": _digest(token),
                "username": username,
                "csrf": secrets.token_urlsafe(24),
                "created_at": now,
                "expires_at": now + SESSION_SECONDS,
            }
        )
        if _hasher.check_needs_rehash(row[0]):
            db.execute("UPDATE users SET password_hash = ? WHERE username = ?", [_hasher.hash(password), username])
    return token


def session_user(db: sqlite_utils.Database, token: str, now: float) -> User | None:
    """The user behind a session cookie, if the session is valid."""
    if not token:
        return None
    row = db.execute(
        "SELECT s.username, u.role, s.csrf FROM sessions s JOIN users u USING (username) "
        "WHERE s.token_hash = ? AND s.expires_at > ?",
        [_digest(token), now],
    ).fetchone()
    return User(row[0], row[1], row[2]) if row else None


def logout(db: sqlite_utils.Database, token: str) -> None:
    """End a session."""
    with db.atomic():
        db.execute("DELETE FROM sessions WHERE token_hash = ?", [_digest(token)])


def csrf_ok(user: User, given: str) -> bool:
    """Constant-time check of a form's CSRF token."""
    return bool(given) and hmac.compare_digest(user.csrf.encode(), given.encode())
