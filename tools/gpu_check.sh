#!/usr/bin/env bash
# The CUDA checks, for a lent GPU machine: PyTorch (2.11 + CUDA 13 there) and nvcc, none of
# attnlab's other packages, no internet, minutes of GPU time. In at most ~8 minutes
# (ATTNLAB_GPU_CHECK_LIMIT_S, default 470 s, every step is cut to what is left):
#   1. build the kernels alone (ATTNLAB_KERNELS_ONLY) against that PyTorch's LibTorch, for
#      the GPU's own architecture (nvidia-smi's compute capability; 90 if unknown)
#   2. test_kernels_cuda "[cuda]": the CUDA kernels against the float64 reference, forward
#      and backward, odd sizes, per-head layouts (ATTNLAB_REQUIRE_CUDA=1: no GPU = failure)
#   3. compute-sanitizer (memcheck) on the small case, test_kernels_cuda "[small]"
#   4. tools/gpu_bench.py: the kernel against SDPA (flash, cuDNN) and compiled FlexAttention
#      with a BlockMask of the same layout; B=1 H=16 D=64,128 T=4096..32768; causal, 0.25
#      and 0.1 block density; fwd and fwd+bwd; with the budget left
# Everything lands in $OUT (default build-gpu/out), 7 files: env.txt build.log tests.log
# sanitizer.log bench.tsv bench.log summary.txt. Exit status 0 only if every step passed.
#
# Needs Catch2: v2's header (ATTNLAB_CATCH2_INCLUDE names a folder holding catch2/catch.hpp;
# else /usr/include) or an installed v3. Through the device tool from the development machine:
#   mkdir -p .gpu/catch2 && cp /usr/include/catch2/catch.hpp .gpu/catch2/    (.gpu/ is git-ignored)
#   run(command="ATTNLAB_CATCH2_INCLUDE=$PWD/.gpu bash tools/gpu_check.sh", carry=[".gpu"], timeout_s=540)
# Dry run of every CPU step (no GPU; e.g. in tools/debian13.sh cuda, after its `peers`):
#   tools/gpu_check.sh --dry-run    CUDA tests must report skipped, sanitizer is skipped, the
#                                   bench runs its small CPU mode (tools/gpu_bench.py --dry-run)
set -uo pipefail
cd "$(dirname "$0")/.."
dry_run=0
[ "${1:-}" = --dry-run ] && dry_run=1
out=${OUT:-build-gpu/out}
build=${ATTNLAB_GPU_BUILD_DIR:-build-gpu}
limit=${ATTNLAB_GPU_CHECK_LIMIT_S:-470}
mkdir -p "$out"
summary=$out/summary.txt
: > "$summary"
status=0
left() { echo $((limit - SECONDS)); }
note() { echo "[gpu_check] $*" | tee -a "$summary"; }
# step NAME LOG SECONDS_CAP COMMAND...: runs under the smaller of its cap and the time left.
step() {
  local name=$1 log=$2 cap=$3 start=$SECONDS rc t
  shift 3
  t=$(left)
  [ "$cap" -lt "$t" ] && t=$cap
  if [ "$t" -le 5 ]; then note "$name: not run, time is up"; status=1; return 1; fi
  { echo "\$ $*"; timeout "$t" "$@"; } >>"$log" 2>&1
  rc=$?
  note "$name: rc $rc in $((SECONDS - start)) s$([ $rc = 124 ] && echo " (cut at $t s)")"
  [ $rc = 0 ] || status=1
  return $rc
}

# nvcc for CMake's CUDA language and for LibTorch's own CUDA lookup.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
prefix=${ATTNLAB_TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
[ -n "$arch" ] || arch=90
{
  date -u; uname -a
  nvidia-smi 2>&1 || echo "nvidia-smi: none"
  nvcc --version 2>&1 | tail -n 2
  python3 -c 'import torch
gpu = torch.cuda.is_available()
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name() if gpu else None,
      "cudnn", torch.backends.cudnn.version() if gpu else "not asked (no GPU)")' 2>&1
  echo "cmake prefix $prefix; CUDA architecture $arch; compute-sanitizer ${sanitizer:-not found}"
  echo "nproc $(nproc)"
} > "$out/env.txt" 2>&1
note "dry run $dry_run, limit $limit s, sm_$arch"

launchers=()  # ccache where there is one (a dry run in the chroot); the GPU machine has none
command -v ccache >/dev/null 2>&1 &&
  launchers=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
build_ok=1
step configure "$out/build.log" 120 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DATTNLAB_KERNELS_ONLY=ON -DATTNLAB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DCMAKE_PREFIX_PATH="$prefix" ${ATTNLAB_CATCH2_INCLUDE:+-DATTNLAB_CATCH2_INCLUDE="$ATTNLAB_CATCH2_INCLUDE"} \
  ${launchers[@]+"${launchers[@]}"} ${ATTNLAB_GPU_CMAKE_ARGS:-} || build_ok=0
[ $build_ok = 1 ] && { step build "$out/build.log" 300 cmake --build "$build" -j "$(nproc)" \
  --target attnlab_kernels test_kernels_cuda attnlab_kernel_bench || build_ok=0; }

if [ $build_ok = 1 ]; then
  if [ $dry_run = 1 ]; then
    # Catch2 v3 exits 4 when every case skipped; v2 exits 0. Either way each case must say why.
    { echo "\$ test_kernels_cuda [cuda]"; timeout 120 "$build/bin/test_kernels_cuda" "[cuda]"; } >>"$out/tests.log" 2>&1
    rc=$?
    if { [ $rc = 0 ] || [ $rc = 4 ]; } && [ "$(grep -c "attnlab-skip:" "$out/tests.log")" -ge 4 ]; then
      note "CUDA tests (no GPU): rc $rc, every case skipped with its message, as it should"
    else
      note "CUDA tests (no GPU): rc $rc, not skipped as they should be (see tests.log)"; status=1
    fi
    note "compute-sanitizer: not run in a dry run (${sanitizer:-not found})"
    echo "dry run: no GPU, compute-sanitizer not run" > "$out/sanitizer.log"
    bench=(--dry-run --device cpu)
  else
    ATTNLAB_REQUIRE_CUDA=1 step "CUDA tests" "$out/tests.log" 150 "$build/bin/test_kernels_cuda" "[cuda]"
    if [ -n "$sanitizer" ]; then
      ATTNLAB_REQUIRE_CUDA=1 step "compute-sanitizer memcheck" "$out/sanitizer.log" 120 "$sanitizer" \
        --tool memcheck --error-exitcode 1 "$build/bin/test_kernels_cuda" "[small]"
    else
      note "compute-sanitizer: not found (PATH, /usr/local/cuda/bin)"; status=1
    fi
    bench=(--device cuda)
  fi
  # The bench gets what is left, less a margin for Python's start and the summary.
  budget=$(( $(left) - 25 ))
  if [ "$budget" -gt 10 ]; then
    step bench "$out/bench.log" "$((budget + 15))" python3 tools/gpu_bench.py "${bench[@]}" \
      --bench-bin "$build/bin/attnlab_kernel_bench" --out "$out/bench.tsv" --budget-s "$budget"
  else
    note "bench: not run, $budget s left"; status=1
  fi
fi
note "total $SECONDS s, status $status"
exit $status
