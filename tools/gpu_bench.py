#!/usr/bin/env python3
"""attnlab's CUDA block-sparse kernel against PyTorch's attention, on one GPU, same layouts.

    q, k, v ~ N(0, 1) [B=1, H, T, D]; out = softmax(q k^T / sqrt(D) | layout) v
    layouts (tile 128, causal): "causal" = every tile on or below the diagonal (block density
    ~0.5); "0.25", "0.1" = the diagonal tiles plus random tiles below it up to that fraction
    of all n x n tiles (n = T / 128). Within kept tiles a query sees keys <= itself.

Peers, timed here in the same process, with the same shapes:
    sdpa_flash, sdpa_cudnn   scaled_dot_product_attention(is_causal=True) pinned to one backend:
                             dense causal, the same for every layout (the time sparsity must beat)
    flex                     torch.compile(flex_attention) with a BlockMask of exactly the layout
    attnlab                  block_sparse_attention via attnlab_kernel_bench --layout-files (the
                             C++ bench reads the very tile grids written here; there is no
                             Python op for the kernel). It computes in fp32 only (fp64 too): it is
                             timed on fp32 inputs, the peers on bf16 and fp16 (and fp32 if asked).
Timing: median wall time of `reps` calls after one warm-up, synchronizing after each call
(the C++ bench does the same). fwd = one call under no_grad; fwd+bwd = the call and the
gradients of q, k, v.

Budget: the GPU minutes are few, so every measurement is projected from the same series at
the previous T (x4 per doubling) and skipped, with a row saying so, when it would not fit in
the time left; T runs ascending, so what is cut first is the largest sizes.

    python3 tools/gpu_bench.py --bench-bin build-gpu/bin/attnlab_kernel_bench --out bench.tsv
    python3 tools/gpu_bench.py --dry-run --device cpu --bench-bin build/bin/attnlab_kernel_bench
--dry-run: small shapes, flex uncompiled unless --flex-compile 1, the layout check in fp64.
Before timing, a layout check: the BlockMask's blocks are the tile grid, and flex with it
matches SDPA with the grid's dense mask (the kernel reads the same grid from its file, and its
block density is compared with the grid's for every row).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

TILE = 128  # FlexAttention's default block size; the kernel uses the same tile
DTYPES = {"fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--bench-bin", required=True, help="attnlab_kernel_bench built with CUDA")
    p.add_argument("--out", default="-", help="TSV file (default stdout)")
    p.add_argument("--seq", default="4096,8192,16384,32768")
    p.add_argument("--head-dims", default="64,128")
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--layouts", default="causal,0.25,0.1")
    p.add_argument("--peer-dtypes", default="bf16,fp16")
    p.add_argument("--kernel-dtype", default="fp32")
    p.add_argument("--passes", default="fwd,fwd+bwd")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--budget-s", type=float, default=240.0, help="stop measuring after this")
    p.add_argument("--flex-compile", type=int, default=None, help="default: 1, 0 with --dry-run")
    p.add_argument("--dry-run", action="store_true")
    a = p.parse_args()
    if a.dry_run:
        a.seq, a.head_dims, a.heads, a.reps = "256,512", "64", 2, 2
    if a.flex_compile is None:
        a.flex_compile = 0 if a.dry_run else 1
    return a


def tile_grid(T, layout, seed):
    """bool [n, n] of kept tiles, causal (j <= i), diagonal always kept."""
    n = (T + TILE - 1) // TILE
    lower = torch.ones(n, n, dtype=torch.bool).tril()
    if layout == "causal":
        return lower
    target = round(float(layout) * n * n)
    grid = torch.eye(n, dtype=torch.bool)
    below = lower.tril(-1).flatten().nonzero().flatten()
    extra = max(0, min(target - n, below.numel()))
    g = torch.Generator().manual_seed(seed)
    chosen = below[torch.randperm(below.numel(), generator=g)[:extra]]
    grid.view(-1)[chosen] = True
    return grid


def write_layout_file(path, T, grid):
    with open(path, "w") as f:
        f.write(f"{T} {TILE}\n")
        for row in grid.tolist():
            f.write("".join("1" if x else "0" for x in row) + "\n")


def causal_mod(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def layout_mod(grid, device):
    """The whole layout as a mask_mod: eager flex_attention applies mask_mod to every element
    and ignores the BlockMask's block lists, so only this one is exact there."""
    tiles = grid.to(device)

    def mod(b, h, q_idx, kv_idx):
        return tiles[q_idx // TILE, kv_idx // TILE] & (q_idx >= kv_idx)
    return mod


def block_mask_of(grid, T, device, exact_mod):
    """BlockMask with exactly the grid's tiles: off-diagonal kept tiles are full blocks, the
    diagonal ones partial. Compiled flex visits only the listed blocks and applies mask_mod
    inside partial ones, so there causal_mod is exact and, being one function for every
    layout, avoids a recompilation per layout; eager flex needs exact_mod=True."""
    from torch.nn.attention.flex_attention import BlockMask
    n = grid.shape[0]
    full = grid & ~torch.eye(n, dtype=torch.bool)

    def to_blocks(sel):
        counts = sel.sum(-1).to(torch.int32)
        # kept indices first (ascending), the rest after: only the first `count` are read
        order = torch.sort((~sel).to(torch.int64) * n + torch.arange(n), dim=-1).indices.to(torch.int32)
        return counts[None, None].to(device), order[None, None].contiguous().to(device)

    diag_num, diag_idx = to_blocks(torch.eye(n, dtype=torch.bool))
    full_num, full_idx = to_blocks(full)
    kwargs = dict(BLOCK_SIZE=TILE, mask_mod=layout_mod(grid, device) if exact_mod else causal_mod)
    try:
        return BlockMask.from_kv_blocks(diag_num, diag_idx, full_num, full_idx, seq_lengths=(T, T), **kwargs)
    except TypeError:  # older signature without seq_lengths
        return BlockMask.from_kv_blocks(diag_num, diag_idx, full_num, full_idx, **kwargs)


def check_flex_layout(device, flex, compiled, dtype, T, H, D):
    """flex with block_mask_of() against SDPA with the dense mask of the same grid: the
    BlockMask's block lists must be the grid (to_dense), and the outputs must agree.
    Returns (max abs diff, ok)."""
    grid = tile_grid(T, "0.1", seed=1)
    bm = block_mask_of(grid, T, device, exact_mod=not compiled)
    same_blocks = bool((bm.to_dense()[0, 0].cpu() != 0).eq(grid).all())
    dense = grid.repeat_interleave(TILE, 0).repeat_interleave(TILE, 1)[:T, :T] & torch.ones(T, T, dtype=torch.bool).tril()
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, H, T, D, dtype=dtype, device=device) for _ in range(3))
    with torch.no_grad():
        ref = torch.float64 if dtype == torch.float64 else torch.float32
        got = flex(q, k, v, block_mask=bm).to(ref)
        want = F.scaled_dot_product_attention(q.to(ref), k.to(ref), v.to(ref), attn_mask=dense.to(device))
    err = (got - want).abs().max().item()
    tol = 1e-9 if dtype == torch.float64 else (1e-4 if dtype == torch.float32 else 3e-2)
    return err, same_blocks and err < tol, same_blocks


class Clock:
    def __init__(self, budget_s):
        self.deadline = time.monotonic() + budget_s

    def left(self):
        return self.deadline - time.monotonic()


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(call, reps, device, clock):
    """Median ms of `reps` calls after a warm-up; fewer reps (>= 1) when time is short."""
    t0 = time.perf_counter()
    call()
    sync(device)
    warm = (time.perf_counter() - t0) * 1e3
    reps = max(1, min(reps, int(max(0.0, clock.left() * 1e3 * 0.25) / max(warm, 1e-3))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2], reps


def timed_pass(attention, q, k, v, dout, pass_name, reps, device, clock):
    if pass_name == "fwd":
        def call():
            with torch.no_grad():
                attention(q, k, v)
    else:
        def call():
            qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
            torch.autograd.grad(attention(qg, kg, vg), (qg, kg, vg), dout)
    return median_ms(call, reps, device, clock)


def sdpa_with(backend_name):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend_name]

    def attention(q, k, v):
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return attention


class Writer:
    COLUMNS = ["impl", "dtype", "H", "D", "T", "layout", "block_density", "pass", "ms", "reps", "note"]

    def __init__(self, path):
        self.f = sys.stdout if path == "-" else open(path, "w")
        self.rows = []

    def comment(self, text):
        self.f.write(f"# {text}\n")
        self.f.flush()

    def header(self):
        self.f.write("\t".join(self.COLUMNS) + "\n")

    def row(self, **kw):
        self.rows.append(kw)
        self.f.write("\t".join(str(kw.get(c, "")) for c in self.COLUMNS) + "\n")
        self.f.flush()


def projected_s(history, key, T, fallback_s):
    """Seconds for warm-up + one rep at T, from the same series at a smaller T (quadratic)."""
    if key not in history:
        return fallback_s
    T0, ms = history[key]
    return 2 * ms / 1e3 * (T / T0) ** 2


def run_kernel(args, D, T, layout_paths, clock):
    """attnlab_kernel_bench on this T's layout files; returns {(layout, pass): (ms, reps)}."""
    cmd = [args.bench_bin, "--device", args.device.split(":")[0], "--dtype", args.kernel_dtype,
           "--heads", str(args.heads), "--head-dim", str(D), "--reps", str(args.reps),
           "--max-ms", str(max(1.0, clock.left() * 1e3 * 0.1)), "--layout-files", ",".join(layout_paths)]
    result = {}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, clock.left()))
    except subprocess.TimeoutExpired:
        return None, "timed out (budget)"
    except OSError as e:
        return None, f"failed: {e}"
    if proc.returncode != 0:
        return None, "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
    lines = proc.stdout.strip().splitlines()
    head = lines[0].split("\t")
    for line in lines[1:]:
        rec = dict(zip(head, line.split("\t")))
        result[(rec["layout"], rec["pass"])] = (float(rec["kernel_ms"]), int(rec["reps"]), float(rec["block_density"]))
    return result, ""


def main():
    args = parse_args()
    clock = Clock(args.budget_s)
    device = args.device
    out = Writer(args.out)
    from torch.nn.attention.flex_attention import flex_attention
    flex = torch.compile(flex_attention) if args.flex_compile else flex_attention
    seqs = [int(x) for x in args.seq.split(",")]
    head_dims = [int(x) for x in args.head_dims.split(",")]
    layouts = args.layouts.split(",")
    passes = args.passes.split(",")
    peer_dtypes = args.peer_dtypes.split(",")
    out.comment(f"torch {torch.__version__}, device {device}"
                + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""))
    out.comment(f"attnlab kernel inputs {args.kernel_dtype}: it computes in fp32 (fp64 for fp64); "
                "bf16/fp16 inputs would be cast to fp32 and back, so it has no half-precision path. "
                f"Peers in {','.join(peer_dtypes)}.")
    out.comment("sdpa_* rows: dense causal (is_causal=True), layout-independent: the bar sparsity must beat")
    out.comment(f"B=1 H={args.heads} tile={TILE}; flex {'compiled' if args.flex_compile else 'eager (not compiled)'}")
    out.header()
    check_dtype = torch.float64 if args.dry_run else DTYPES[peer_dtypes[0]]
    err, ok, same_blocks = check_flex_layout(device, flex, args.flex_compile, check_dtype, min(seqs), args.heads, head_dims[0])
    out.comment(f"layout check: BlockMask blocks == tile grid: {same_blocks}; flex vs SDPA with the dense mask, "
                f"{check_dtype}, T={min(seqs)}: max abs diff {err:.2e} -> {'ok' if ok else 'FAILED'}")
    failures = 0 if ok else 1
    history = {}  # series key -> (T, ms) of its last measurement
    tmp = tempfile.mkdtemp(prefix="attnlab_layouts_")
    for T in seqs:
        grids = {name: tile_grid(T, name, seed=T + i) for i, name in enumerate(layouts)}
        paths = []
        for name, grid in grids.items():
            paths.append(os.path.join(tmp, f"{name}.T{T}.txt"))
            write_layout_file(paths[-1], T, grid)
        for D in head_dims:
            # attnlab, all layouts and passes of this (T, D) in one process
            need = sum(projected_s(history, ("attnlab", D, name, p), T, 2.0) for name in layouts for p in passes)
            if need > clock.left():
                for name in layouts:
                    for p in passes:
                        out.row(impl="attnlab", dtype=args.kernel_dtype, H=args.heads, D=D, T=T, layout=name,
                                **{"pass": p}, note=f"skipped: projected {need:.0f} s > {clock.left():.0f} s left")
            else:
                res, note = run_kernel(args, D, T, paths, clock)
                for name in layouts:
                    ref_density = grids[name].sum().item() / grids[name].numel()
                    for p in passes:
                        key = (f"{name}.T{T}.txt", p)
                        if res is None or key not in res:
                            failures += note.startswith("failed") or res is not None
                            out.row(impl="attnlab", dtype=args.kernel_dtype, H=args.heads, D=D, T=T,
                                    layout=name, **{"pass": p}, note=note or "missing")
                            continue
                        ms, reps, density = res[key]
                        same = abs(density - ref_density) < 1e-3
                        failures += not same
                        history[("attnlab", D, name, p)] = (T, ms)
                        out.row(impl="attnlab", dtype=args.kernel_dtype, H=args.heads, D=D, T=T, layout=name,
                                block_density=f"{density:.4f}", **{"pass": p}, ms=f"{ms:.3f}", reps=reps,
                                note="" if same else f"LAYOUT MISMATCH: grid density {ref_density:.4f}")
            for dt in peer_dtypes:
                dtype = DTYPES[dt]
                torch.manual_seed(0)
                q, k, v, dout = (torch.randn(1, args.heads, T, D, device=device, dtype=dtype) for _ in range(4))
                peers = [("sdpa_flash", "causal", sdpa_with("flash")), ("sdpa_cudnn", "causal", sdpa_with("cudnn"))]
                if dt == "fp32":
                    peers.append(("sdpa_efficient", "causal", sdpa_with("efficient")))
                for name in layouts:
                    mask = block_mask_of(grids[name], T, device, exact_mod=not args.flex_compile)
                    peers.append(("flex", name, lambda a, b, c, m=mask: flex(a, b, c, block_mask=m)))
                for impl, name, fn in peers:
                    density = grids[name].sum().item() / grids[name].numel()
                    for p in passes:
                        key = (impl, dt, D, name, p)
                        need = projected_s(history, key, T, 30.0 if impl == "flex" else 2.0)
                        row = dict(impl=impl, dtype=dt, H=args.heads, D=D, T=T, layout=name,
                                   block_density=f"{density:.4f}", **{"pass": p})
                        if need > clock.left():
                            out.row(**row, note=f"skipped: projected {need:.0f} s > {clock.left():.0f} s left")
                            continue
                        try:
                            ms, reps = timed_pass(fn, q, k, v, dout, p, args.reps, device, clock)
                        except Exception as e:  # a backend that does not take this shape/dtype/device
                            text = str(e).strip().splitlines()
                            out.row(**row, note=f"n/a: {type(e).__name__}: {text[0][:160] if text else ''}")
                            continue
                        history[key] = (T, ms)
                        out.row(**row, ms=f"{ms:.3f}", reps=reps)
                del q, k, v, dout
    out.comment(f"done with {clock.left():.0f} s of the budget left; {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
