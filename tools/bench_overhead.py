#!/usr/bin/env python3
"""Per-trial engine overhead and CLI start-up time, for docs/BENCHMARKS.md.

  python3 tools/bench_overhead.py [--attnlab build/bin/attnlab] [--repeats 3] [--jobs 1 2]
                                  [--sweep experiments/overhead.toml] [--startup-runs 20]

For each --jobs value, --repeats times: a fresh database, then
`attnlab run SWEEP --jobs J --no-progress --no-ceiling`, timed from outside. The trials' own
time is the sum of their metric trial/wall_s (the trial kind's run inside its process, from
just before the backend is built to just after its last timed call), so with one worker

    engine overhead per trial = (wall time - sum of trial time) / trials

and with --jobs J workers, where J trials run at once and their times add up to more than the
wall time, in worker time:

    engine overhead per trial = (J x wall time - sum of trial time) / trials

That holds everything else: starting the process (exec + LibTorch load, or a fork), loading the
sweep and plugins in the child, claiming, writing and reading the job and result files, and
recording. Then the start-up of `attnlab --help`, `query`, `status` and `trials` on that
database: min / median / max over --startup-runs runs. Environment variables pass through
(ATTNLAB_FORK_SERVER=0 measures the exec path).
"""
import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time


def timed(command, env=None):
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    seconds = time.perf_counter() - start
    return seconds, done


def sweep_run(attnlab, sweep, jobs, folder):
    db = os.path.join(folder, f"overhead-j{jobs}.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    seconds, done = timed([attnlab, "run", sweep, "--jobs", str(jobs), "--no-progress", "--no-ceiling",
                           "--db", db, "--results-dir", folder])
    if done.returncode != 0:
        sys.exit(f"attnlab run failed:\n{done.stderr.decode()[-3000:]}")
    with sqlite3.connect(db) as con:
        trials, compute = con.execute(
            "SELECT count(*), sum(value) FROM metrics WHERE name = 'trial/wall_s'").fetchone()
        spawn = con.execute("SELECT group_concat(DISTINCT value) FROM trial_info WHERE key = 'engine.spawn'").fetchone()[0]
    return db, seconds, trials, compute, spawn or "exec (no engine.spawn recorded)"


def startup(attnlab, db, runs):
    commands = {
        "--help": [attnlab, "--help"],
        'query "select 1"': [attnlab, "query", "select 1", "--db", db],
        "status --sweep overhead": [attnlab, "status", "--sweep", "overhead", "--db", db],
        "trials": [attnlab, "trials", "--db", db],
    }
    for name, command in commands.items():
        times = [timed(command)[0] * 1000 for _ in range(runs)]
        print(f"  attnlab {name:26s} min {min(times):6.1f} ms, median {statistics.median(times):6.1f} ms, "
              f"max {max(times):6.1f} ms ({runs} runs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attnlab", default="build/bin/attnlab")
    parser.add_argument("--sweep", default="experiments/overhead.toml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--startup-runs", type=int, default=20)
    args = parser.parse_args()
    attnlab = os.path.abspath(args.attnlab)
    with tempfile.TemporaryDirectory(prefix="attnlab-overhead-") as folder:
        db = None
        for jobs in args.jobs:
            for repeat in range(args.repeats):
                db, wall, trials, compute, spawn = sweep_run(attnlab, args.sweep, jobs, folder)
                print(f"--jobs {jobs} run {repeat + 1}: {trials} trials in {wall:6.1f} s, trials' own time "
                      f"{compute:5.2f} s, overhead {(jobs * wall - compute) / trials * 1000:6.1f} ms/trial "
                      f"(spawn: {spawn})", flush=True)
        startup(attnlab, db, args.startup_runs)


if __name__ == "__main__":
    main()
