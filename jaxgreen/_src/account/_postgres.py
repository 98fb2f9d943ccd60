"""The PostgreSQL side of the ledger: URLs, the connection, and what its errors mean.

A ledger URL (``postgresql://user@host:port/db`` or ``postgres://...``) names a shared
ledger server: every host of a sweep writes one ledger, live. This module holds no SQL
of the ledger (that is in :mod:`~jaxgreen._src.account.ledger` and
:mod:`~jaxgreen._src.account.schema`): it opens the connection (psycopg 3, imported only
here and only when a URL is given), runs the ledger's statements through it with
SQLite's ``?`` placeholders, and sorts the server's errors into what the user can fix.

Example:
  >>> is_url("postgresql://ann:secret@db.lan:5432/green"), is_url("green.sqlite")
  (True, False)
  >>> mask("postgresql://ann:secret@db.lan:5432/green")
  'postgresql://ann:***@db.lan:5432/green'
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

SCHEMES = ("postgresql://", "postgres://")

# SQLSTATE classes and codes, and what each means for a ledger write.
_RETRY = {"40001", "40P01"}  # serialization failure, deadlock: run the transaction again
_BUSY = {"55P03", "57014"}  # lock_timeout, statement_timeout: another writer holds a lock
_AUTH = {"28000", "28P01"}
_NO_DB = {"3D000"}
_READ_ONLY = {"25006"}


class ServerError(Exception):
  """A failure of the ledger server, sorted: ``kind`` is one of ``retry`` (run the
  transaction again), ``busy``, ``connection``, ``auth``, ``database``, ``readonly``,
  ``lost`` (the connection broke mid-way) or ``other``."""

  def __init__(self, message: str, kind: str):
    super().__init__(message)
    self.kind = kind


class Interrupted(BaseException):  # noqa: N818 - raised by the Ctrl-C handler
  """Ctrl-C inside a blocking call to the server (raised by the SIGINT handler of
  :mod:`~jaxgreen._src.account.preemption`): the connection is closed at once, without
  waiting for a server that may not answer to cancel the statement, and the call
  raises ``KeyboardInterrupt``; the next write reconnects."""


def is_url(path: Any) -> bool:
  """Whether ``path`` names a PostgreSQL ledger server rather than a SQLite file."""
  return isinstance(path, str) and path.strip().lower().startswith(SCHEMES)


def mask(url: str) -> str:
  """``url`` with its password (in the user part or a ``password=`` parameter) masked."""
  parts = urllib.parse.urlsplit(url)
  netloc = parts.netloc
  if "@" in netloc:
    user, host = netloc.rsplit("@", 1)
    if ":" in user:
      user = user.split(":", 1)[0] + ":***"
    netloc = f"{user}@{host}"
  query = "&".join(f"{p.partition('=')[0]}=***" if p.lower().startswith("password=") else p
                   for p in parts.query.split("&")) if parts.query else ""
  return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets(url: str) -> list[str]:
  parts = urllib.parse.urlsplit(url)
  found = [parts.password] if parts.password else []
  found += [v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password" and v]
  found += [urllib.parse.unquote(s) for s in found]
  return [s for s in found if s]


def _psycopg() -> Any:
  try:
    import psycopg
  except ImportError as e:
    raise ImportError("a postgresql:// ledger needs psycopg 3: pip install "
                      "'jaxgreen[postgres]'") from e
  return psycopg


class Connection:
  """One psycopg connection in autocommit mode, with ``sqlite3``'s calling convention:
  ``execute(sql, params)`` with ``?`` placeholders, ``executemany``, ``in_transaction``.
  Every psycopg error leaves it as a :class:`ServerError`."""

  def __init__(self, url: str, *, readonly: bool, timeout: float):
    self.url, self.readonly = url, readonly
    self.abandoned = False  # closed by Ctrl-C mid-statement
    # A statement of a write may wait this long (seconds; None: no limit) for a server
    # that does not answer before its connection is cut (see _watch).
    self.limit: float | None = None
    self._cv = threading.Condition()
    self._until: float | None = None
    self._cut_off = False
    self._watcher: threading.Thread | None = None
    psycopg = _psycopg()
    self._errors = psycopg.Error
    self._idle = psycopg.pq.TransactionStatus.IDLE
    # libpq waits at least 2 s for a connection; longer waits are the ledger's timeout.
    wait = max(2, math.ceil(min(timeout, 60.0)))
    try:
      self.raw = psycopg.connect(url, autocommit=True, connect_timeout=wait)
    except psycopg.Error as e:
      raise self._sorted(e, connecting=True) from None
    except Interrupted:
      raise KeyboardInterrupt from None
    if readonly:
      self.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

  @property
  def dropped(self) -> bool:
    """The connection is closed or broken (server restart, terminated backend)."""
    return bool(self._cut_off or self.raw.closed or self.raw.broken)

  @property
  def in_transaction(self) -> bool:
    return not self.dropped and self.raw.info.transaction_status != self._idle

  def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
    self._arm()
    try:
      return self.raw.execute(_placeholders(sql), tuple(params) or None)
    except self._errors as e:
      raise self._sorted(e) from None
    except Interrupted:
      self._abandon()
    finally:
      self._disarm()

  def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
    self._arm()
    try:
      cur = self.raw.cursor()
      cur.executemany(_placeholders(sql), [tuple(r) for r in rows])
      return cur
    except self._errors as e:
      raise self._sorted(e) from None
    except Interrupted:
      self._abandon()
    finally:
      self._disarm()

  # A server that does not answer at all (a frozen host, a dead link) never sends the
  # statement_timeout error: past ``limit`` a watcher thread shuts the socket down, so
  # the statement fails as a lost connection and the next write reconnects.

  def _arm(self) -> None:
    if self.limit is None:
      return
    with self._cv:
      self._until = time.monotonic() + self.limit
      if self._watcher is None:
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="jaxgreen-ledger-watch")
        self._watcher.start()
      self._cv.notify()

  def _disarm(self) -> None:
    if self._until is not None:
      with self._cv:
        self._until = None

  def _watch(self) -> None:
    with self._cv:
      while not self.dropped:
        if self._until is None:
          self._cv.wait(1.0)
          continue
        left = self._until - time.monotonic()
        if left > 0:
          self._cv.wait(left)
          continue
        self._until, self._cut_off = None, True
        try:
          fd = os.dup(self.raw.pgconn.socket)
        except Exception:
          return
        with socket.socket(fileno=fd) as sock, contextlib.suppress(OSError):
          sock.shutdown(socket.SHUT_RDWR)
        return

  def _abandon(self) -> NoReturn:
    """Ctrl-C mid-statement: drops the connection (an open transaction is rolled back
    by the server) and raises ``KeyboardInterrupt``."""
    self.abandoned = True
    self.close()
    raise KeyboardInterrupt from None

  def close(self) -> None:
    try:
      self.raw.close()
    except Exception:  # closing a connection abandoned mid-statement may complain
      pass


  def _sorted(self, e: Exception, connecting: bool = False) -> ServerError:
    text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
    text = text or type(e).__name__
    for secret in _secrets(self.url):
      text = text.replace(secret, "***")
    return ServerError(text, _kind(getattr(e, "sqlstate", None), text.lower(), connecting,
                                   not connecting and self.dropped))



# Blocking calls to the server: Ctrl-C inside them raises Interrupted (see its docstring).
SERVER_CALLS = frozenset(f.__code__ for f in (Connection.__init__, Connection.execute,
                                              Connection.executemany))


def _kind(code: str | None, msg: str, connecting: bool, dropped: bool) -> str:
  if code in _RETRY:
    return "retry"
  if code in _BUSY:
    return "busy"
  if (code in _AUTH or "password" in msg or "authentication" in msg
      or ("role" in msg and "does not exist" in msg)):
    return "auth"
  if code in _NO_DB or ("database" in msg and "does not exist" in msg):
    return "database"
  if code in _READ_ONLY:
    return "readonly"
  if connecting:
    return "connection"
  if dropped or (code or "").startswith(("08", "57P")):
    return "lost"
  return "other"


def _placeholders(sql: str) -> str:
  """SQLite's ``?`` placeholders as psycopg's ``%s`` (the ledger's SQL has no ``?`` or
  ``%`` in its literals)."""
  return sql.replace("%", "%%").replace("?", "%s")


def fix(kind: str, url: str = "") -> str:
  """What the user does about a :class:`ServerError` of ``kind`` (on the server of
  ``url``)."""
  database = urllib.parse.urlsplit(url).path.lstrip("/") if url else ""
  return {
      "connection": "is the server running and reachable? check the URL (host, port)",
      "auth": "check user and password (or PGPASSWORD / ~/.pgpass)",
      "database": f"create it with createdb {database or 'NAME'}, or fix the URL",
      "busy": "the ledger is busy (another writer holds a lock); retry, or raise "
              "Ledger(timeout=...)",
      "retry": "the ledger is busy (writers kept colliding); retry, or raise "
               "Ledger(timeout=...)",
      "readonly": "the ledger was opened readonly=True, or the server is a read-only "
                  "replica; write to the primary",
      "lost": "the connection to the server was lost (a restart?); nothing of this write "
              "is half-done, it reconnects at the next write",
  }.get(kind, "check the server's log")
