"""Console users, sessions and CSRF tokens.

Passwords are hashed with Argon2id (memory-hard); session cookies are random tokens stored only
as hashes, HttpOnly and SameSite=Strict (Secure when served over HTTPS); every POST carries
the session's CSRF token.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from storage.db import Store

ROLES = ("agent", "manager")
SESSION_SECONDS = 12 * 3600
_hasher = PasswordHasher()  # Argon2id, 64 MiB, 3 passes: the library's RFC 9106 low-memory profile


@functools.cache
def _dummy() -> str:
    """A fixed hash to verify against when the user does not exist, so timing does not reveal names
    (made on first use: an Argon2 hash costs every kefu command a quarter of a second at import)."""
    return _hasher.hash("kefu-no-such-user")


def prepare() -> None:
    """Make the unknown-user hash now (a console does at start-up), not during someone's login."""
    _dummy()


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


def add_user(db: Store, username: str, password: str, role: str, now: float) -> None:
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


def password_hash(db: Store, username: str) -> str | None:
    """The stored hash of a user, or None (a quick read: a read connection will do)."""
    row = db.execute("SELECT password_hash FROM users WHERE username = ?", [username]).fetchone()
    return str(row[0]) if row else None


def check_password(stored: str | None, password: str) -> str:
    """Verify ``password`` (CPU- and memory-heavy: run it on its own thread, never the database's).

    Returns the hash to store from now on (the old one, or a rehash with current parameters);
    raises AuthError on a wrong password or an unknown user, taking as long either way.
    """
    try:
        _hasher.verify(stored or _dummy(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise AuthError("用户名或密码错误") from None
    if stored is None:
        raise AuthError("用户名或密码错误")
    return _hasher.hash(password) if _hasher.check_needs_rehash(stored) else stored


def open_session(db: Store, username: str, new_hash: str, now: float) -> str:
    """Open a session for a user whose password was just checked; returns the cookie token."""
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
        db.execute("UPDATE users SET password_hash = ? WHERE username = ? AND password_hash != ?", [new_hash, username, new_hash])
    return token


class LoginThrottle:
    """Failed logins per account and per address: a growing delay, then a lockout.

    Kept in the process's memory (each replica counts its own); a restart forgets it.
    """

    def __init__(
        self,
        *,
        window: float = 900.0,
        account_limit: int = 5,
        address_limit: int = 20,
        lockout: float = 900.0,
        max_delay: float = 2.0,
    ) -> None:
        self.window = window
        self.account_limit = account_limit
        self.address_limit = address_limit
        self.lockout = lockout
        self.max_delay = max_delay
        self._failures: dict[str, list[float]] = {}
        self._locked: dict[str, float] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if t > now - self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def locked_until(self, username: str, address: str, now: float) -> float | None:
        """When the lock on this account or address ends, if one holds now."""
        ends = [self._locked[k] for k in (f"user:{username}", f"addr:{address}") if self._locked.get(k, 0.0) > now]
        return max(ends) if ends else None

    def delay(self, username: str, address: str, now: float) -> float:
        """Seconds to hold the answer to this attempt: nothing for the first two failures, then doubling."""
        failures = max(len(self._recent(f"user:{username}", now)), len(self._recent(f"addr:{address}", now)) // 4)
        return 0.0 if failures < 2 else min(self.max_delay, 0.25 * 2 ** (failures - 2))

    def failed(self, username: str, address: str, now: float) -> list[str]:
        """Count a failure; returns the keys ("user:…", "addr:…") that this failure locked."""
        newly = []
        for key, limit in ((f"user:{username}", self.account_limit), (f"addr:{address}", self.address_limit)):
            self._failures.setdefault(key, []).append(now)
            if len(self._recent(key, now)) >= limit and self._locked.get(key, 0.0) <= now:
                self._locked[key] = now + self.lockout
                newly.append(key)
        return newly

    def succeeded(self, username: str) -> None:
        """A right password clears the account's count (not the address's)."""
        self._failures.pop(f"user:{username}", None)


def session_user(db: Store, token: str, now: float) -> User | None:
    """The user behind a session cookie, if the session is valid."""
    if not token:
        return None
    row = db.execute(
        "SELECT s.username, u.role, s.csrf FROM sessions s JOIN users u USING (username) "
        "WHERE s.token_hash = ? AND s.expires_at > ?",
        [_digest(token), now],
    ).fetchone()
    return User(row[0], row[1], row[2]) if row else None


def logout(db: Store, token: str) -> None:
    """End a session."""
    with db.atomic():
        db.execute("DELETE FROM sessions WHERE token_hash = ?", [_digest(token)])


def csrf_ok(user: User, given: str) -> bool:
    """Constant-time check of a form's CSRF token."""
    return bool(given) and hmac.compare_digest(user.csrf.encode(), given.encode())
