"""How a ledger reaches its database: opening, waiting, retrying, the pending file.

:class:`LedgerConnection` is the part of :class:`~jaxgreen._src.account.ledger.Ledger` that
knows connections, not tables: it opens a SQLite file (WAL journal; read-only, or
immutable in a read-only folder) or a PostgreSQL server (:mod:`~jaxgreen._src.account._postgres`),
runs transactions and reads, waits for another writer's lock in slices of
:data:`_BUSY_SLICE_S` (so Ctrl-C is handled between slices), retries busy files,
deadlocks and serialization failures with jittered backoff, replaces a dropped server
connection (at most once per :data:`_RECONNECT_PAUSE_S` from inside a step), and saves
the rows a process could not write to a pending file that the next writing open writes.
Every failure leaves as one :class:`LedgerError` naming the cause and the fix.

The ledger's SQL (its schema, its version, every query and write) is in
:mod:`jaxgreen._src.account.ledger` and :mod:`jaxgreen._src.account.schema`; this module calls it
through five methods the ledger provides (``_read_version``, ``_schema_version``,
``_check_version``, ``_init_schema``, ``_replay``).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from jaxgreen._src.account import _postgres

# After a failed reconnection to a ledger server, writes from inside steps wait this
# long before trying again (close() and exit always try).
_RECONNECT_PAUSE_S = 30.0
# After Ctrl-C closed the server connection, only writes that may wait this long (libpq's
# shortest connect timeout) reconnect: a trial's end right after Ctrl-C never blocks.
_RECONNECT_MIN_S = 2.0
# SQLite waits for another writer's lock in slices of at most this long, retried from
# Python until the write's deadline: a signal (Ctrl-C) is handled between slices.
_BUSY_SLICE_S = 0.1


class LedgerError(ValueError):
  """A file that is not a jaxgreen ledger, one written by a newer jaxgreen, or a ledger
  that cannot be read or written (full disk, damaged file, read-only folder, locked;
  a ledger server down, refusing the login, or lacking the database)."""

  __module__ = "jaxgreen"  # its public home, as tracebacks and reprs show it


def _clear_error(e: sqlite3.Error, path: str, action: str) -> LedgerError:
  """One clear error for a SQLite failure: what happened to which file, and the fix."""
  msg = str(e).lower()
  if "full" in msg:
    fix = "free disk space or move the ledger to a larger disk; nothing committed is lost"
  elif "locked" in msg or "busy" in msg:
    fix = "another writer holds its write lock; retry, or raise Ledger(timeout=...)"
  elif "malformed" in msg or "not a database" in msg or "corrupt" in msg:
    fix = ("the file is damaged: recover it with `sqlite3 LEDGER .recover`, or restore a "
           "copy, and write new trials to a new ledger")
  elif "readonly" in msg or "read-only" in msg or "unable to open" in msg:
    fix = "the file or its folder is read-only; copy the ledger to a writable folder"
  elif "i/o" in msg:
    fix = "the disk reported an I/O error; check the disk, or write to another ledger"
  else:
    fix = "check the file"
  return LedgerError(f"could not {action} the ledger {path!r} ({e}); {fix}")


def _server_error(e: _postgres.ServerError, path: str, action: str) -> LedgerError:
  """One clear error for a ledger server's failure: what, which URL (masked), the fix."""
  fix = _postgres.fix(e.kind, path)
  return LedgerError(f"could not {action} the ledger {path!r} ({e}); {fix}")


def _sqlite_busy(e: Exception) -> bool:
  msg = str(e).lower()
  return isinstance(e, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def _server_retry(e: Exception) -> bool:
  return isinstance(e, _postgres.ServerError) and e.kind == "retry"


def _retry(fn: Callable[[], T], timeout: float,
           retryable: Callable[[Exception], bool] = _sqlite_busy) -> T:
  """Runs ``fn``, retrying with jittered backoff while ``retryable(error)``.

  SQLite's busy handler already waits ``timeout`` seconds for most locks, but some
  (switching to WAL, a reader upgrading to a writer) fail at once with SQLITE_BUSY;
  PostgreSQL aborts one of two deadlocked (or serialization-conflicting) transactions.
  """
  deadline = time.monotonic() + timeout
  delay = 0.005
  while True:
    try:
      return fn()
    except Exception as e:
      if not retryable(e) or time.monotonic() > deadline:
        raise
      # Short sleeps: a signal delivered to another thread (jax's) does not wake this
      # one, so Ctrl-C is handled only when the sleep ends.
      time.sleep(delay * random.uniform(0.5, 1.5))
      delay = min(2 * delay, 0.05)


# The first field of every record of a pending file (:meth:`LedgerConnection.save_pending`).
PENDING_FORMAT = "jaxgreen-pending/1"

T = TypeVar("T")


def _read_pending(text: str) -> list[dict[str, Any]]:
  """The records of a pending file (a line torn by a crash mid-write is skipped)."""
  records = []
  for line in text.splitlines():
    try:
      r = json.loads(line)
    except ValueError:
      continue
    if isinstance(r, dict) and r.get("format") == PENDING_FORMAT:
      records.append(r)
  return records


class LedgerConnection:
  """A ledger's connection to its database (see the module docstring); the base of
  :class:`~jaxgreen._src.account.ledger.Ledger`.

  Attributes:
    path: the file, ``":memory:"``, or the server's URL with its password masked.
    dialect: ``"sqlite"`` or ``"postgresql"``.
    timeout: seconds to wait for other writers before giving up.
    readonly: whether the ledger is only read.
    conn: a ``sqlite3.Connection``, or a ``_postgres.Connection`` (same calling
      convention).
  """

  def __init__(self, path: str | os.PathLike, *, timeout: float, readonly: bool):
    self.timeout = float(timeout)
    self.readonly = readonly
    self._lock = threading.RLock()
    # A sqlite3.Connection, or a _postgres.Connection (same calling convention).
    self.conn: Any = None
    self._reconnect_after = 0.0
    self._closed = False
    self._slice = min(self.timeout, _BUSY_SLICE_S)
    self._busy_ms = round(1000 * self._slice)
    if _postgres.is_url(path):
      self.dialect = "postgresql"
      self._url = str(path).strip()
      self.path = _postgres.mask(self._url)
      return
    self.dialect = "sqlite"
    if isinstance(path, bool) or not isinstance(path, str | os.PathLike):
      raise TypeError(f"Ledger(path={path!r}) must be a file path such as 'green.sqlite' "
                      f"(or ':memory:' for a ledger that lives only in this process)")
    self.path = os.fspath(path)
    if not isinstance(self.path, str) or not self.path.strip():
      raise ValueError(f"Ledger(path={path!r}) is empty: SQLite would write a private "
                       f"temporary database that vanishes; pass a file path such as "
                       f"'green.sqlite' (or ':memory:')")

  def _open(self) -> None:
    """Opens the database: a server, a file read-only, or a file to write."""
    if self.dialect != "sqlite":
      self._open_server()
    elif self.readonly:
      self._open_readonly()
    else:
      self._open_writable()


  def _open_readonly(self) -> None:
    if not Path(self.path).is_file():
      raise FileNotFoundError(f"no ledger at {self.path!r}; check the path "
                              f"(ledgers are written by jaxgreen.Experiment)")
    uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
    self.conn = sqlite3.connect(uri, uri=True, timeout=self._slice, isolation_level=None,
                                check_same_thread=False)
    with self._not_sqlite():
      try:
        version = self._read_version()
      except sqlite3.OperationalError as e:
        if "unable to open" not in str(e):
          self.conn.close()
          raise _clear_error(e, self.path, "read") from e
        version = self._open_immutable(uri, e)
      self._check_version(version, writable=False)
      self.version = version

  def _open_writable(self) -> None:
    folder = Path(self.path).parent
    on_disk = self.path != ":memory:"
    if on_disk and not folder.is_dir():
      raise FileNotFoundError(f"Ledger(path={self.path!r}): the folder {str(folder)!r} does "
                              f"not exist; create it or choose another path")
    self.conn = sqlite3.connect(self.path, timeout=self._slice, isolation_level=None,
                                check_same_thread=False)
    with self._not_sqlite():
      if on_disk:
        _retry(lambda: self.conn.execute("PRAGMA journal_mode=WAL").fetchone(), self.timeout)
        # In WAL mode NORMAL never corrupts the file and survives a killed process;
        # only an OS crash or power loss may drop the last commits.
        self.conn.execute("PRAGMA synchronous=NORMAL")
      self._init_schema()
      if on_disk:
        self._refuse_damaged()
        self._replay_pending()

  def _refuse_damaged(self) -> None:
    """Never writes new trials into a damaged file (reads of it would fail later)."""
    check = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    if check != "ok":
      self.conn.close()
      check = " ".join(str(check).split())
      raise LedgerError(f"the ledger {self.path!r} is damaged ({check}); recover it "
                        f"with `sqlite3 LEDGER .recover`, or restore a copy, and write "
                        f"new trials to a new ledger")

  def _open_immutable(self, uri: str, error: sqlite3.Error) -> int:
    """Reads a ledger whose folder is read-only (SQLite cannot create the ``-shm``
    file a WAL reader needs): as an immutable file, when no ``-wal`` holds commits."""
    self.conn.close()
    wal = Path(self.path + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
      raise LedgerError(f"cannot read the ledger {self.path!r}: its folder is read-only "
                        f"and its last commits are still in {str(wal)!r}; copy both files "
                        f"to a writable folder and read the copy") from error
    self.conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=self._slice,
                                isolation_level=None, check_same_thread=False)
    return self._read_version()

  def _open_server(self) -> None:
    """Connects to the ledger server; creates or upgrades the schema (writable)."""
    self.conn = self._connect("open")
    try:
      if self.readonly:
        self.version = self._server(self._schema_version, "read", self.timeout)
        self._check_version(self.version, writable=False)
      else:
        self._init_schema()
        self._replay_pending()
    except BaseException:
      self.conn.close()
      raise

  def _connect(self, action: str) -> Any:
    try:
      return _postgres.Connection(self._url, readonly=self.readonly, timeout=self.timeout)
    except _postgres.ServerError as e:
      raise _server_error(e, self.path, action) from None

  def _server(self, fn: Callable[[], T], action: str, wait: float) -> T:
    """Runs ``fn`` (a server transaction or read) with retries of deadlocks and
    serialization failures; any server failure leaves as one :class:`LedgerError`."""
    try:
      return _retry(fn, wait, _server_retry)
    except _postgres.ServerError as e:
      raise _server_error(e, self.path, action) from None

  def _live(self, wait: float | None = None) -> Any:
    """The server connection; a dropped one (server restart) is replaced first.

    A write with a bounded wait (a flush inside a step) tries to reconnect at most
    once per :data:`_RECONNECT_PAUSE_S`, so an unreachable server never stalls steps.
    """
    if not self.conn.dropped:
      return self.conn
    now = time.monotonic()
    if wait is not None and wait < _RECONNECT_MIN_S and self.conn.abandoned:
      raise _postgres.ServerError("the connection was closed by Ctrl-C; a short write does "
                                  "not wait to reconnect", "connection")
    if wait is not None and wait < self.timeout and now < self._reconnect_after:
      raise _postgres.ServerError("the server could not be reached a moment ago",
                                  "connection")
    self.conn.close()
    try:
      self.conn = _postgres.Connection(self._url, readonly=self.readonly,
                                       timeout=self.timeout if wait is None else wait)
    except _postgres.ServerError:
      self._reconnect_after = now + _RECONNECT_PAUSE_S
      raise
    return self.conn

  @contextlib.contextmanager
  def _not_sqlite(self) -> Iterator[None]:
    try:
      yield
    except sqlite3.DatabaseError as e:
      self.conn.close()
      if "not a database" not in str(e):
        raise _clear_error(e, self.path, "open") from e
      raise LedgerError(f"{self.path!r} is not a SQLite ledger ({e}); pass the .sqlite "
                        f"file written by jaxgreen.Experiment") from None


  # -- what the ledger's schema side provides ------------------------------------

  def _read_version(self) -> int:
    """The schema version of an open SQLite file."""
    raise NotImplementedError

  def _schema_version(self) -> int:
    """The schema version of the open database (a server's ``meta`` row)."""
    raise NotImplementedError

  def _check_version(self, version: int, writable: bool) -> None:
    """Refuses a schema this jaxgreen cannot read (or a file that is no ledger)."""
    raise NotImplementedError

  def _init_schema(self) -> None:
    """Creates or upgrades the schema of a database opened for writing."""
    raise NotImplementedError

  def _replay(self, records: Sequence[Mapping[str, Any]]) -> None:
    """Writes records read back from the pending file, once."""
    raise NotImplementedError

  @contextlib.contextmanager
  def transaction(self, wait: float | None = None):
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, so two
    writers never deadlock upgrading a read lock; rolls back on error. On a server,
    ``BEGIN`` with lock and statement waits bounded by ``wait`` seconds (default: the
    ledger's timeout)."""
    c = self.conn
    if c.in_transaction:  # left open by an interruption elsewhere: never keep the lock
      c.execute("ROLLBACK")
    try:
      # BEGIN inside the try: a Ctrl-C landing just after it still rolls back, so the
      # write lock is never left held (it would block every other writer of the file).
      if self.dialect == "sqlite":
        c.execute("BEGIN IMMEDIATE")
      else:
        ms = max(1, round(1000 * (self.timeout if wait is None else wait)))
        c.limit = ms / 1000 + 3.0  # a server that never answers: cut off (see _postgres)
        c.execute("BEGIN")
        c.execute(f"SET LOCAL lock_timeout = {ms}")
        c.execute(f"SET LOCAL statement_timeout = {ms + 1000}")
      yield c
      c.execute("COMMIT")
    except BaseException:
      if c.in_transaction:
        with contextlib.suppress(sqlite3.Error, _postgres.ServerError):
          c.execute("ROLLBACK")
      raise
    finally:
      if self.dialect != "sqlite":
        c.limit = None

  def write(self, fn: Callable[[sqlite3.Connection], Any],
            timeout: float | None = None) -> Any:
    """Runs ``fn(conn)`` in one write transaction, retrying while the file is busy.

    Args:
      fn: writes through the connection it is given.
      timeout: seconds to wait for other writers (default: the ledger's ``timeout``).

    Raises:
      LedgerError: the write failed (still locked past ``timeout``, disk full, damaged
        or read-only file); the message names the cause and the fix. The transaction
        was rolled back: nothing of it was written.
    """
    self._check_open()
    if self.readonly:
      raise LedgerError(f"ledger {self.path!r} was opened readonly=True")
    wait = self.timeout if timeout is None else float(timeout)
    server = self.dialect != "sqlite"
    deadline = time.monotonic() + wait

    def attempt():
      # One connection serves every thread (check_same_thread=False): one
      # transaction at a time. Waiting for another thread is bounded like waiting
      # for another process.
      if not self._lock.acquire(timeout=max(wait, 0.001)):
        if server:
          raise _postgres.ServerError("locked by another thread of this process", "busy")
        raise sqlite3.OperationalError("database is locked (by another thread of this "
                                       "process)")
      try:
        if server:  # a dropped connection is replaced; a failed write raised already
          self._live(wait)
          with self.transaction(wait) as c:
            return fn(c)
        self._busy(deadline - time.monotonic())
        with self.transaction() as c:
          return fn(c)
      finally:
        self._lock.release()

    if server:
      return self._server(attempt, "write", wait)
    try:
      return _retry(attempt, wait)
    except sqlite3.Error as e:
      raise _clear_error(e, self.path, "write") from e

  def _busy(self, left: float) -> None:
    """SQLite waits at most one slice (and never past the write's deadline) for a lock;
    :func:`_retry` tries again until the deadline."""
    ms = max(1, min(round(1000 * self._slice), round(1000 * left)))
    if ms != self._busy_ms:
      self.conn.execute(f"PRAGMA busy_timeout = {ms}")
      self._busy_ms = ms

  def _check_open(self) -> None:
    if self._closed:
      how = ("jaxgreen.Ledger(URL, readonly=True)" if self.dialect != "sqlite"
             else "jaxgreen.Ledger(path, readonly=True)")
      raise LedgerError(f"the ledger {self.path!r} was closed (by Ledger.close() or "
                        f"Experiment.close()); read it again through a new one: {how}")

  def close(self) -> None:
    self._closed = True
    with contextlib.suppress(sqlite3.Error, _postgres.ServerError):
      self.conn.close()

  # -- rows that could not be written ---------------------------------------------

  def pending_path(self) -> str | None:
    """Where rows that could not be written are saved (:meth:`save_pending`): the file
    ``LEDGER.pending`` beside a SQLite ledger; for a ledger server a local file,
    ``$JAXGREEN_PENDING_DIR`` (default ``~/.cache/jaxgreen/pending``) ``/<hash of the
    URL without its password>.pending``. None for a ledger kept in memory."""
    if self.dialect == "sqlite":
      return None if self.path == ":memory:" else self.path + ".pending"
    folder = os.environ.get("JAXGREEN_PENDING_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jaxgreen",
        "pending")
    return os.path.join(folder, hashlib.sha256(self.path.encode()).hexdigest()[:16]
                        + ".pending")

  def save_pending(self, records: Sequence[Mapping[str, Any]]) -> str | None:
    """Appends ``records`` (:func:`pending_record`) to :meth:`pending_path`, synced to
    disk; the next writable open of this ledger writes them, once (every row keeps its
    id). Returns the file, or None when there is none (a ledger in memory)."""
    path = self.pending_path()
    if path is None or not records:
      return None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = "".join(json.dumps(r, default=str) + "\n" for r in records)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
      os.write(fd, text.encode())
      os.fsync(fd)
    finally:
      os.close(fd)
    return path

  def _replay_pending(self) -> None:
    """Writes the rows an earlier process saved with :meth:`save_pending`, then removes
    the file. The file is first renamed, so rows saved meanwhile wait for the next open;
    replaying one twice (two processes opening at once) adds nothing twice."""
    path = self.pending_path()
    if path is None:
      return
    with contextlib.suppress(OSError):
      os.rename(path, f"{path}.replaying-{uuid.uuid4().hex[:8]}")
    for taken in sorted(glob.glob(glob.escape(path) + ".replaying-*")):
      try:
        with open(taken, encoding="utf-8") as f:
          records = _read_pending(f.read())
        if records:
          self._replay(records)
      except (OSError, LedgerError):  # kept for the next open
        continue
      with contextlib.suppress(OSError):
        os.unlink(taken)

  # -- reading -----------------------------------------------------------------

  def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of a query, each as a dict of column -> value."""
    self._check_open()
    if self.dialect != "sqlite":
      return self._server(lambda: self._server_rows(sql, params), "read", self.timeout)
    try:
      cur = _retry(lambda: self.conn.execute(sql, params), self.timeout)
      names = [d[0] for d in cur.description]
      return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except sqlite3.DatabaseError as e:
      raise _clear_error(e, self.path, "read") from e

  def _server_rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    with self._lock:
      cur = (self.conn if self.conn.in_transaction else self._live()).execute(sql, params)
      if cur.description is None:
        return []
      names = [d.name for d in cur.description]
      return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

  @contextlib.contextmanager
  def _snapshot(self) -> Iterator[None]:
    """On a server, the reads inside see one snapshot (writers go on meanwhile)."""
    if self.dialect == "sqlite":
      yield
      return
    with self._lock:
      self._server(lambda: self._live().execute(
          "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"), "read", self.timeout)
      try:
        yield
      finally:
        if self.conn.in_transaction:
          with contextlib.suppress(_postgres.ServerError):
            self.conn.execute("COMMIT")
