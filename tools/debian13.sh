#!/usr/bin/env bash
# attnlab against LibTorch 2.6: Debian 13 ("trixie") packages in a debootstrap chroot, kept
# in a cache folder outside the checkout and reused when present. The checkout is bind-mounted
# at /attnlab inside; the build folder and ccache live in the chroot.
#
#   tools/debian13.sh              create or reuse the chroot, configure, build, run every test
#   tools/debian13.sh build        configure and build only
#   tools/debian13.sh run CMD...   run CMD in the chroot, in the checkout (e.g. a sweep with
#                                  /root/build/bin/attnlab); the build is not redone
#   tools/debian13.sh peers        also install what compiled FlexAttention needs (tools/flex_peer.py,
#                                  tools/python_bench.py) and exit; python3-torch is always there
#   tools/debian13.sh unmount      unmount every bind (before deleting the cache folder: rm -rf
#                                  of a chroot with live binds would reach /dev and the checkout)
#   tools/debian13.sh cuda [MODE]  the same modes in a second chroot with the CUDA LibTorch
#                                  (libtorch-cuda-dev, contrib) and nvcc 12.4 (nvidia-cuda-toolkit,
#                                  non-free): configured with ATTNLAB_CUDA=ON for sm_80 and sm_90;
#                                  without a GPU the CUDA tests compile and report skipped
#   tools/debian13.sh cuda kernels only the CUDA targets (kernels, test_kernels_cuda, bench) and
#                                  test_kernels_cuda: what CI runs (a whole CUDA build is too slow)
#   ATTNLAB_DEBIAN13_ROOT=DIR      where the chroot lives (default ~/.cache/attnlab/debian13,
#                                  ~/.cache/attnlab/debian13-cuda for the cuda variant)
#   ATTNLAB_DEBIAN13_MIRROR=URL    Debian mirror (default: the host's own apt source)
#
# Why a chroot: Debian 12 has LibTorch 1.13, whose CPU SDPA is the composite math path;
# Debian 13's 2.6 runs a real flash kernel. Installing trixie packages on the host would
# replace its glibc and libstdc++. Needs root (debootstrap, mount, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
# The CUDA variant lives in its own chroot: libtorch-cuda-dev and libtorch-dev conflict.
variant=cpu
if [ "${1:-}" = cuda ]; then variant=cuda; shift; fi
suffix=$([ "$variant" = cuda ] && echo -cuda || true)
root=${ATTNLAB_DEBIAN13_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/attnlab/debian13$suffix}
mode=${1:-test}
[ $# -gt 0 ] && shift

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "[debian13] $*"; }

# Bump when the package list changes, so an older chroot gets the new packages.
recipe=4
# python3-torch (2.6, the same source package as libtorch-dev) and pandas: the Python
# package's tests (python/tests) load the op library into it.
packages=(
  libtorch-dev cmake ninja-build g++ ccache pkg-config git
  libboost-dev libboost-filesystem-dev libtomlplusplus-dev libsqlitecpp-dev libsqlite3-dev sqlite3
  libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev libcli11-dev libopenblas0-openmp
  gnuplot-nox libsleef-dev nodejs slurm-wlm munge procps
  python3-torch python3-numpy python3-pandas
)
# Compiled FlexAttention (tools/flex_peer.py, tools/python_bench.py) also needs these.
peer_packages=(python3-torch python3-numpy python3-dev python3-setuptools)
cmake_cuda=()
if [ "$variant" = cuda ]; then
  recipe=cuda-2
  # The CUDA LibTorch for the CPU one, and no Python: the Python package's tests run in the CPU
  # chroot (python3-torch there; python3-torch-cuda is what `cuda peers` adds here).
  cuda_packages=()
  for p in "${packages[@]}"; do
    case $p in
      python3-*) ;;
      libtorch-dev) cuda_packages+=(libtorch-cuda-dev) ;;
      *) cuda_packages+=("$p") ;;
    esac
  done
  packages=("${cuda_packages[@]}" nvidia-cuda-toolkit)
  peer_packages=("${peer_packages[@]/#python3-torch/python3-torch-cuda}")
  # Two architectures, A100 and H100/H200: nvcc compiles the .cu once for each.
  cmake_cuda=(-DATTNLAB_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=80;90" -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi

mirror() {
  if [ -n "${ATTNLAB_DEBIAN13_MIRROR:-}" ]; then echo "$ATTNLAB_DEBIAN13_MIRROR"; return; fi
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# Binds are shared by concurrent invocations (a sweep in one shell, a build in another): a
# count under a lock mounts them for the first user and unmounts them after the last.
binds=(proc sys dev dev/pts dev/shm attnlab)
using=0
with_lock() { ( flock 9; "$@" ) 9>"$root.lock"; }
bind_up() {
  local n
  n=$(cat "$root.users" 2>/dev/null || echo 0)
  if [ "$n" -le 0 ] || ! mountpoint -q "$root/proc"; then
    for m in "${binds[@]}"; do
      mkdir -p "$root/$m"
      mountpoint -q "$root/$m" && continue
      if [ "$m" = attnlab ]; then as_root mount --bind "$checkout" "$root/$m"
      elif [ "$m" = sys ]; then
        # Recursive, so /sys/fs/cgroup is there too (slurmd 24.11 refuses to start without it),
        # and a slave, so that nothing unmounted inside reaches the host's own mounts.
        as_root mount --rbind /sys "$root/sys"
        as_root mount --make-rslave "$root/sys"
      else as_root mount --bind "/$m" "$root/$m"; fi
    done
    n=0
  fi
  echo $((n + 1)) > "$root.users"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}
bind_down() {
  local n i
  n=$(( $(cat "$root.users" 2>/dev/null || echo 1) - 1 ))
  if [ "$n" -le 0 ] || [ "${1:-}" = all ]; then
    for ((i = ${#binds[@]} - 1; i >= 0; i--)); do
      mountpoint -q "$root/${binds[$i]}" && as_root umount -l "$root/${binds[$i]}"
    done
    n=0
  fi
  echo "$n" > "$root.users"
}
mount_binds() { if [ "$using" = 0 ]; then with_lock bind_up; using=1; fi; }
unmount_binds() { if [ "$using" = 1 ]; then with_lock bind_down; using=0; fi; }
trap unmount_binds EXIT

inside() {
  as_root chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive CCACHE_DIR=/root/.ccache \
    ${OMP_NUM_THREADS:+OMP_NUM_THREADS=$OMP_NUM_THREADS} "$@"
}

# libtorch_cuda.so (and libtorch_python.so) need libcudnn.so.9 to link and load, bound at load
# time (BIND_NOW). Without the real one (see create), a stand-in is built here: every cuDNN
# function those libraries import, under the same version node, each returning
# CUDNN_STATUS_NOT_INITIALIZED (1001). Torch reaches cuDNN only for tensors on a GPU, which
# the machines that run this chroot have not; a GPU run uses its own PyTorch
# (tools/gpu_check.sh), never this chroot.
cudnn_stand_in() {
  inside sh -c 'set -e
    ldconfig -p | grep -q "libcudnn.so.9 " && ! [ -e /etc/ld.so.conf.d/attnlab-cudnn-stand-in.conf ] && exit 0
    dir=/usr/local/lib/attnlab-cudnn-stand-in; mkdir -p $dir; cd $dir
    for lib in /usr/lib/x86_64-linux-gnu/libtorch_cuda.so /usr/lib/x86_64-linux-gnu/libtorch_python.so; do
      [ -e $lib ] && objdump -T $lib | awk "/\*UND\*/ && /\(libcudnn.so.9\)/ {print \$NF}"
    done | sort -u > symbols.txt
    { echo "/* attnlab: cuDNN stand-in for a chroot with no GPU (tools/debian13.sh cuda). */"
      sed "s/.*/int &(void) { return 1001; }/" symbols.txt; } > stand_in.c
    echo "libcudnn.so.9 { global: *; };" > version.map
    gcc -shared -fPIC -Wl,-soname,libcudnn.so.9 -Wl,--version-script=version.map -o libcudnn.so.9 stand_in.c
    ln -sf libcudnn.so.9 libcudnn.so
    echo $dir > /etc/ld.so.conf.d/attnlab-cudnn-stand-in.conf; ldconfig
    echo "[debian13] cuDNN stand-in: $(wc -l < symbols.txt) functions in $dir"'
}

create() {
  if [ -f "$root/.attnlab-recipe" ] && [ "$(cat "$root/.attnlab-recipe")" = "$recipe" ]; then return; fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  if [ ! -x "$root/usr/bin/apt-get" ]; then
    local url start
    url=$(mirror)
    say "debootstrap trixie into $root from $url (about 1.5 min)"
    start=$(date +%s)
    # Into a fresh folder that nothing is ever mounted in (an interrupted run leaves only
    # that one to delete), then moved into place; never rm -rf a folder that had binds.
    as_root rm -rf "$root.partial"
    as_root mkdir -p "$(dirname "$root")"
    as_root debootstrap --variant=minbase trixie "$root.partial" "$url" >/dev/null
    if [ -d "$root" ]; then as_root rmdir "$root" || { say "$root exists and is not a chroot: move it away"; exit 1; }; fi
    as_root mv "$root.partial" "$root"
    say "debootstrap done in $(( $(date +%s) - start )) s"
  fi
  mount_binds
  if [ "$variant" = cuda ]; then
    # libtorch-cuda-dev is in contrib, nvidia-cuda-toolkit in non-free.
    echo "deb $(mirror) trixie main contrib non-free non-free-firmware" |
      as_root tee "$root/etc/apt/sources.list" >/dev/null
    # libtorch-cuda-2.6 depends on nvidia-cudnn, an installer whose postinst downloads cuDNN
    # from NVIDIA once its licence is agreed to; no such download is possible here, and
    # without a GPU cuDNN is never called. Declining keeps the postinst from failing; the
    # link-time stand-in for libcudnn.so.9 is made below.
    echo "nvidia-cudnn nvidia-cudnn/question select I Decline" | inside debconf-set-selections
    say "installing the CUDA LibTorch 2.6, nvcc 12.4 and the build packages (about 2.8 GB)"
  else
    say "installing LibTorch 2.6 and the build packages inside (about 1 min)"
  fi
  inside apt-get update -qq
  inside apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # LibTorch's GEMMs go through libblas.so.3: OpenBLAS (OpenMP), as on the host.
  inside sh -c 'for n in libblas.so.3 liblapack.so.3; do
      alt=$n-x86_64-linux-gnu; want=/usr/lib/x86_64-linux-gnu/openblas-openmp/$n
      [ -e "$want" ] && update-alternatives --set "$alt" "$want" >/dev/null; done; true'
  [ "$variant" = cuda ] && cudnn_stand_in
  inside apt-get clean
  echo "$recipe" | as_root tee "$root/.attnlab-recipe" >/dev/null
}

if [ "$mode" = unmount ]; then
  [ -d "$root" ] && with_lock bind_down all
  exit 0
fi
create
mount_binds
inside dpkg-query -W -f='[debian13] ${Package} ${Version}\n' "$([ "$variant" = cuda ] && echo libtorch-cuda-dev || echo libtorch-dev)"

case "$mode" in
  peers)
    # dpkg-query -W succeeds for a package dpkg merely knows of ("un"): ask for installed.
    if [ "$(inside dpkg-query -W -f='${Status}\n' "${peer_packages[@]}" 2>/dev/null | grep -c 'install ok installed')" \
         != "${#peer_packages[@]}" ]; then
      say "installing ${peer_packages[0]} and the Python peers (python3-torch: about 270 MB, 2.5 min)"
      inside apt-get install -y -qq --no-install-recommends "${peer_packages[@]}" >/dev/null
      [ "$variant" = cuda ] && cudnn_stand_in
      inside apt-get clean
    fi
    exit 0 ;;
  run)
    inside sh -c 'cd /attnlab && exec "$@"' sh "$@"
    exit $? ;;
  kernels)
    # The CUDA targets alone (what CI builds, see .ci/run): the kernels library with its CUDA
    # code, the CUDA tests (they compile, and report skipped without a GPU) and the bench.
    [ "$variant" = cuda ] || { echo "kernels: only with the cuda variant" >&2; exit 2; }
    start=$(date +%s)
    inside sh -c 'cd /attnlab && cmake -S . -B /root/build-kernels -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DATTNLAB_KERNELS_ONLY=ON "$@" >/dev/null &&
      cmake --build /root/build-kernels -j "$(nproc)" --target attnlab_kernels test_kernels_cuda \
        attnlab_kernel_bench' sh "${cmake_cuda[@]}"
    say "CUDA targets built in $(( $(date +%s) - start )) s"
    # -V: the log shows each case's "attnlab-skip: no CUDA device" line, not only "Skipped".
    inside sh -c 'ctest --test-dir /root/build-kernels -V -R test_kernels_cuda'
    exit $? ;;
  build|test) ;;
  *) echo "usage: tools/debian13.sh [cuda] [test|build|kernels|run CMD...|peers|unmount]" >&2; exit 2 ;;
esac

# The npm data (tokenizer files, Brown corpus) is shared with the host checkout.
ATTNLAB_SKIP_APT=1 bash tools/setup.sh >/dev/null
start=$(date +%s)
inside sh -c 'cd /attnlab && cmake -S . -B /root/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache "$@" >/dev/null &&
  cmake --build /root/build -j "$(nproc)"' sh ${cmake_cuda[@]+"${cmake_cuda[@]}"}
say "build done in $(( $(date +%s) - start )) s"
[ "$mode" = build ] && exit 0
start=$(date +%s)
inside sh -c 'cd /attnlab && ctest --test-dir /root/build --output-on-failure -j "$(nproc)"'
say "tests done in $(( $(date +%s) - start )) s"
