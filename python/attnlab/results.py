"""Read-only access to an attnlab results database (docs/RESULTS.md: tables and views).

  db = attnlab.results.open("results/attnlab.sqlite")   # never writes, never locks writers
  db.views()                       trial_summary, distill_summary, distill_methods, final_metrics, curves
  db.rows("select ... where x = ?", (1,))   -> list of dicts
  db.frame("distill_methods")      -> pandas DataFrame of a view or table (or of a SELECT)

The file is in WAL mode: a live database is opened read-only (mode=ro), which still sees the
writer's latest commits. A copy (a file from another machine, a read-only disk) may lack its
-wal / -shm companions or a writable folder: open it with immutable=True (SQLite then reads the
main file as is, without any locking).
"""
import os
import sqlite3
from urllib.parse import quote


class Results:
    def __init__(self, path, immutable=False):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"attnlab.results: no database at {path}")
        uri = f"file:{quote(os.path.abspath(path))}?mode=ro" + ("&immutable=1" if immutable else "")
        self.path = path
        self.connection = sqlite3.connect(uri, uri=True)
        self.connection.row_factory = sqlite3.Row

    def _names(self, kind):
        cur = self.connection.execute("select name from sqlite_master where type = ? order by name", (kind,))
        return [r[0] for r in cur]

    def views(self):
        return self._names("view")

    def tables(self):
        return self._names("table")

    def rows(self, sql, params=()):
        """The rows of a query as dicts."""
        return [dict(r) for r in self.connection.execute(sql, params)]

    def frame(self, name_or_sql, params=()):
        """A pandas DataFrame of a view or table (by name) or of a SELECT statement."""
        try:
            import pandas
        except ImportError:
            raise ImportError("attnlab.results.frame needs pandas (Debian: python3-pandas)") from None
        sql = name_or_sql
        if name_or_sql in self.views() or name_or_sql in self.tables():
            sql = f'select * from "{name_or_sql}"'
        return pandas.read_sql_query(sql, self.connection, params=params)

    def close(self):
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open(path, immutable=False):  # noqa: A001 (the module's one entry point)
    """Opens `path` read-only; immutable=True for copies (see the module docstring)."""
    return Results(path, immutable)
