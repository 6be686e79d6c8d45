"""Float64 reference: softmax attention over a bool mask, materialized [B, H, T, S].
A row with no allowed key gives 0 with zero gradient (attnlab's definition)."""
import torch


def reference_attention(q, k, v, mask, scale=None):
    q, k, v = q.double(), k.double(), v.double()
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    mask = mask.expand(scores.shape)
    has_key = mask.any(-1, keepdim=True)
    # Empty rows attend every key inside the softmax (finite gradients), then are zeroed.
    scores = scores.masked_fill(~(mask | ~has_key), float("-inf"))
    return (torch.softmax(scores, -1) @ v) * has_key


def random_mask(*shape, density=0.3, empty_rows=2, generator=None):
    """A bool mask with no tile structure; the first `empty_rows` rows of each slice empty."""
    mask = torch.rand(*shape, generator=generator) < density
    mask[..., :empty_rows, :] = False
    return mask
