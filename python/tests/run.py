#!/usr/bin/env python3
"""Runs the Python tests (unittest, stdlib only) against the op library the environment names
(CTest sets PYTHONPATH=python and ATTNLAB_OPS_LIBRARY). Exit 77 = skipped, only when this
Python has no torch at all; any other failure fails."""
import os
import sys
import unittest

try:
    import torch  # noqa: F401
except ImportError as e:
    print(f"SKIP: {sys.executable} cannot import torch ({e}); install python3-torch (tools/setup.sh does)")
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py", top_level_dir=here)
result = unittest.TextTestRunner(verbosity=2).run(suite)
sys.exit(0 if result.wasSuccessful() else 1)
