"""attnlab.results: a real database written by the CLI (a two-trial bench sweep), read back
read-only, as a copy with immutable=1, and as pandas DataFrames."""
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

import attnlab
from attnlab import _library

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(os.path.dirname(os.path.dirname(_library.load())), "bin", "attnlab")

SWEEP = """
[sweep]
name = "python-results"
kind = "bench"
warmup = 0
repeats = 2
[grid]
backend = ["dense"]
seq_len = [16, 33]
heads = 2
head_dim = 8
pass = ["fwd"]
"""

try:
    import pandas
except ImportError:
    pandas = None


@unittest.skipUnless(os.access(CLI, os.X_OK), f"no CLI at {CLI} (the op library is not in a build tree)")
class Results(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="attnlab_results_")
        cls.db = os.path.join(cls.tmp, "r.sqlite")
        sweep = os.path.join(cls.tmp, "sweep.toml")
        with open(sweep, "w") as f:
            f.write(SWEEP)
        subprocess.run([CLI, "run", sweep, "--db", cls.db], check=True, stdout=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def test_views_and_rows(self):
        with attnlab.results.open(self.db) as db:
            self.assertTrue({"trial_summary", "final_metrics", "curves", "distill_methods"} <= set(db.views()))
            rows = db.rows("select backend, status, median_ms from trial_summary where cast(seq_len as integer) = ?", (33,))
            self.assertEqual(len(rows), 1)
            self.assertTrue(all(r["status"] == "done" and r["median_ms"] > 0 for r in rows))
            with self.assertRaises(sqlite3.OperationalError):  # read-only
                db.connection.execute("delete from trials")

    def test_copy_immutable(self):
        copy = os.path.join(self.tmp, "copy.sqlite")
        shutil.copy(self.db, copy)  # the main file only: no -wal, no -shm
        with attnlab.results.open(copy, immutable=True) as db:
            self.assertEqual(db.rows("select count(*) as n from trials")[0]["n"], 2)

    @unittest.skipIf(pandas is None, "pandas is not installed (python3-pandas)")
    def test_frame(self):
        with attnlab.results.open(self.db) as db:
            df = db.frame("trial_summary")
            self.assertEqual(len(df), 2)
            pivot = df.pivot_table(index="seq_len", columns="pass", values="median_ms", aggfunc="median")
            self.assertEqual(pivot.shape, (2, 1))
            self.assertEqual(len(db.frame("select * from curves where metric = ?", ("time/repeat_ms",))), 4)

    def test_missing_file(self):
        with self.assertRaisesRegex(FileNotFoundError, "no database"):
            attnlab.results.open(os.path.join(self.tmp, "absent.sqlite"))


if __name__ == "__main__":
    unittest.main()
