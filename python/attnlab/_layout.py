"""Layouts: which tiles of a T x S score matrix the kernel computes, and their element masks.

A Layout holds 1 (shared by every (b, h)), H (one per head) or B*H (one per (b, h)) block
layouts, each four CPU tensors (see python/csrc/layout_args.hpp): row_ptr, col_idx, tile_mask,
masks. Tiles with no allowed element are skipped; a tile that is partly allowed carries its
element mask, so any boolean mask is represented exactly, whatever T, S and the tile size.
"""
import torch

from . import _library


class Layout:
    """1, H or B*H block layouts for T queries and S keys at one tile size."""

    def __init__(self, row_ptr, col_idx, tile_mask, masks, T, S):
        if not (len(row_ptr) == len(col_idx) == len(tile_mask) == len(masks) >= 1):
            raise ValueError("Layout: row_ptr, col_idx, tile_mask, masks must be lists of one length >= 1")
        self.row_ptr, self.col_idx = list(row_ptr), list(col_idx)
        self.tile_mask, self.masks = list(tile_mask), list(masks)
        self.T, self.S = int(T), int(S)

    @property
    def tile(self):
        return int(self.masks[0].shape[1])

    def __len__(self):
        return len(self.row_ptr)

    def tensors(self):
        """The four lists the ops take: (row_ptr, col_idx, tile_mask, masks)."""
        return self.row_ptr, self.col_idx, self.tile_mask, self.masks

    def to_mask(self):
        """bool [n, T, S]: the element mask of each layout (True = attended)."""
        return torch.stack([torch.ops.attnlab.layout_to_mask(*t, self.T, self.S)
                            for t in zip(*self.tensors())])

    def block_density(self):
        """Mean fraction of tiles computed."""
        n_tiles = -(-self.T // self.tile) * -(-self.S // self.tile)
        return sum(c.numel() for c in self.col_idx) / (len(self) * n_tiles)

    def __repr__(self):
        return (f"attnlab.Layout(n={len(self)}, T={self.T}, S={self.S}, tile={self.tile}, "
                f"block_density={self.block_density():.3f})")


def _one(tensors, T, S):
    return Layout(*([t] for t in tensors), T, S)


def _concat(layouts):
    first = layouts[0]
    return Layout(*(sum((list(getattr(l, f)) for l in layouts), [])
                    for f in ("row_ptr", "col_idx", "tile_mask", "masks")), first.T, first.S)


def layout(mask, block=64):
    """A Layout from a bool mask [T, S] (one layout) or [B, H, T, S] (size-1 B or H broadcast:
    [1, 1, T, S] gives one layout, [1, H, T, S] one per head, else one per (b, h))."""
    _library.load()
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"attnlab.layout: mask must be a bool tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"attnlab.layout: mask must be bool (True = may attend), got {mask.dtype}")
    if mask.dim() not in (2, 4):
        raise ValueError(f"attnlab.layout: mask must be [T, S] or [B, H, T, S], got {mask.dim()}-D "
                         f"{tuple(mask.shape)}")
    if not isinstance(block, int) or not 8 <= block <= 512:
        raise ValueError(f"attnlab.layout: block must be an int in [8, 512], got {block!r}")
    T, S = mask.shape[-2:]
    mask = mask.detach().cpu()
    if mask.dim() == 2:
        return _one(torch.ops.attnlab.layout_from_mask(mask, block), T, S)
    B, H = mask.shape[:2]
    if B == 1:
        slices = [mask[0, h] for h in range(H)]
    else:
        slices = [mask[b, h % mask.shape[1]] for b in range(B) for h in range(H)]
    return _concat([_one(torch.ops.attnlab.layout_from_mask(m, block), T, S) for m in slices])


def layout_from_expr(expression, T, block=64):
    """A Layout (one, shared) from a mask expression of attnlab's `masks` grammar, e.g.
    "sink:4|window:256" (docs/PLUGINS.md); causal, T x T."""
    _library.load()
    if not isinstance(expression, str):
        raise TypeError(f"attnlab.layout_from_expr: expression must be a str, got {type(expression).__name__}")
    return _one(torch.ops.attnlab.layout_from_expr(expression, int(T), int(block)), T, T)


def _listed_blocks(num, idx, n_k):
    """bool [B, H, n_q, n_k] from a block list: num [B, H, n_q], idx [B, H, n_q, K]."""
    idx = idx.long()
    valid = torch.arange(idx.shape[-1]) < num.long().unsqueeze(-1)
    dense = torch.zeros(*idx.shape[:-1], n_k + 1, dtype=torch.bool)
    dense.scatter_(-1, torch.where(valid, idx, torch.full_like(idx, n_k)), True)
    return dense[..., :n_k]


def _batched(num, idx):
    """[n_q] / [n_q, K] (or with H, or B and H) -> [B, H, n_q] and [B, H, n_q, K] on the CPU."""
    num, idx = num.cpu(), idx.cpu()
    while num.dim() < 3:
        num = num.unsqueeze(0)
    while idx.dim() < 4:
        idx = idx.unsqueeze(0)
    return num, idx


def layout_from_blocks(kv_num_blocks, kv_indices, T, S, block, full_kv_num_blocks=None,
                       full_kv_indices=None, mask_mod=None, tile=64):
    """A Layout from FlexAttention's block-list form.

    kv_num_blocks [B, H, n_q] and kv_indices [B, H, n_q, K]: query block i attends key blocks
    kv_indices[b, h, i, :kv_num_blocks[b, h, i]]; block is an int or (q_block, kv_block).
    mask_mod(b, h, q_idx, kv_idx) -> bool, if given, is applied inside those blocks (flex's
    partial blocks); full_kv_* list blocks attended whole. Without mask_mod every listed block
    is attended whole. The element mask is then laid out at `tile` (independent of block).
    """
    q_block, kv_block = (block, block) if isinstance(block, int) else block
    num, idx = _batched(kv_num_blocks, kv_indices)
    B, H, n_q = num.shape
    n_k = -(-S // kv_block)
    if idx.shape[:3] != num.shape:
        raise ValueError(f"attnlab.layout_from_blocks: kv_indices {tuple(idx.shape)} does not match "
                         f"kv_num_blocks {tuple(num.shape)} on [B, H, n_q]")

    def expand(blocks):  # [B, H, n_q, n_k] -> [B, H, T, S]
        return blocks.repeat_interleave(q_block, 2).repeat_interleave(kv_block, 3)[:, :, :T, :S]

    allowed = expand(_listed_blocks(num, idx, n_k))
    if mask_mod is not None:
        from torch.nn.attention.flex_attention import create_mask  # PyTorch >= 2.5
        allowed = allowed & create_mask(mask_mod, B, H, T, S, device="cpu")
    if full_kv_num_blocks is not None:
        full_num, full_idx = _batched(full_kv_num_blocks, full_kv_indices)
        allowed = allowed | expand(_listed_blocks(full_num, full_idx, n_k))
    return layout(allowed, tile)


def from_flex_block_mask(block_mask, tile=64):
    """A FlexAttention BlockMask (PyTorch >= 2.5) as a Layout: the same element mask (full
    blocks whole, partial blocks through its mask_mod), laid out at attnlab's `tile`."""
    if not hasattr(block_mask, "kv_num_blocks") or not hasattr(block_mask, "seq_lengths"):
        raise TypeError("attnlab.from_flex_block_mask: expected a torch.nn.attention.flex_attention."
                        f"BlockMask (PyTorch >= 2.5), got {type(block_mask).__name__}")
    T, S = block_mask.seq_lengths
    return layout_from_blocks(block_mask.kv_num_blocks, block_mask.kv_indices, T, S,
                              tuple(block_mask.BLOCK_SIZE), block_mask.full_kv_num_blocks,
                              block_mask.full_kv_indices, block_mask.mask_mod, tile)
