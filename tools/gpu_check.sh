#!/usr/bin/env bash
# The CUDA checks, for a machine with a GPU and PyTorch but none of attnlab's other packages
# (a lent GPU machine: nothing can be installed there). Builds the kernels alone
# (ATTNLAB_KERNELS_ONLY) against that PyTorch's LibTorch with the CUDA kernels, then runs
#   test_kernels              the CPU kernel tests, on that LibTorch (a 2.x one there)
#   test_kernels_cuda [cuda]  the CUDA kernels against the float64 reference, on the GPU
#   attnlab_kernel_bench      kernel vs LibTorch's attention on the GPU, by block density
# Logs and the bench table go to $OUT (default build-gpu/out).
# Needs a Catch2 v2 header: set ATTNLAB_CATCH2_INCLUDE to a folder holding catch2/catch.hpp
# (default /usr/include). To run it through the device tool from this machine:
#   mkdir -p .gpu/catch2 && cp /usr/include/catch2/catch.hpp .gpu/catch2/ && echo /.gpu/ >> .git/info/exclude
#   run(command="ATTNLAB_CATCH2_INCLUDE=$PWD/.gpu bash tools/gpu_check.sh", carry=[".gpu"])
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/out}
mkdir -p "$out"
# nvcc for CMake's CUDA language and for LibTorch's own CUDA lookup.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_KERNELS_ONLY=ON \
  -DATTNLAB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$prefix" \
  -DATTNLAB_CATCH2_INCLUDE="${ATTNLAB_CATCH2_INCLUDE:-/usr/include}" 2>&1 | tee "$out/configure.log"
cmake --build build-gpu -j "$(nproc)" 2>&1 | tee "$out/build.log"
status=0
build-gpu/bin/test_kernels 2>&1 | tee "$out/test_kernels.log" || status=1
build-gpu/bin/test_kernels_cuda "[cuda]" 2>&1 | tee "$out/test_kernels_cuda.log" || status=1
build-gpu/bin/attnlab_kernel_bench --device cuda --seq 1024,2048,4096,8192,16384 --reps 20 \
  | tee "$out/kernel_bench_cuda.tsv" || status=1
exit $status
