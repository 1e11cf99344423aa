"""The demo's storage: one SQLite file through the standard library, no ORM.

Every table the login journey needs lives here, server-side: accounts, the
server-side sessions (keyed by a hash of the cookie), pending logins, hashed
one-time codes, throttle events and the fake gateways' outbox.  The schema is
created, and the demo accounts seeded, on first run.

Times are epoch seconds (``REAL``) except ``bound_at``-like moments shown to
people, which are ISO 8601 strings in UTC.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import secrets
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.security import generate_password_hash

import recyclecheck

from .seed import SEED_ACCOUNTS

__all__ = ["Account", "Pending", "Store"]

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    phone TEXT UNIQUE,               -- E.164; NULL once the number was released
    phone_bound_at TEXT,             -- recyclecheck's bound_at (ISO 8601, UTC)
    created_at TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    CHECK ((phone IS NULL) = (phone_bound_at IS NULL))
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    placed_on TEXT NOT NULL,
    item TEXT NOT NULL,
    total TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS account_events (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,             -- SHA-256 of the cookie value, never the value
    data TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,              -- 'login' or 'recovery'
    stage TEXT NOT NULL,
    phone TEXT,
    account_id INTEGER,
    action TEXT,                     -- the Guard's decision for this login
    reason TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    email_code_sent INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS codes (
    id INTEGER PRIMARY KEY,
    pending_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    digest TEXT NOT NULL,            -- keyed HMAC of the code, never the code
    expires_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    used_at REAL
);
CREATE INDEX IF NOT EXISTS codes_by_pending ON codes (pending_id, purpose);
CREATE TABLE IF NOT EXISTS throttle (kind TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS throttle_by_key ON throttle (kind, key, at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,           -- 'sms' or 'email'
    recipient TEXT NOT NULL,
    body TEXT NOT NULL,
    code TEXT,
    sent_at REAL NOT NULL
);
"""
_TABLES = (
    "meta",
    "accounts",
    "orders",
    "account_events",
    "sessions",
    "pending",
    "codes",
    "throttle",
    "outbox",
)
#: Throttle events older than this are deleted as new ones arrive.
_THROTTLE_HORIZON = 86_400.0


@functools.cache
def _seed_password_hash(password: str) -> str:
    """Hash a seeded password once per process (scrypt is slow on purpose)."""
    return generate_password_hash(password)


def _masked(phone: str | None) -> str:
    return "-" if phone is None else recyclecheck.mask(phone)


def iso(moment: dt.datetime) -> str:
    """An aware datetime as an ISO 8601 string in UTC, to the second."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, repr=False)
class Account:
    """An account row.  Its ``repr`` shows the number masked, and no e-mail or hash."""

    id: int
    name: str
    email: str
    password_hash: str
    phone: str | None
    phone_bound_at: dt.datetime | None
    created_at: str
    address: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Account:
        """Build from a row of ``accounts``."""
        bound = row["phone_bound_at"]
        return cls(
            id=row["id"],
            name=row["name"],
            email=row["email"],
            password_hash=row["password_hash"],
            phone=row["phone"],
            phone_bound_at=dt.datetime.fromisoformat(bound) if bound else None,
            created_at=row["created_at"],
            address=row["address"],
        )

    def __repr__(self) -> str:
        return f"<Account id={self.id} phone={_masked(self.phone)}>"


@dataclass(frozen=True, repr=False)
class Pending:
    """A login or recovery in progress: which step it reached, held server-side.

    Its ``repr`` shows the number masked (it may end up in a log or a traceback).
    """

    id: str
    flow: str
    stage: str
    phone: str | None
    account_id: int | None
    action: str | None
    reason: str | None
    failures: int
    email_code_sent: bool
    expires_at: float

    def __repr__(self) -> str:
        return (
            f"<Pending {self.flow} stage={self.stage} phone={_masked(self.phone)} "
            f"account={self.account_id}>"
        )


class Store:
    """A connection to the demo database, with the queries the views need."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA busy_timeout = 5000")

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- schema and seed ----------------------------------------------------------------

    @classmethod
    def initialise(cls, path: str, *, now: dt.datetime) -> None:
        """Create the schema and seed the demo accounts, once (on first run)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        try:
            store.db.execute("PRAGMA journal_mode = WAL")
            store.db.executescript(_SCHEMA)
            with store.transaction() as db:
                if db.execute("SELECT 1 FROM meta WHERE key = 'seeded'").fetchone() is None:
                    store._seed(now)
        finally:
            store.close()

    def reset(self, *, now: dt.datetime) -> None:
        """Forget everything (sessions and codes too) and seed the demo accounts again."""
        with self.transaction() as db:
            for table in reversed(_TABLES):
                db.execute(f"DELETE FROM {table}")  # table names are constants
            self._seed(now)

    def _seed(self, now: dt.datetime) -> None:
        for seed in SEED_ACCOUNTS:
            cursor = self.db.execute(
                "INSERT INTO accounts (name, email, password_hash, phone, phone_bound_at,"
                " created_at, address) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    seed.name,
                    seed.email,
                    _seed_password_hash(seed.password),
                    seed.phone,
                    iso(seed.bound_at),
                    iso(seed.bound_at),
                    seed.address,
                ),
            )
            account_id = cursor.lastrowid
            assert account_id is not None
            self.db.executemany(
                "INSERT INTO orders (account_id, placed_on, item, total) VALUES (?, ?, ?, ?)",
                [(account_id, *order) for order in seed.orders],
            )
            self._event(account_id, seed.bound_at, "created", "Account created with its number")
        self.db.execute("INSERT INTO meta (key, value) VALUES ('seeded', ?)", (iso(now),))
        self.db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def meta(self, key: str) -> str | None:
        """A value from ``meta``."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def meta_default(self, key: str, value: str) -> str:
        """The value of ``key`` in ``meta``, storing ``value`` first if there is none."""
        self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        stored = self.meta(key)
        assert stored is not None
        return stored

    # -- accounts -----------------------------------------------------------------------

    def account(self, account_id: int) -> Account | None:
        """The account with this id."""
        row = self.db.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return None if row is None else Account.from_row(row)

    def account_by_phone(self, e164: str) -> Account | None:
        """The account this number is bound to, if any."""
        row = self.db.execute("SELECT * FROM accounts WHERE phone = ?", (e164,)).fetchone()
        return None if row is None else Account.from_row(row)

    def account_by_email(self, email: str) -> Account | None:
        """The account with this e-mail address (case-insensitive), if any."""
        row = self.db.execute("SELECT * FROM accounts WHERE email = ?", (email,)).fetchone()
        return None if row is None else Account.from_row(row)

    def accounts(self) -> list[Account]:
        """Every account, oldest first."""
        rows = self.db.execute("SELECT * FROM accounts ORDER BY id").fetchall()
        return [Account.from_row(row) for row in rows]

    def create_account(
        self, *, name: str, email: str, password_hash: str, phone: str, now: dt.datetime
    ) -> int:
        """Insert an account bound to ``phone`` now; returns its id."""
        cursor = self.db.execute(
            "INSERT INTO accounts (name, email, password_hash, phone, phone_bound_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (name, email, password_hash, phone, iso(now), iso(now)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def set_phone(self, account_id: int, phone: str | None, bound_at: dt.datetime | None) -> None:
        """Bind ``phone`` to the account as of ``bound_at`` (``None`` for both: release it)."""
        self.db.execute(
            "UPDATE accounts SET phone = ?, phone_bound_at = ? WHERE id = ?",
            (phone, None if bound_at is None else iso(bound_at), account_id),
        )

    def orders(self, account_id: int) -> list[sqlite3.Row]:
        """The account's orders, newest first."""
        return self.db.execute(
            "SELECT placed_on, item, total FROM orders WHERE account_id = ?"
            " ORDER BY placed_on DESC",
            (account_id,),
        ).fetchall()

    def _event(self, account_id: int, at: dt.datetime, kind: str, detail: str) -> None:
        self.db.execute(
            "INSERT INTO account_events (account_id, at, kind, detail) VALUES (?, ?, ?, ?)",
            (account_id, iso(at), kind, detail),
        )

    def add_event(self, account_id: int, at: dt.datetime, kind: str, detail: str) -> None:
        """Record something that happened to the account (shown on its page)."""
        self._event(account_id, at, kind, detail)

    def events(self, account_id: int, limit: int = 8) -> list[sqlite3.Row]:
        """The account's latest events, newest first."""
        return self.db.execute(
            "SELECT at, kind, detail FROM account_events WHERE account_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (account_id, limit),
        ).fetchall()

    # -- server-side sessions -----------------------------------------------------------

    def load_session(self, session_id: str, now: float) -> dict[str, Any] | None:
        """The data of a live session, or ``None`` (unknown or expired)."""
        row = self.db.execute(
            "SELECT data, expires_at FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None or row["expires_at"] <= now:
            return None
        data = json.loads(row["data"])
        return data if isinstance(data, dict) else None

    def session_expires_at(self, session_id: str) -> float | None:
        """When the session expires, or ``None`` if there is no such session."""
        row = self.db.execute(
            "SELECT expires_at FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        return None if row is None else float(row["expires_at"])

    def save_session(self, session_id: str, data: Mapping[str, Any], expires_at: float) -> None:
        """Insert or replace a session."""
        self.db.execute(
            "INSERT INTO sessions (id, data, expires_at) VALUES (?, ?, ?) ON CONFLICT (id)"
            " DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
            (session_id, json.dumps(dict(data)), expires_at),
        )

    def delete_session(self, session_id: str) -> None:
        """Delete a session (logout, re-issue)."""
        self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def purge_sessions(self, now: float) -> None:
        """Delete expired sessions and pending logins."""
        self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        self.db.execute(
            "DELETE FROM codes WHERE pending_id IN (SELECT id FROM pending WHERE expires_at <= ?)",
            (now,),
        )
        self.db.execute("DELETE FROM pending WHERE expires_at <= ?", (now,))

    # -- pending logins and recoveries --------------------------------------------------

    def create_pending(
        self,
        *,
        flow: str,
        stage: str,
        expires_at: float,
        phone: str | None = None,
        account_id: int | None = None,
    ) -> str:
        """Start a pending login or recovery; returns its random id."""
        pending_id = secrets.token_urlsafe(24)
        self.db.execute(
            "INSERT INTO pending (id, flow, stage, phone, account_id, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (pending_id, flow, stage, phone, account_id, expires_at),
        )
        return pending_id

    def pending(self, pending_id: str, now: float) -> Pending | None:
        """A live pending login or recovery, or ``None`` (unknown or expired)."""
        row = self.db.execute("SELECT * FROM pending WHERE id = ?", (pending_id,)).fetchone()
        if row is None or row["expires_at"] <= now:
            return None
        return Pending(
            id=row["id"],
            flow=row["flow"],
            stage=row["stage"],
            phone=row["phone"],
            account_id=row["account_id"],
            action=row["action"],
            reason=row["reason"],
            failures=row["failures"],
            email_code_sent=bool(row["email_code_sent"]),
            expires_at=row["expires_at"],
        )

    _PENDING_FIELDS = frozenset({"stage", "phone", "account_id", "action", "reason"})

    def update_pending(self, pending_id: str, **fields: object) -> None:
        """Move a pending login on (``stage``, ``phone``, ``account_id``, decision)."""
        unknown = set(fields) - self._PENDING_FIELDS
        if unknown:
            raise ValueError(f"not pending fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(
            f"UPDATE pending SET {assignments} WHERE id = ?",  # names checked above
            (*fields.values(), pending_id),
        )

    def mark_email_code_sent(self, pending_id: str) -> None:
        """Remember that the step-up e-mail code went out."""
        self.db.execute("UPDATE pending SET email_code_sent = 1 WHERE id = ?", (pending_id,))

    def add_pending_failure(self, pending_id: str) -> int:
        """Count a failed step-up; returns the failures so far."""
        self.db.execute("UPDATE pending SET failures = failures + 1 WHERE id = ?", (pending_id,))
        row = self.db.execute("SELECT failures FROM pending WHERE id = ?", (pending_id,)).fetchone()
        return 0 if row is None else int(row["failures"])

    def delete_pending(self, pending_id: str) -> None:
        """End a pending login or recovery, and every code issued for it."""
        self.db.execute("DELETE FROM codes WHERE pending_id = ?", (pending_id,))
        self.db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))

    # -- one-time codes (hashed) ----------------------------------------------------------

    def replace_code(self, pending_id: str, purpose: str, digest: str, expires_at: float) -> None:
        """Store a new code's digest; earlier codes for the same step stop working."""
        self.db.execute(
            "DELETE FROM codes WHERE pending_id = ? AND purpose = ?", (pending_id, purpose)
        )
        self.db.execute(
            "INSERT INTO codes (pending_id, purpose, digest, expires_at) VALUES (?, ?, ?, ?)",
            (pending_id, purpose, digest, expires_at),
        )

    def live_code(self, pending_id: str, purpose: str, now: float) -> sqlite3.Row | None:
        """The unused, unexpired code for this step, if any."""
        row: sqlite3.Row | None = self.db.execute(
            "SELECT id, digest, attempts FROM codes WHERE pending_id = ? AND purpose = ?"
            " AND used_at IS NULL AND expires_at > ? ORDER BY id DESC LIMIT 1",
            (pending_id, purpose, now),
        ).fetchone()
        return row

    def count_attempt(self, code_id: int, max_attempts: int) -> bool:
        """Count one attempt at a code, atomically; False once it had ``max_attempts``."""
        cursor = self.db.execute(
            "UPDATE codes SET attempts = attempts + 1 WHERE id = ? AND attempts < ?",
            (code_id, max_attempts),
        )
        return cursor.rowcount == 1

    def use_code(self, code_id: int, now: float) -> bool:
        """Mark a code used, atomically; False if it already was (a replay)."""
        cursor = self.db.execute(
            "UPDATE codes SET used_at = ? WHERE id = ? AND used_at IS NULL", (now, code_id)
        )
        return cursor.rowcount == 1

    # -- throttle -------------------------------------------------------------------------

    def throttle_count(self, kind: str, key: str, since: float) -> int:
        """Events of ``kind`` for ``key`` after ``since``."""
        row = self.db.execute(
            "SELECT COUNT(*) AS n FROM throttle WHERE kind = ? AND key = ? AND at > ?",
            (kind, key, since),
        ).fetchone()
        return int(row["n"])

    def throttle_add(self, kind: str, key: str, now: float) -> None:
        """Record one event (and forget events older than a day)."""
        self.db.execute("DELETE FROM throttle WHERE at < ?", (now - _THROTTLE_HORIZON,))
        self.db.execute("INSERT INTO throttle (kind, key, at) VALUES (?, ?, ?)", (kind, key, now))

    # -- the fake gateways' outbox ------------------------------------------------------

    def add_message(
        self, *, channel: str, recipient: str, body: str, code: str | None, now: float
    ) -> None:
        """Record a message the fake SMS or e-mail gateway "sent"."""
        self.db.execute(
            "INSERT INTO outbox (channel, recipient, body, code, sent_at) VALUES (?, ?, ?, ?, ?)",
            (channel, recipient, body, code, now),
        )

    def messages(self, limit: int = 4) -> list[sqlite3.Row]:
        """The latest messages, newest first."""
        return self.db.execute(
            "SELECT channel, recipient, body, code, sent_at FROM outbox ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
