#!/usr/bin/env python3
"""PyTorch 2.6 CPU attention peers, side by side in one process.

Measures the forward pass (torch.no_grad) of
  1. sdpa   torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            (2.6 dispatches this to its CPU flash kernel),
  2. flex   torch.compile'd FlexAttention with a causal BlockMask,
  3. flex   the same with a sink+window BlockMask: key s is kept for query t when
            s <= t and (s < 4 or t - s < 256),
at B=1, H=8, D=64, fp32, 2 threads, T in --seq (default 1024 2048 4096). Each method gets
one warm-up call and then --reps timed calls (default 5); median_ms is their median and
ratio_to_sdpa = sdpa_ms / method_ms. For flex the warm-up call compiles: compile_s is the
time dynamo records for that compile ("_compile.compile_inner"), not the first run.
block_density = 1 - BlockMask.sparsity()/100: the fraction of the mask's 128x128 blocks that
are non-empty, what a block-sparse kernel would visit.
It also tries one forward+backward of compiled flex at T=1024 and prints why it fails
(2.6 compiles flex on CPU for inference only). Exits non-zero only if SDPA fails.

Run (Debian 13 chroot with python3-torch 2.6, see tools/debian13.sh):
  bash tools/debian13.sh run python3 tools/flex_peer.py [--seq 1024 2048] [--reps 5]

Debian 13 pitfalls handled here, before torch is imported:
  * gcc links with --as-needed, so inductor's kernels lose libtorch_cpu/libsleef
    ("undefined symbol: Sleef_expf8_u10", Sleef_expf16_u10 for AVX-512) and its AVX2/AVX-512
    probe fails silently and falls back to scalar code. The script writes a `g++` wrapper that adds
    -Wl,--no-as-needed and points inductor at it: 2.6 reads
    torch._inductor.config.cpp.cxx, whose default is (None, $CXX or "g++") taken when
    the config module is imported; the script sets both. --plain-cxx skips the wrapper.
  * a fresh TORCHINDUCTOR_CACHE_DIR in a temp folder, so a failed probe is not reused.
What it verifies and prints: the ISA inductor's probe picked (pick_vec_isa(); the scalar
fallback shows as INVALID_VEC_ISA), that compiled flex causal matches SDPA, and how many of
the built kernel .so files contain AVX-512 (zmm) instructions (objdump -d). Measured on
2.6.0+debian: with the wrapper the probe picks "avx512 amx_tile" and every flex kernel has
zmm code; with --plain-cxx it reports INVALID_VEC_ISA and flex fails with CppCompileError.
Seen there (busy 2-core Xeon): flex is 25-90x slower than SDPA and sink+window (block
density 0.12 at T=4096) is no faster than causal (0.52): 2.6's CPU flex template visits
every key tile and applies the mask per element. Compile ~5-7 s per shape and mask.
"""
import argparse, atexit, os, platform, re, shutil, statistics, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--seq", type=int, nargs="+", default=[1024, 2048, 4096])
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--plain-cxx", action="store_true", help="no --no-as-needed wrapper (shows the pitfall)")
args = ap.parse_args()

THREADS, B, H, D, SINK, WINDOW = 2, 1, 8, 64, 4, 256
tmp = tempfile.mkdtemp(prefix="flex_peer_")
atexit.register(shutil.rmtree, tmp, True)
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
os.environ["OMP_NUM_THREADS"] = str(THREADS)
if not args.plain_cxx:
    real = shutil.which("g++") or "/usr/bin/g++"
    wrapper = os.path.join(tmp, "bin", "g++")  # the name must match "g++": inductor checks it
    os.makedirs(os.path.dirname(wrapper))
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec {real} -Wl,--no-as-needed "$@"\n')  # before the -l options
    os.chmod(wrapper, 0o755)
    os.environ["CXX"] = wrapper

import torch
import torch._inductor.config as inductor_config
from torch._inductor.cpu_vec_isa import pick_vec_isa
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

if not args.plain_cxx:
    inductor_config.cpp.cxx = (wrapper,)
torch._dynamo.config.cache_size_limit = 64  # one compile per (T, mask)
torch.set_num_threads(THREADS)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def causal(b, h, q, kv):
    return kv <= q


def sink_window(b, h, q, kv):
    return (kv <= q) & ((kv < SINK) | (q - kv < WINDOW))


def timed(fn, reps):
    """One warm-up call (the compile, for flex), then the median ms of reps calls."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def compile_seconds():
    """Total seconds dynamo has spent compiling so far in this process."""
    return sum(torch._dynamo.utils.compilation_time_metrics.get("_compile.compile_inner", []))


def short(e):
    """Exception type plus its first line, and the inner error dynamo wraps (if any)."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    inner = [l for l in lines[1:] if re.match(r"^[\w.]+(Error|Exception): ", l)]
    msg = f"{type(e).__name__}: {lines[0] if lines else ''}" + (f" {inner[0]}" if inner else "")
    return msg[:300]


def vec_evidence():
    """Generated kernels (not inductor's ISA probes) in the cache, and how many of their
    shared objects hold AVX-512 (zmm) instructions, per objdump when it is installed."""
    kernels, zmm = 0, 0
    objdump = shutil.which("objdump")
    for root, _, files in os.walk(os.environ["TORCHINDUCTOR_CACHE_DIR"]):
        for name in files:
            if not name.endswith(".cpp"):
                continue
            path = os.path.join(root, name)
            with open(path, errors="replace") as f:
                if "_chk_kernel()" in f.read():  # inductor's AVX/AMX probes
                    continue
            kernels += 1
            so = path[:-4] + ".so"
            if objdump and os.path.exists(so):
                asm = subprocess.run([objdump, "-d", so], capture_output=True, text=True).stdout
                zmm += "%zmm" in asm
    return kernels, (zmm if objdump else "no objdump")


print(f"# torch {torch.__version__}  threads {torch.get_num_threads()}  cpu: {cpu_model()}")
print(f"# B={B} H={H} D={D} fp32, forward under no_grad, median of {args.reps} after 1 warm-up")
print(f"# inductor cxx: {inductor_config.cpp.cxx}  vec ISA picked: {pick_vec_isa()}")
flex = torch.compile(flex_attention, dynamic=False)
sdpa_failed = False
print("\t".join(["T", "method", "mask", "block_density", "median_ms", "compile_s", "ratio_to_sdpa"]))
for T in args.seq:
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
    with torch.no_grad():
        try:
            sdpa_ms = timed(lambda: torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True), args.reps)
            ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        except Exception as e:
            print(f"{T}\tsdpa\tcausal\t-\tFAILED\t-\t-\t# {short(e)}", flush=True)
            sdpa_failed = True
            continue
        print(f"{T}\tsdpa\tcausal\t-\t{sdpa_ms:.2f}\t-\t1.00", flush=True)
        for name, mod in (("causal", causal), ("sink4+win256", sink_window)):
            bm = create_block_mask(mod, None, None, T, T, device="cpu")
            density = 1 - bm.sparsity() / 100
            try:
                before = compile_seconds()
                ms = timed(lambda: flex(q, k, v, block_mask=bm), args.reps)
                compile_s = compile_seconds() - before
                note = ""
                if name == "causal":  # same mask as SDPA: the outputs must agree
                    err = (flex(q, k, v, block_mask=bm) - ref).abs().max().item()
                    note = f"\t# max |flex - sdpa| = {err:.1e}"
                print(f"{T}\tflex\t{name}\t{density:.3f}\t{ms:.2f}\t{compile_s:.1f}\t"
                      f"{sdpa_ms / ms:.3f}{note}", flush=True)
            except Exception as e:
                print(f"{T}\tflex\t{name}\t{density:.3f}\tFAILED\t-\t-\t# {short(e)}", flush=True)

kernels, zmm = vec_evidence()
print(f"# inductor kernels built: {kernels}, with AVX-512 (zmm) code: {zmm}")

T = 1024
q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
bm = create_block_mask(causal, None, None, T, T, device="cpu")
for lse in (False, True):
    try:
        out = flex(q, k, v, block_mask=bm, return_lse=lse)
        (out[0] if lse else out).sum().backward()
        print(f"# flex fwd+bwd T={T} return_lse={lse}: ran (|dq| {q.grad.norm().item():.3g})")
    except Exception as e:
        print(f"# flex fwd+bwd T={T} return_lse={lse}: FAILED: {short(e)}")

sys.exit(1 if sdpa_failed else 0)
