"""attnlab.backend: an installed attnlab plugin (dense, masks, blend, gating, topk, or any
out-of-tree one) as a Python callable, through torch.classes.attnlab.Backend.

  b = attnlab.backend("blend", n_heads=H, head_dim=D, candidates="causal,window:64", init=0.5)
  out = b(q, k, v)                 q, k, v [B, H, T, D] -> [B, H, T, D], causal self-attention
  opt = torch.optim.Adam(b.parameters())      the plugin's own tensors: training updates them
  b.set_hard(True); b.layouts(T)   hard mode and the layouts it computes (attnlab.Layout)

Plugins are found as the CLI finds them: $ATTNLAB_PLUGIN_PATH, then the build's plugins/.
Parameters are the plugin's schema (`attnlab backends` on the CLI, attnlab.backend_schema()).
"""
import torch

from . import _library
from ._layout import Layout


def _param_text(key, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value) if not isinstance(value, float) else repr(value)
    raise TypeError(f"attnlab.backend: parameter '{key}' must be a bool, int, float or str, got "
                    f"{type(value).__name__}")


def backends():
    """Names of the plugins found."""
    _library.load()
    return list(torch.ops.attnlab.backends())


def backend_schema(name):
    """One line per parameter of plugin `name`: 'key: allowed (default d) help'."""
    _library.load()
    return list(torch.ops.attnlab.backend_schema(name))


class Backend:
    """A plugin instance. Call it like an attention function; see the module docstring."""

    def __init__(self, name, n_heads=1, head_dim=64, max_seq_len=1024, seed=0, **params):
        _library.load()
        text = {key: _param_text(key, value) for key, value in params.items()}
        try:
            self._impl = torch.classes.attnlab.Backend(str(name), text, int(n_heads), int(head_dim),
                                                       int(max_seq_len), int(seed))
        except RuntimeError as e:  # unknown plugin or parameter, a value out of range
            raise ValueError(str(e).split("\nException raised from")[0]) from None
        self.name, self.n_heads, self.head_dim, self.max_seq_len = name, n_heads, head_dim, max_seq_len

    def __call__(self, q, k, v):
        return self.forward(q, k, v)

    def forward(self, q, k, v):
        for label, t in (("q", q), ("k", k), ("v", v)):
            if not isinstance(t, torch.Tensor) or t.dim() != 4:
                raise ValueError(f"attnlab backend '{self.name}': {label} must be a 4-D tensor [B, H, T, D], "
                                 f"got {getattr(t, 'shape', type(t).__name__)}")
        if not (q.shape == k.shape == v.shape):
            raise ValueError(f"attnlab backend '{self.name}': q, k, v must have one shape (causal "
                             f"self-attention), got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
        if q.shape[1] != self.n_heads or q.shape[3] != self.head_dim:
            raise ValueError(f"attnlab backend '{self.name}' was built for H = {self.n_heads}, D = "
                             f"{self.head_dim}; got q {tuple(q.shape)}")
        if not q.is_floating_point():
            raise TypeError(f"attnlab backend '{self.name}': q, k, v must be floating point, got {q.dtype}")
        return self._impl.forward(q, k, v)

    def parameters(self):
        return list(self._impl.parameters())

    def named_parameters(self):
        return list(zip(self._impl.parameter_names(), self._impl.parameters()))

    def set_hard(self, hard=True):
        self._impl.set_hard(bool(hard))
        return self

    @property
    def hard(self):
        return self._impl.hard()

    def train(self, mode=True):
        self._impl.train(bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def regularizer(self):
        """The plugin's penalty (add lambda * it to the loss), or None."""
        return self._impl.regularizer()

    def statistics(self):
        return dict(self._impl.statistics())

    def on_step(self, step, total_steps):
        self._impl.on_step(int(step), int(total_steps))

    def layouts(self, T):
        """The Layout the current mode computes at T (1, H or B*H layouts)."""
        flat = list(self._impl.layouts(int(T)))
        n = len(flat) // 4
        return Layout(flat[:n], flat[n:2 * n], flat[2 * n:3 * n], flat[3 * n:], T, T)

    def __repr__(self):
        return f"attnlab.backend({self.name!r}, n_heads={self.n_heads}, head_dim={self.head_dim})"


def backend(name, **kwargs):
    """An installed plugin as a callable: attnlab.backend(name, n_heads=, head_dim=,
    max_seq_len=, seed=, **plugin_params)."""
    return Backend(name, **kwargs)
