"""Finds and loads libattnlab_ops.so (the torch.ops.attnlab library) once.

Where it looks, first hit wins:
  1. $ATTNLAB_OPS_LIBRARY                       a path to the .so
  2. attnlab/_paths.py                          written by `cmake --install`
  3. $ATTNLAB_BUILD_DIR/lib                     another build folder
  4. <checkout>/build/lib                       the README's build, relative to this file
"""
import os

import torch

_NAME = "libattnlab_ops.so"
_loaded = None


def _candidates():
    env = os.environ.get("ATTNLAB_OPS_LIBRARY")
    if env:
        yield env, "$ATTNLAB_OPS_LIBRARY"
        return
    try:
        from . import _paths  # only in an installed copy
        yield _paths.OPS_LIBRARY, "attnlab/_paths.py (cmake --install)"
    except ImportError:
        pass
    build = os.environ.get("ATTNLAB_BUILD_DIR")
    if build:
        yield os.path.join(build, "lib", _NAME), "$ATTNLAB_BUILD_DIR/lib"
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    yield os.path.join(checkout, "build", "lib", _NAME), "the checkout's build/lib"


def load():
    """Loads the library into torch (idempotent) and returns its path."""
    global _loaded
    if _loaded:
        return _loaded
    tried = []
    for path, where in _candidates():
        if os.path.isfile(path):
            try:
                torch.ops.load_library(path)
            except OSError as e:
                raise ImportError(
                    f"attnlab: {path} (from {where}) does not load into torch {torch.__version__}: {e}. "
                    "It must be built against the LibTorch this Python's torch uses (Debian's "
                    "libtorch-dev with python3-torch of the same release); rebuild with tools/build.sh."
                ) from e
            _loaded = path
            return path
        tried.append(f"{path} ({where})")
    raise ImportError(
        "attnlab: the op library is not built; looked for " + "; ".join(tried)
        + ". Build it with `tools/build.sh` (README), or point $ATTNLAB_OPS_LIBRARY at libattnlab_ops.so."
    )
