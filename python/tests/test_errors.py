"""Bad input gets a Python exception that names the problem."""
import unittest

import torch

import attnlab


def qkv(B=1, H=2, T=10, S=10, D=8, dtype=torch.float32):
    return torch.randn(B, H, T, D, dtype=dtype), torch.randn(B, H, S, D, dtype=dtype), torch.randn(B, H, S, D, dtype=dtype)


class Errors(unittest.TestCase):
    def test_wrong_rank(self):
        q, k, v = qkv()
        with self.assertRaisesRegex(ValueError, r"q must be 4-D \[B, H, T, D\], got 3-D"):
            attnlab.attention(q[0], k, v, torch.ones(10, 10, dtype=torch.bool))
        with self.assertRaisesRegex(ValueError, r"mask must be \[T, S\] or \[B, H, T, S\], got 3-D"):
            attnlab.attention(q, k, v, torch.ones(2, 10, 10, dtype=torch.bool))

    def test_mismatched_shapes(self):
        q, k, v = qkv()
        with self.assertRaisesRegex(ValueError, "k and v must have the same shape"):
            attnlab.attention(q, k, v[:, :, :5], torch.ones(10, 10, dtype=torch.bool))
        with self.assertRaisesRegex(ValueError, "must agree on B, H and D"):
            attnlab.attention(q[..., :4], k, v, torch.ones(10, 10, dtype=torch.bool))

    def test_dtype(self):
        q, k, v = qkv()
        with self.assertRaisesRegex(TypeError, "floating point, got torch.int64"):
            attnlab.attention(q.long(), k.long(), v.long(), torch.ones(10, 10, dtype=torch.bool))
        with self.assertRaisesRegex(TypeError, "one dtype"):
            attnlab.attention(q.double(), k, v, torch.ones(10, 10, dtype=torch.bool))
        with self.assertRaisesRegex(TypeError, r"mask must be bool \(True = may attend\), got torch.float32"):
            attnlab.attention(q, k, v, torch.ones(10, 10))

    def test_mask_of_the_wrong_size(self):
        q, k, v = qkv(T=10, S=12)
        with self.assertRaisesRegex(ValueError, r"mask is \(10, 10\) but q and k give T = 10, S = 12"):
            attnlab.attention(q, k, v, torch.ones(10, 10, dtype=torch.bool))
        with self.assertRaisesRegex(ValueError, "its B and H must be 1 \\(or 1\\) and 2"):
            attnlab.attention(q, k, v, torch.ones(1, 3, 10, 12, dtype=torch.bool))
        with self.assertRaisesRegex(ValueError, "the layout is for T = 16, S = 16"):
            attnlab.attention(q, k, v, attnlab.layout_from_expr("causal", 16))

    def test_raw_op_checks_too(self):
        q, k, v = qkv(T=10, S=12)
        lay = attnlab.layout_from_expr("causal", 200)
        with self.assertRaisesRegex(RuntimeError, "row_ptr"):
            torch.ops.attnlab.attention(q, k, v, *lay.tensors(), None)
        with self.assertRaisesRegex(RuntimeError, "same number of layouts"):
            torch.ops.attnlab.attention(q, k, v, lay.row_ptr * 2, lay.col_idx, lay.tile_mask, lay.masks, None)

    def test_bad_expression(self):
        with self.assertRaisesRegex(RuntimeError, "bad mask expression 'window:0'"):
            attnlab.layout_from_expr("window:0", 32)

    def test_unknown_plugin(self):
        with self.assertRaisesRegex(ValueError, r"unknown backend 'nope' \(available: .*dense.*searched .*plugins"):
            attnlab.backend("nope")

    def test_unknown_or_bad_parameter(self):
        with self.assertRaisesRegex(ValueError, "unknown parameter 'windw'"):
            attnlab.backend("masks", windw=3)
        with self.assertRaisesRegex(ValueError, "parameter 'tile' must be an int"):
            attnlab.backend("masks", tile="big")
        with self.assertRaisesRegex(ValueError, "tile"):
            attnlab.backend("masks", tile=100000)
        with self.assertRaisesRegex(TypeError, "parameter 'pattern' must be a bool, int, float or str"):
            attnlab.backend("masks", pattern=[1])

    def test_backend_shape(self):
        b = attnlab.backend("dense", n_heads=2, head_dim=8)
        q, k, v = qkv(H=3)
        with self.assertRaisesRegex(ValueError, "built for H = 2, D = 8"):
            b(q, k, v)


if __name__ == "__main__":
    unittest.main()
