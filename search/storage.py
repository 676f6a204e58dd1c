"""Where a study lives: an Optuna storage from the ``--storage`` text.

Three kinds, all safe for several workers (threads of one process, or processes on one machine):

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``: the default (one file under
  ``results/<study>/``). Writers take turns on a file lock; the busy timeout is raised so that parallel
  workers wait instead of failing with ``database is locked``.
* ``journal:PATH`` (also written ``journal:///absolute/path.log``): Optuna's append-only
  ``JournalStorage`` with a file backend. Appends are atomic under a lock file, so it also works where
  SQLite's locking does not (many processes, NFS with ``journal:`` and the open-lock).
* any other SQLAlchemy URL (``postgresql+psycopg2://user:pw@host/db``, ``mysql+pymysql://...``): a
  server database for workers on several machines (install the driver yourself).
"""
from __future__ import annotations

import time
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import get_lock_file

JOURNAL_PREFIX = "journal:"
SQLITE_PREFIX = "sqlite:///"
# seconds a SQLite writer waits for the lock before "database is locked" (sqlite3's default is 5 s,
# too short when several workers finish trials at the same moment on a busy machine)
SQLITE_BUSY_TIMEOUT_S = 60


def journal_path(url: str) -> Path | None:
    """The log file of a ``journal:`` URL (``journal:///abs/x.log`` -> ``/abs/x.log``), else None."""
    if not url.startswith(JOURNAL_PREFIX):
        return None
    return Path(url[len(JOURNAL_PREFIX):].removeprefix("//"))


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for ``sqlite://`` in memory and other URLs)."""
    if not url.startswith(SQLITE_PREFIX) or url == SQLITE_PREFIX:
        return None
    return Path(url[len(SQLITE_PREFIX):].split("?", 1)[0])


def local_file(url: str) -> Path | None:
    """The file holding the study for the file-based storages (journal, SQLite); None for servers."""
    return journal_path(url) or sqlite_path(url)


def make_storage(url: str) -> BaseStorage:
    """The storage for ``url``; creates the folder of a file-based one. Raises ValueError for a URL
    that SQLAlchemy does not understand (the caller turns it into one sentence)."""
    path = local_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    journal = journal_path(url)
    if journal is not None:
        if not journal.name:
            raise ValueError(f"{url!r} names no file: write e.g. journal:results/study.log")
        lock = JournalFileSymlinkLock(str(journal))
        repair_journal(journal, lock)
        return JournalStorage(JournalFileBackend(str(journal), lock_obj=lock))
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if url.startswith("sqlite") else {}
    for attempt in range(4):
        try:
            return optuna.storages.get_storage(RDBStorage(url, engine_kwargs=engine_kwargs))
        except ImportError as e:  # a server URL whose driver is not installed
            raise ValueError(f"{url.split(':', 1)[0]} needs a database driver that is not installed ({e})") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
            # workers started together on a new database race to create its tables (the loser's
            # "UNIQUE constraint failed: alembic_version"): a second look finds them made
            error = e
            time.sleep(0.2 * (attempt + 1))
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's ArgumentError, ... by case
            error = e
            break
    raise ValueError(f"cannot open storage {url!r} ({type(error).__name__}: {str(error).splitlines()[0]})")


def repair_journal(path: Path, lock: JournalFileSymlinkLock) -> bool:
    """Cut a half-written last line (a worker killed inside its append) from a journal file; True if cut.

    Optuna would read on, but the next append would glue a new record to the half line and every later
    read of the study would fail. Writers append whole lines under the lock, so under the lock only a
    killed writer can have left a line without its newline.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with get_lock_file(lock), open(path, "rb+") as f:
        end = f.seek(0, 2)
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return False
        cut = end
        while cut > 0:  # back to the last newline, 64 KiB at a time
            start = max(0, cut - (1 << 16))
            f.seek(start)
            newline = f.read(cut - start).rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            cut = start
        f.truncate(cut)
    return True


def dashboard_command(url: str) -> str:
    """The ``optuna-dashboard`` command line for a storage (it takes a journal file by its path)."""
    journal = journal_path(url)
    return f"optuna-dashboard {journal if journal is not None else url}"
