"""attnlab.attention and layouts: values and gradients against the float64 reference on odd
shapes with masks that ignore tile boundaries, and the layout constructors."""
import unittest

import torch

import attnlab
from reference import random_mask, reference_attention


def inputs(B, H, T, S, D, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, n, D, generator=g, dtype=dtype).requires_grad_() for n in (T, S, S)]


class AttentionAgainstReference(unittest.TestCase):
    def check(self, q, k, v, mask, block, atol_out, atol_grad):
        out = attnlab.attention(q, k, v, mask, block=block)
        ref = reference_attention(q, k, v, mask if isinstance(mask, torch.Tensor) else None)
        self.assertEqual(out.shape, q.shape)
        self.assertEqual(out.dtype, q.dtype)
        torch.testing.assert_close(out.double(), ref, atol=atol_out, rtol=0)
        g = torch.randn_like(ref)
        grads = torch.autograd.grad(out, (q, k, v), g.to(out.dtype))
        ref_grads = torch.autograd.grad(ref, (q, k, v), g)
        for name, a, b in zip("qkv", grads, ref_grads):
            with self.subTest(grad=name):
                torch.testing.assert_close(a.double(), b.double(), atol=atol_grad, rtol=0)
        return out

    def test_shared_mask_odd_shapes(self):
        # T, S not multiples of any tile; D not a multiple of the SIMD width.
        for block in (16, 64):
            with self.subTest(block=block):
                q, k, v = inputs(2, 3, 77, 53, 24)
                self.check(q, k, v, random_mask(77, 53), block, 2e-5, 1e-4)

    def test_per_batch_and_head_masks(self):
        q, k, v = inputs(2, 3, 45, 70, 8, seed=1)
        self.check(q, k, v, random_mask(2, 3, 45, 70, density=0.5), 16, 2e-5, 1e-4)
        self.check(q, k, v, random_mask(1, 3, 45, 70, density=0.1), 32, 2e-5, 1e-4)  # per head
        self.check(q, k, v, random_mask(2, 1, 45, 70), 32, 2e-5, 1e-4)  # per batch

    def test_float64_matches_tightly(self):
        q, k, v = inputs(1, 2, 37, 41, 16, dtype=torch.float64, seed=2)
        self.check(q, k, v, random_mask(37, 41, density=0.6), 16, 1e-12, 1e-11)

    def test_gradcheck(self):
        q, k, v = inputs(1, 1, 11, 9, 4, dtype=torch.float64, seed=3)
        mask = random_mask(11, 9, density=0.5, empty_rows=1)
        self.assertTrue(torch.autograd.gradcheck(
            lambda q, k, v: attnlab.attention(q, k, v, mask, block=8), (q, k, v)))

    def test_empty_rows_give_zero_output_and_gradient(self):
        q, k, v = inputs(1, 2, 30, 20, 8, seed=4)
        mask = random_mask(30, 20, density=0.5, empty_rows=3)
        self.check(q, k, v, mask, 16, 2e-5, 1e-4)
        out = attnlab.attention(q, k, v, mask, block=16)
        self.assertEqual(out[:, :, :3].abs().max().item(), 0.0)
        out.sum().backward()
        self.assertEqual(q.grad[:, :, :3].abs().max().item(), 0.0)
        self.assertTrue(torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all())

    def test_scale_and_cached_layout(self):
        q, k, v = inputs(1, 2, 33, 33, 8, seed=5)
        mask = torch.ones(33, 33, dtype=torch.bool).tril()
        a = attnlab.attention(q, k, v, mask, scale=0.3)
        torch.testing.assert_close(a.double(), reference_attention(q, k, v, mask, scale=0.3), atol=2e-5, rtol=0)
        mask[5, :] = False  # an in-place change must not reuse the cached layout
        b = attnlab.attention(q, k, v, mask)
        self.assertEqual(b[:, :, 5].abs().max().item(), 0.0)

    def test_inference_mode(self):
        q, k, v = inputs(1, 1, 20, 20, 8, seed=6)
        mask = random_mask(20, 20, density=0.5, empty_rows=0)
        with torch.inference_mode():
            out = attnlab.attention(q, k, v, mask, block=8)
        torch.testing.assert_close(out.double(), reference_attention(q, k, v, mask), atol=2e-5, rtol=0)

    def test_lse_op(self):
        q, k, v = inputs(1, 1, 20, 24, 8, seed=7)
        mask = random_mask(20, 24, density=0.5)
        lay = attnlab.layout(mask, 8)
        out, lse = torch.ops.attnlab.attention_lse(q, k, v, *lay.tensors(), None)
        scores = (q.double() @ k.double().transpose(-2, -1)) * 8 ** -0.5
        ref = torch.logsumexp(scores.masked_fill(~mask, float("-inf")), -1)
        torch.testing.assert_close(lse.double(), ref, atol=1e-5, rtol=0)


class Layouts(unittest.TestCase):
    def test_mask_round_trip(self):
        mask = random_mask(2, 1, 50, 61, density=0.2)
        lay = attnlab.layout(mask, 16)
        self.assertEqual((len(lay), lay.T, lay.S, lay.tile), (2, 50, 61, 16))
        self.assertTrue(torch.equal(lay.to_mask(), mask[:, 0]))

    def test_expression(self):
        T = 100
        lay = attnlab.layout_from_expr("sink:4|window:16", T, 32)
        t = torch.arange(T)
        want = (t[None, :] <= t[:, None]) & ((t[None, :] < 4) | (t[:, None] - t[None, :] < 16))
        self.assertTrue(torch.equal(lay.to_mask()[0], want))
        q, k, v = inputs(1, 2, T, T, 8, seed=8)
        out = attnlab.attention(q, k, v, lay)
        torch.testing.assert_close(out.double(), reference_attention(q, k, v, want), atol=2e-5, rtol=0)
        self.assertLess(lay.block_density(), attnlab.layout_from_expr("causal", T, 32).block_density())

    def test_block_list(self):
        # FlexAttention's form: kv_num_blocks [B, H, n_q], kv_indices [B, H, n_q, K], block 16.
        T, S, blk = 40, 35, 16
        num = torch.tensor([[[1, 2, 0]]])
        idx = torch.tensor([[[[2, 0, 0], [0, 1, 2], [0, 0, 0]]]])
        lay = attnlab.layout_from_blocks(num, idx, T, S, blk, tile=8)
        want = torch.zeros(T, S, dtype=torch.bool)
        want[0:16, 32:35] = True
        want[16:32, 0:32] = True
        self.assertTrue(torch.equal(lay.to_mask()[0], want))


if __name__ == "__main__":
    unittest.main()
