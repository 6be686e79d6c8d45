"""attnlab.attention: softmax attention restricted to a boolean mask, on attnlab's kernel.

  q [B, H, T, D], k [B, H, S, D], v [B, H, S, D], mask bool [T, S] or [B, H, T, S] (True = may
  attend; size-1 B or H broadcast) or a Layout  ->  out [B, H, T, D]
  out[b,h,t] = sum_s softmax_s(q[b,h,t]·k[b,h,s] * scale over s with mask[.., t, s]) v[b,h,s]
  scale = 1/sqrt(D) unless given. A query row with no allowed key gives out = 0 (zero
  gradient to q for that row, none to k or v from it).

The mask becomes a Layout (skipped empty tiles, element masks in partial ones) at tile
`block`; building it costs O(T·S), so it is cached for the same mask tensor (same object,
unmodified: its version counter), and a Layout can be passed directly.
"""
import weakref

import torch

from . import _library
from ._layout import Layout, layout

_cache = {}  # id(mask) -> (weakref to mask, mask._version, block, Layout)
_CACHE_SIZE = 16


def _cached_layout(mask, block):
    hit = _cache.get(id(mask))
    if hit is not None and hit[0]() is mask and hit[1] == mask._version and hit[2] == block:
        return hit[3]
    made = layout(mask, block)
    if len(_cache) >= _CACHE_SIZE:
        _cache.pop(next(iter(_cache)))
    _cache[id(mask)] = (weakref.ref(mask), mask._version, block, made)
    return made


def _per_head(lay, H):
    """Each layout repeated H times (the same tensors): B layouts -> B*H, (b, h) row-major."""
    rep = [[t for t in ts for _ in range(H)] for ts in lay.tensors()]
    return Layout(*rep, lay.T, lay.S)


def _check_inputs(q, k, v):
    for name, t, seq in (("q", q, "T"), ("k", k, "S"), ("v", v, "S")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"attnlab.attention: {name} must be a tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"attnlab.attention: {name} must be 4-D [B, H, {seq}, D], got "
                             f"{t.dim()}-D {tuple(t.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"attnlab.attention: k and v must have the same shape [B, H, S, D], got "
                         f"k {tuple(k.shape)} and v {tuple(v.shape)}")
    if (q.shape[0], q.shape[1], q.shape[3]) != (k.shape[0], k.shape[1], k.shape[3]):
        raise ValueError(f"attnlab.attention: q {tuple(q.shape)} and k {tuple(k.shape)} must agree "
                         "on B, H and D")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"attnlab.attention: q, k, v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.is_floating_point():
        raise TypeError(f"attnlab.attention: q, k, v must be floating point, got {q.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"attnlab.attention: q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")


def _check_mask(mask, B, H, T, S):
    if mask.dtype != torch.bool:
        raise TypeError(f"attnlab.attention: mask must be bool (True = may attend), got {mask.dtype}")
    if mask.dim() not in (2, 4):
        raise ValueError(f"attnlab.attention: mask must be [T, S] or [B, H, T, S], got {mask.dim()}-D "
                         f"{tuple(mask.shape)}")
    if tuple(mask.shape[-2:]) != (T, S):
        raise ValueError(f"attnlab.attention: mask is {tuple(mask.shape)} but q and k give T = {T}, "
                         f"S = {S}: its last two dims must be ({T}, {S})")
    if mask.dim() == 4 and (mask.shape[0] not in (1, B) or mask.shape[1] not in (1, H)):
        raise ValueError(f"attnlab.attention: mask is {tuple(mask.shape)}; its B and H must be "
                         f"{B} (or 1) and {H} (or 1)")


def attention(q, k, v, mask, block=64, scale=None):
    """Softmax attention of q over (k, v) restricted to `mask`, on attnlab's block-sparse
    kernel; differentiable in q, k, v. See the module docstring for shapes and empty rows."""
    _library.load()
    _check_inputs(q, k, v)
    B, H, T, _ = q.shape
    S = k.shape[2]
    if isinstance(mask, Layout):
        lay = mask
        if (lay.T, lay.S) != (T, S):
            raise ValueError(f"attnlab.attention: the layout is for T = {lay.T}, S = {lay.S}; q and k "
                             f"give T = {T}, S = {S}")
        if len(lay) not in (1, H, B * H):
            raise ValueError(f"attnlab.attention: the layout holds {len(lay)} layouts; need 1, H = {H} "
                             f"or B*H = {B * H}")
    elif isinstance(mask, torch.Tensor):
        _check_mask(mask, B, H, T, S)
        lay = _cached_layout(mask, block)
        if mask.dim() == 4 and mask.shape[0] > 1 and mask.shape[1] == 1 and H > 1:
            lay = _per_head(lay, H)  # one layout per batch entry -> one per (b, h)
    else:
        raise TypeError(f"attnlab.attention: mask must be a bool tensor or an attnlab.Layout, got "
                        f"{type(mask).__name__}")
    return torch.ops.attnlab.attention(q, k, v, *lay.tensors(), scale)
