"""A FlexAttention BlockMask trains on the CPU through attnlab (PyTorch >= 2.5): the same
output as flex (inference) and gradients that match the float64 reference."""
import unittest

import torch

import attnlab
from reference import reference_attention

try:
    from torch.nn.attention.flex_attention import create_block_mask, create_mask, flex_attention
except ImportError:
    create_block_mask = None

SINK, WINDOW = 4, 48


def sink_window(b, h, q_idx, kv_idx):
    return (kv_idx <= q_idx) & ((kv_idx < SINK) | (q_idx - kv_idx < WINDOW))


def per_head_stride(b, h, q_idx, kv_idx):
    return (kv_idx <= q_idx) & ((q_idx - kv_idx) % (h + 2) == 0)


@unittest.skipIf(create_block_mask is None,
                 f"FlexAttention needs PyTorch >= 2.5, this is {torch.__version__}")
class FlexRoundTrip(unittest.TestCase):
    def round_trip(self, mask_mod, B, H, T, D, seed):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(2, 3, T, D, generator=g).requires_grad_() for _ in range(3))
        block_mask = create_block_mask(mask_mod, B, H, T, T, device="cpu")
        lay = attnlab.from_flex_block_mask(block_mask)
        element = create_mask(mask_mod, B, H, T, T, device="cpu")
        self.assertTrue(torch.equal(lay.to_mask(), element.reshape(-1, T, T)))

        out = attnlab.attention(q, k, v, lay)
        with torch.no_grad():
            flex = flex_attention(q, k, v, block_mask=block_mask)  # eager: inference reference
        torch.testing.assert_close(out, flex, atol=2e-5, rtol=0)

        ref = reference_attention(q, k, v, element)
        g_out = torch.randn_like(ref)
        grads = torch.autograd.grad(out, (q, k, v), g_out.float())
        ref_grads = torch.autograd.grad(ref, (q, k, v), g_out)
        for name, a, b in zip("qkv", grads, ref_grads):
            with self.subTest(grad=name):
                torch.testing.assert_close(a.double(), b.double(), atol=1e-4, rtol=0)

    def test_sink_window_shared(self):
        # T = 300: not a multiple of flex's 128 blocks nor of attnlab's 64 tiles.
        self.round_trip(sink_window, None, None, 300, 16, seed=0)

    def test_per_head_mask(self):
        self.round_trip(per_head_stride, 1, 3, 200, 8, seed=1)

    def test_not_a_block_mask(self):
        with self.assertRaisesRegex(TypeError, "BlockMask"):
            attnlab.from_flex_block_mask(torch.ones(4, 4, dtype=torch.bool))


if __name__ == "__main__":
    unittest.main()
