"""attnlab.backend: plugins from Python, trained a few steps with a torch optimizer."""
import unittest

import torch

import attnlab


class Backends(unittest.TestCase):
    def test_found_like_the_cli(self):
        names = attnlab.backends()
        for name in ("dense", "masks", "blend", "gating", "topk"):
            self.assertIn(name, names)
        self.assertTrue(any(line.startswith("pattern:") for line in attnlab.backend_schema("masks")))

    def test_masks_plugin_matches_attention(self):
        H, D, T = 2, 16, 90
        b = attnlab.backend("masks", n_heads=H, head_dim=D, max_seq_len=T, pattern="sink:4|window:20",
                            execution="block_sparse", tile=32)
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, H, T, D, generator=g) for _ in range(3))
        lay = b.layouts(T)
        self.assertTrue(torch.equal(lay.to_mask()[0], attnlab.layout_from_expr("sink:4|window:20", T).to_mask()[0]))
        torch.testing.assert_close(b(q, k, v), attnlab.attention(q, k, v, lay), atol=1e-5, rtol=0)

    def test_blend_trains_from_python(self):
        # Distill a causal teacher into blend's mixture of candidates: its logits must move and
        # the loss must fall within a few Adam steps.
        H, D, T = 2, 16, 64
        torch.manual_seed(0)
        student = attnlab.backend("blend", n_heads=H, head_dim=D, max_seq_len=T,
                                  candidates="causal,window:8,sink:2|window:4", init=0.5)
        teacher = attnlab.backend("dense", n_heads=H, head_dim=D, max_seq_len=T)
        params = student.parameters()
        self.assertTrue(params and all(p.requires_grad for p in params))
        before = [p.detach().clone() for p in params]
        opt = torch.optim.Adam(params, lr=0.05)
        q, k, v = (torch.randn(2, H, T, D) for _ in range(3))
        target = teacher(q, k, v).detach()
        losses = []
        for step in range(8):
            student.on_step(step, 8)
            loss = (student(q, k, v) - target).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        self.assertLess(losses[-1], 0.8 * losses[0], losses)
        self.assertTrue(any(not torch.equal(a, p) for a, p in zip(before, params)))
        self.assertEqual([n for n, _ in student.named_parameters()], student._impl.parameter_names())
        student.set_hard(True)
        self.assertTrue(student.hard)
        self.assertGreaterEqual(len(student.layouts(T)), 1)
        with torch.no_grad():
            self.assertEqual(student(q, k, v).shape, q.shape)


if __name__ == "__main__":
    unittest.main()
