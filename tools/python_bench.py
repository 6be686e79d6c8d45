#!/usr/bin/env python3
"""attnlab from Python, side by side in one process: the Python call's overhead over the same
kernel called from C++, and the CPU peers.

Methods, every one on the same q, k, v (B=1, H=8, D=64, fp32, 2 threads: the kernel sweep's
shapes), at T in --seq (default 2048 4096), masks causal and sink:4|window:256, passes fwd
(under torch.no_grad) and fwd+bwd (out.backward(dout)):
  attnlab  attnlab.attention(q, k, v, mask)  from Python (mask: a bool [T, T] tensor; its
           layout is built once and cached, the build time is printed separately)
  c++      torch.ops.attnlab._time_cxx: the same kernels::block_sparse_attention call (and
           torch::autograd::backward) timed by a C++ loop inside one op call: no Python, no
           dispatcher per call
  sdpa     F.scaled_dot_product_attention (is_causal=True; the sink+window mask as a bool
           attn_mask); 2.6 runs its CPU flash kernel
  flex     torch.compile(flex_attention) with the same mask as a BlockMask (inference only on
           CPU in 2.6: its fwd+bwd is attempted once and the error printed)
Timing: one warm-up call each (flex: the compile), then --reps rounds; in each round every
method runs once, in turn (interleaved, so load drifts hit all alike; the order rotates from
round to round, since the call after SDPA's large frees pays fresh page faults). Reported: median ms
and the p10-p90 spread of the rounds; overhead = attnlab median / c++ median - 1, with the
same ratio from the minima (the least disturbed calls), and per round (median, p10…p90).
On a shared 2-vCPU machine that spread (±10-20%) is far wider than the Python call's cost, so
the fixed cost per call is also measured where the kernel is tiny (--overhead-T, default 64):
--overhead-calls single calls per side, alternating (the c++ side: one _time_cxx call of one
repetition, timed from Python around the op, so it pays one dispatch too); the least disturbed
calls (min, p10) of each side differ by what Python and the wrapper's checks add, whatever T
is; that difference is then divided by the C++ median at each T of the table.

Run (Debian 13 chroot with python3-torch 2.6; see tools/debian13.sh):
  tools/debian13.sh build && tools/debian13.sh peers
  tools/debian13.sh run env PYTHONPATH=python ATTNLAB_BUILD_DIR=/root/build python3 tools/python_bench.py
Compiled flex needs the Debian 13 fixes of tools/flex_peer.py (a g++ wrapper adding
-Wl,--no-as-needed, a fresh inductor cache); they are applied here before torch is imported.
"""
import argparse, atexit, os, platform, re, shutil, statistics, sys, tempfile, time

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--seq", type=int, nargs="+", default=[2048, 4096])
ap.add_argument("--reps", type=int, default=9, help="interleaved rounds (attnlab, c++, sdpa)")
ap.add_argument("--flex-reps", type=int, default=3, help="rounds that include flex (it is slow)")
ap.add_argument("--no-flex", action="store_true")
ap.add_argument("--overhead-T", type=int, default=64, help="T of the fixed-cost measurement")
ap.add_argument("--overhead-calls", type=int, default=1000, help="calls per side (fixed cost)")
args = ap.parse_args()

THREADS, B, H, D, SINK, WINDOW = 2, 1, 8, 64, 4, 256
tmp = tempfile.mkdtemp(prefix="python_bench_")
atexit.register(shutil.rmtree, tmp, True)
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
os.environ["OMP_NUM_THREADS"] = str(THREADS)
real = shutil.which("g++") or "/usr/bin/g++"
wrapper = os.path.join(tmp, "bin", "g++")  # inductor checks the name
os.makedirs(os.path.dirname(wrapper))
with open(wrapper, "w") as f:
    f.write(f'#!/bin/sh\nexec {real} -Wl,--no-as-needed "$@"\n')
os.chmod(wrapper, 0o755)
os.environ["CXX"] = wrapper

import torch
import torch.nn.functional as F

import attnlab

flex = None
if not args.no_flex:
    try:
        import torch._inductor.config as inductor_config
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        inductor_config.cpp.cxx = (wrapper,)
        torch._dynamo.config.cache_size_limit = 64
        flex = torch.compile(flex_attention, dynamic=False)
    except ImportError as e:
        print(f"# no FlexAttention in torch {torch.__version__}: {e}")
torch.set_num_threads(THREADS)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def sdpa(q, k, v, mask=None, causal=False):
    """PyTorch's own attention: 2.x's public SDPA, or 1.13's private one (math path)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    return F._scaled_dot_product_attention(q, k, v, mask, 0.0, False, causal)[0]


def masks(T):
    t = torch.arange(T)
    causal = t[None, :] <= t[:, None]
    window = causal & ((t[None, :] < SINK) | (t[:, None] - t[None, :] < WINDOW))
    return {"causal": (causal, lambda b, h, q, kv: kv <= q),
            "sink4+win256": (window, lambda b, h, q, kv: (kv <= q) & ((kv < SINK) | (q - kv < WINDOW)))}


def short(e):
    """Exception type, its first line, and the inner error dynamo wraps (as tools/flex_peer.py)."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    inner = [l for l in lines[1:] if re.match(r"^[\w.]+(Error|Exception): ", l)]
    return (f"{type(e).__name__}: {lines[0] if lines else ''}" + (f" {inner[0]}" if inner else ""))[:300]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, cpu: {cpu_model()}, "
      f"B={B} H={H} D={D} fp32, {args.reps} interleaved rounds (flex {args.flex_reps})")
print("| T | mask | pass | attnlab ms | c++ ms | overhead: medians / minima / per-round median (p10…p90) | SDPA ms | flex ms | SDPA / attnlab |")
print("|---|---|---|---|---|---|---|---|---|")
notes = []
flex_bwd_error = None
cxx_median = {"fwd": {}, "fwd+bwd": {}}  # causal, per T: the denominators of the fixed cost
for T in args.seq:
    torch.manual_seed(0)
    base = [torch.randn(B, H, T, D) for _ in range(3)]
    dout = torch.randn(B, H, T, D)
    for mask_name, (mask, mod) in masks(T).items():
        t0 = time.perf_counter()
        lay = attnlab.layout(mask)
        notes.append(f"T={T} {mask_name}: layout from the bool mask {1e3 * (time.perf_counter() - t0):.1f} ms "
                     f"(once; cached), block density {lay.block_density():.3f}")
        bm = create_block_mask(mod, None, None, T, T, device="cpu") if flex else None
        for pass_ in ("fwd", "fwd+bwd"):
            q, k, v = (x.clone().requires_grad_(pass_ == "fwd+bwd") for x in base)
            backward = pass_ == "fwd+bwd"

            def run_py():
                out = attnlab.attention(q, k, v, mask)
                if backward:
                    out.backward(dout)

            def run_cxx():
                return torch.ops.attnlab._time_cxx(q, k, v, *lay.tensors(), D ** -0.5,
                                                   dout if backward else None, 1)[0]

            def run_sdpa():
                out = sdpa(q, k, v, causal=True) if mask_name == "causal" else sdpa(q, k, v, mask)
                if backward:
                    out.backward(dout)

            def run_flex():
                out = flex(q, k, v, block_mask=bm)
                if backward:
                    out.backward(dout)

            methods = {"attnlab": run_py, "c++": None, "sdpa": run_sdpa}
            use_flex = flex is not None
            times = {m: [] for m in ("attnlab", "c++", "sdpa", "flex")}
            ctx = torch.no_grad() if not backward else torch.enable_grad()
            with ctx:
                run_py(), run_cxx(), run_sdpa()  # warm-up
                if use_flex and backward and flex_bwd_error:
                    use_flex = False  # failed once already: the same error every time
                if use_flex:
                    try:
                        run_flex()  # compiles
                    except Exception as e:
                        notes.append(f"T={T} {mask_name} {pass_}: compiled flex failed: {short(e)}")
                        use_flex = False
                        flex_bwd_error = flex_bwd_error or (backward and short(e))
                if backward and mask_name == "causal" and T == args.seq[0]:
                    ref = sdpa(base[0], base[1], base[2], causal=True)
                    err = (attnlab.attention(base[0], base[1], base[2], mask) - ref).abs().max().item()
                    notes.append(f"T={T}: max |attnlab - sdpa| (causal, fwd) = {err:.1e}")
                def timed(fn):
                    t0 = time.perf_counter()
                    fn()
                    return 1e3 * (time.perf_counter() - t0)

                steps = {"attnlab": lambda: timed(run_py), "c++": run_cxx, "sdpa": lambda: timed(run_sdpa),
                         "flex": lambda: timed(run_flex)}
                for r in range(args.reps):
                    # The order rotates every round: whoever runs right after SDPA (which frees
                    # large buffers) pays fresh page faults, so no method may always be that one.
                    order = [m for m in steps if m != "flex" or (use_flex and r < args.flex_reps)]
                    for m in order[r % len(order):] + order[:r % len(order)]:
                        times[m].append(steps[m]())
            med = {m: statistics.median(x) if x else None for m, x in times.items()}
            if mask_name == "causal":
                cxx_median[pass_][T] = med["c++"]
            per_round = [a / c - 1 for a, c in zip(times["attnlab"], times["c++"])]
            over = med["attnlab"] / med["c++"] - 1
            flex_cell = f"{med['flex']:.1f}" if med["flex"] else ("n/a (fails)" if flex else "n/a")

            def cell(m):
                return f"{med[m]:.1f} ({pct(times[m], .1):.1f}–{pct(times[m], .9):.1f})"

            print(f"| {T} | {mask_name} | {pass_} | {cell('attnlab')} | {cell('c++')} | "
                  f"{100 * over:+.1f}% / {100 * (min(times['attnlab']) / min(times['c++']) - 1):+.1f}% / "
                  f"{100 * statistics.median(per_round):+.1f}% ({100 * pct(per_round, .1):+.1f}…{100 * pct(per_round, .9):+.1f}%) | "
                  f"{cell('sdpa')} | {flex_cell} | {med['sdpa'] / med['attnlab']:.2f}× |", flush=True)
for n in notes:
    print(f"# {n}")

# Fixed cost per call: tiny T, single calls alternating, the least disturbed (min, p10) of each.
T, N = args.overhead_T, args.overhead_calls
torch.manual_seed(0)
base = [torch.randn(B, H, T, D) for _ in range(3)]
dout = torch.randn(B, H, T, D)
mask = masks(T)["causal"][0]
lay = attnlab.layout(mask)
print(f"# fixed cost per call at T={T}: {N} single calls each, alternating; min and p10 of each side")
for pass_ in ("fwd", "fwd+bwd"):
    backward = pass_ == "fwd+bwd"
    q, k, v = (x.clone().requires_grad_(backward) for x in base)
    py, cxx = [], []
    with (torch.enable_grad() if backward else torch.no_grad()):
        for i in range(N):
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if side == 0:
                    out = attnlab.attention(q, k, v, mask)
                    if backward:
                        out.backward(dout)
                else:
                    torch.ops.attnlab._time_cxx(q, k, v, *lay.tensors(), D ** -0.5, dout if backward else None, 1)
                (py if side == 0 else cxx).append((time.perf_counter() - t0) * 1e6)
    for label, stat in (("min", min), ("p10", lambda xs: pct(xs, .1))):
        fixed = stat(py) - stat(cxx)
        cells = ", ".join(f"T={t}: {100 * fixed / (1e3 * ms):+.2f}%" for t, ms in sorted(cxx_median[pass_].items()))
        print(f"# {pass_} {label}: python {stat(py):.1f} us/call, c++ {stat(cxx):.1f} us/call; difference "
              f"{fixed:+.1f} us/call = of the c++ causal median {cells}")
