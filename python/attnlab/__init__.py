"""attnlab from PyTorch: attnlab's block-sparse attention kernel, its layouts, its plugins and
its results database. docs/PYTHON.md has the walk-through.

  attnlab.attention(q, k, v, mask, block=64)   softmax attention restricted to a bool mask
  attnlab.layout(mask) / layout_from_expr(expr, T) / layout_from_blocks(...) -> attnlab.Layout
  attnlab.from_flex_block_mask(block_mask)     a FlexAttention BlockMask (PyTorch >= 2.5)
  attnlab.backend(name, **params)              any installed plugin as a callable
  attnlab.results.open(path)                   read-only access to a results database

Importing loads libattnlab_ops.so (the torch.ops.attnlab library) from the build; see
attnlab/_library.py for where it looks.
"""
from . import _library

_library.load()

from . import results  # noqa: E402
from ._attention import attention  # noqa: E402
from ._backend import Backend, backend, backend_schema, backends  # noqa: E402
from ._layout import (Layout, from_flex_block_mask, layout, layout_from_blocks,  # noqa: E402
                      layout_from_expr)

__all__ = ["attention", "layout", "layout_from_expr", "layout_from_blocks", "from_flex_block_mask",
           "Layout", "backend", "Backend", "backends", "backend_schema", "results"]
