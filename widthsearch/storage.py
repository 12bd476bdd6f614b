"""Optuna storages for studies: SQLite by default, journal files, any SQLAlchemy URL.

One module below ``search``, ``verify`` and ``report``, which all open the same storages: the
storage functions, the study lookups they share, and :func:`quiet_optuna`.

:func:`open_storage` opens a URL the way every command does. A SQLite file (the default,
``widthsearch.db``) is opened in WAL mode, its transactions IMMEDIATE so that several
processes claim queued trials safely; ``journal:PATH`` (or a ``.log`` path) is an Optuna
journal file that several processes on one host share; any other SQLAlchemy URL, PostgreSQL in
particular, is for workers on many machines, with heartbeats so that a killed worker's running
trial is failed and retried. Two promises: a damaged journal (a line cut off or not JSON) is
refused and left byte for byte as it is, never appended to; and ``create=False``, for the
commands that only read, never creates a file or Optuna's tables.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from widthsearch.errors import StorageError

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

DEFAULT_STORAGE = "sqlite:///widthsearch.db"
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30


def storage_name(url: str | None) -> str:
    """``url`` as messages show it: the default filled in, a password hidden."""
    url = url or DEFAULT_STORAGE
    if not _is_journal(url) and "://" not in url:
        url = f"sqlite:///{url}"
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".log", ".journal"))


def _sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///PATH`` URL (None: in memory or not SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("://", 1)[1].removeprefix("/").split("?", 1)[0]
    return path if path and path != ":memory:" else None


def open_storage(
    url: str | None, *, create: bool = True, heartbeat: int | None = None
) -> BaseStorage:
    """An Optuna storage for ``url`` (see the module docstring); checks that it is reachable.

    ``create=False`` is for commands that only read: a SQLite or journal file that does not
    exist, or a database without Optuna's tables, is an error instead of a new empty storage.
    ``heartbeat``: seconds between a running trial's heartbeats on an RDB storage (default
    :data:`HEARTBEAT_SECONDS`); a trial is stale after three missed ones.

    Raises:
        StorageError: unreachable, missing (``create=False``) or damaged (a journal file with a
            truncated or unreadable line, which is left exactly as it is).
    """
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    url = url or DEFAULT_STORAGE
    shown = storage_name(url)
    if _is_journal(url):
        path = url.removeprefix("journal:")
        if not path.strip():
            raise StorageError(
                f"'{url}' names no journal file: give its path, e.g. --storage journal:study.log"
            )
        if os.path.isdir(path):
            raise StorageError(
                f"journal {path} is a folder: give a file in it, e.g. --storage "
                f"journal:{os.path.join(path, 'study.log')}"
            )
        if not os.path.exists(path):
            if not create:
                raise StorageError(f"no journal file at {path}: nothing to read; run search first")
            folder = os.path.dirname(path) or "."
            if not os.path.isdir(folder):
                raise StorageError(f"cannot create journal {path}: no folder {folder}")
        else:
            _check_journal(path)
        try:
            return JournalStorage(JournalFileBackend(path))
        except Exception as exc:  # a line that is JSON but not an Optuna operation
            raise StorageError(
                f"journal {path} is damaged ({_first_line(exc)}); widthsearch left it as it is: "
                "restore it from a copy, or give --storage a new file"
            ) from None
    if "://" not in url:
        url = f"sqlite:///{url}"
    sqlite = url.startswith("sqlite")
    db_file = _sqlite_path(url)
    if db_file is not None and not os.path.isfile(db_file):
        if not create:
            raise StorageError(f"no storage at {shown}: nothing to read; run search first")
        folder = os.path.dirname(db_file) or "."
        if not os.path.isdir(folder):
            raise StorageError(f"cannot create storage {shown}: no folder {folder}")
    try:
        if not create:
            _check_tables(url, shown)
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else {},
                heartbeat_interval=heartbeat or HEARTBEAT_SECONDS,
                grace_period=3 * heartbeat if heartbeat else GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=3, inherit_intermediate_values=True
                ),
            )
        if sqlite:
            _fast_sqlite(storage.engine, db_file is None or os.access(db_file, os.W_OK))
        return storage
    except (optuna.exceptions.OptunaError, StorageError):
        raise
    except Exception as exc:  # SQLAlchemy/driver errors: unreachable host, bad URL, no file
        raise StorageError(f"cannot open storage '{shown}': {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_journal(path: str) -> None:
    """Refuse a journal file with a line that is cut off or not JSON, without changing it.

    Read under the journal's own lock, so a worker's append is never mistaken for damage.
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    if not lock.acquire():  # pragma: no cover - acquire blocks until it has the lock
        raise StorageError(f"cannot lock journal {path}")
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                problem = None
                if not line.endswith(b"\n"):
                    problem = "its last line is cut off"
                else:
                    try:
                        if not isinstance(json.loads(line), dict):
                            problem = f"line {number} is not an Optuna operation"
                    except ValueError:
                        problem = f"line {number} is not JSON"
                if problem:
                    raise StorageError(
                        f"journal {path} is damaged ({problem}: truncated or overwritten); "
                        "widthsearch left it as it is: restore it from a copy, or give "
                        "--storage a new file"
                    )
    finally:
        lock.release()


def _check_tables(url: str, shown: str) -> None:
    """Refuse a database without Optuna's tables (reading must not create them)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        if not sqlalchemy.inspect(engine).has_table("studies"):
            raise StorageError(f"no studies in {shown}: it holds no Optuna tables")
    finally:
        engine.dispose()


def _fast_sqlite(engine: Any, writable: bool = True) -> None:
    """WAL journal and NORMAL sync: a commit costs a write, not an fsync (still crash-safe).

    And every transaction begins IMMEDIATE (takes the write lock at once) where the file can be
    written. Optuna claims a waiting trial by reading its state and updating it to RUNNING only
    if it was WAITING; under pysqlite's deferred transactions the read runs before any lock, so
    two processes could both read WAITING and both claim the run (4 processes claiming 300
    waiting trials made 345 claims). With the write lock taken first, the read and the update
    are one transaction that only one process is in: what PostgreSQL's ``SELECT ... FOR
    UPDATE`` gives. This is SQLAlchemy's recipe for pysqlite transactions (its own BEGIN,
    pysqlite's switched off)."""
    from sqlalchemy import event

    def on_connect(conn: Any, _record: Any) -> None:
        conn.isolation_level = None  # pysqlite emits no BEGIN of its own
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writable else "BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections made while Optuna set the tables up lack these settings


VERIFICATION_MARK = "/verify-"
"""What the name of a verification study holds (``STUDY/verify-KEY``,
:func:`widthsearch.verify.queue.verification_name`): widthsearch's own bookkeeping of the
training runs, not a study a user made or names."""


def study_names(storage: BaseStorage) -> list[str]:
    """Names of the studies in ``storage``."""
    return [s.study_name for s in storage.get_all_studies()]


def is_verification(name: str) -> bool:
    """Whether ``name`` is a verification study's (see :data:`VERIFICATION_MARK`)."""
    return VERIFICATION_MARK in name


def missing_study(name: str, storage: BaseStorage, url: str | None) -> StorageError:
    """The error for a study ``storage`` lacks: it names the storage and the studies a user
    made there (searches); verification studies are counted, not listed."""
    names = study_names(storage)
    users = [n for n in names if not is_verification(n)]
    internal = len(names) - len(users)
    held = f"it holds {', '.join(users)}" if users else "it holds no search studies"
    if internal:
        held += f", and {internal} verification stud{'y' if internal == 1 else 'ies'} of verify"
    return StorageError(f"no study '{name}' in {storage_name(url)} ({held})")


def find_study(storage: BaseStorage, name: str) -> optuna.Study | None:
    """The study ``name`` in ``storage``, or None."""
    import optuna

    if name not in study_names(storage):
        return None
    return optuna.load_study(study_name=name, storage=storage)


class _QuietFailures(logging.Filter):
    """Drop Optuna's "Trial N failed" warnings (with a traceback): the error itself reaches
    the caller, which the CLI prints as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Trial ") and " failed " in message)


def quiet_failures() -> None:
    """Optuna's INFO lines off for the process, and its "Trial N failed" warnings dropped
    (a search prints its own lines, and a failure as one)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietFailures) for f in log.filters):
        log.addFilter(_QuietFailures())


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines and its warnings off while inside (verification prints its own)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


__all__ = [
    "DEFAULT_STORAGE",
    "StorageError",
    "VERIFICATION_MARK",
    "find_study",
    "is_verification",
    "missing_study",
    "open_storage",
    "quiet_failures",
    "quiet_optuna",
    "storage_name",
    "study_names",
]
