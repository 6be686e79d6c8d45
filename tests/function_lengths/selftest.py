#!/usr/bin/env python3
"""Self-test of tools/function_lengths.py on fixture.cpp, so the checker cannot pass silently:
the one function over the limit fails it by name, line and length; the one at the limit, the
braces in comments, literals and initializers, and the lambdas do not.

    python3 tests/function_lengths/selftest.py
"""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
checker = os.path.join(here, "..", "..", "tools", "function_lengths.py")
fixture = os.path.join(here, "fixture.cpp")


def run(*args):
    return subprocess.run([sys.executable, checker, *args, fixture], capture_output=True, text=True)


failures = []
check = run()
if check.returncode != 1:
    failures.append(f"exit status {check.returncode} on a fixture with a long function, expected 1")
if check.stdout != f"{fixture}:108: too_long: 81 lines (limit 80)\n":
    failures.append(f"expected exactly too_long (81 lines) at line 108, got:\n{check.stdout}")

listed = {line.split(": ")[1]: line.split(": ")[2].split(" ")[0] for line in run("--all").stdout.splitlines()}
expected = {"too_long": "81", "at_limit": "80", "Point": "4", "trailing": "3", "<lambda>": "3", "sum": "1"}
if listed != expected:
    failures.append(f"--all found {listed}, expected {expected}")

if run("--max", "81").returncode != 0:
    failures.append("--max 81 should pass the fixture")

for failure in failures:
    print("selftest:", failure)
sys.exit(1 if failures else 0)
