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
#   ATTNLAB_DEBIAN13_ROOT=DIR      where the chroot lives (default ~/.cache/attnlab/debian13)
#   ATTNLAB_DEBIAN13_MIRROR=URL    Debian mirror (default: the host's own apt source)
#
# Why a chroot: Debian 12 has LibTorch 1.13, whose CPU SDPA is the composite math path;
# Debian 13's 2.6 runs a real flash kernel. Installing trixie packages on the host would
# replace its glibc and libstdc++. Needs root (debootstrap, mount, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
root=${ATTNLAB_DEBIAN13_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/attnlab/debian13}
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
  say "installing LibTorch 2.6 and the build packages inside (about 1 min)"
  inside apt-get update -qq
  inside apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # LibTorch's GEMMs go through libblas.so.3: OpenBLAS (OpenMP), as on the host.
  inside sh -c 'for n in libblas.so.3 liblapack.so.3; do
      alt=$n-x86_64-linux-gnu; want=/usr/lib/x86_64-linux-gnu/openblas-openmp/$n
      [ -e "$want" ] && update-alternatives --set "$alt" "$want" >/dev/null; done; true'
  inside apt-get clean
  echo "$recipe" | as_root tee "$root/.attnlab-recipe" >/dev/null
}

if [ "$mode" = unmount ]; then
  [ -d "$root" ] && with_lock bind_down all
  exit 0
fi
create
mount_binds
inside dpkg-query -W -f='[debian13] LibTorch ${Version}\n' libtorch-dev

case "$mode" in
  peers)
    # dpkg-query -W succeeds for a package dpkg merely knows of ("un"): ask for installed.
    if [ "$(inside dpkg-query -W -f='${Status}\n' "${peer_packages[@]}" 2>/dev/null | grep -c 'install ok installed')" \
         != "${#peer_packages[@]}" ]; then
      say "installing python3-torch (about 270 MB, 2.5 min)"
      inside apt-get install -y -qq --no-install-recommends "${peer_packages[@]}" >/dev/null
      inside apt-get clean
    fi
    exit 0 ;;
  run)
    inside sh -c 'cd /attnlab && exec "$@"' sh "$@"
    exit $? ;;
  build|test) ;;
  *) echo "usage: tools/debian13.sh [test|build|run CMD...|peers|unmount]" >&2; exit 2 ;;
esac

# The npm data (tokenizer files, Brown corpus) is shared with the host checkout.
ATTNLAB_SKIP_APT=1 bash tools/setup.sh >/dev/null
start=$(date +%s)
inside sh -c 'cd /attnlab && cmake -S . -B /root/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null && cmake --build /root/build -j "$(nproc)"'
say "build done in $(( $(date +%s) - start )) s"
[ "$mode" = build ] && exit 0
start=$(date +%s)
inside sh -c 'cd /attnlab && ctest --test-dir /root/build --output-on-failure -j "$(nproc)"'
say "tests done in $(( $(date +%s) - start )) s"
