// Candidate mask library (grammar in attnlab/masks.hpp): parse -> canonical spelling ->
// dense bool [T, T] built with whole-tensor ops -> block layout / densities, all cached per
// (canonical, T[, tile]).
//
//   allowed[t, s] = causal(t, s) AND expression(t, s)        bool [T, T], true = attend
//   element density = allowed.sum() / (T * T)
//   block density   = #tiles holding any allowed element / ceil(T/tile)^2
#include <attnlab/masks.hpp>

#include "sdk/mask_grammar.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace attnlab::masks {
namespace {

using grammar::Atom;
using grammar::Expr;
using grammar::Kind;
using grammar::parse;
using grammar::spell;

[[noreturn]] void fail(const std::string& part, const std::string& why) {
  throw std::invalid_argument(part + ": " + why);
}

// ---------------------------------------------------------------------------------------
// Dense masks, whole-tensor ops only (T up to 8192: a [T, T] bool is 64 MiB; no int64
// [T, T] temporaries).

at::Tensor causal_mask(std::int64_t T) {
  return at::ones({T, T}, at::TensorOptions().dtype(at::kBool)).tril();
}

at::Tensor positions(std::int64_t T) { return at::arange(T, at::TensorOptions().dtype(at::kLong)); }

// splitmix64: one uniform number per (seed, tile row, tile col), independent of T, so a mask
// at T is the top-left corner of the same mask at any larger T.
double tile_uniform(std::uint64_t seed, std::uint64_t i, std::uint64_t j) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + (i << 32) + j + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

at::Tensor random_mask(const Atom& atom, std::int64_t T) {
  const std::int64_t B = atom.a, n = (T + B - 1) / B;
  at::Tensor tiles = at::empty({n, n}, at::TensorOptions().dtype(at::kBool));
  auto acc = tiles.accessor<bool, 2>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      acc[i][j] = i == j || tile_uniform(static_cast<std::uint64_t>(atom.b), i, j) < atom.p;
  const at::Tensor tile_of = at::div(positions(T), B, "floor");
  return tiles.index_select(0, tile_of).index_select(1, tile_of);
}

at::Tensor atom_mask(const Atom& atom, std::int64_t T) {
  const at::Tensor causal = causal_mask(T);
  switch (atom.kind) {
    case Kind::Causal:
      return causal;
    case Kind::Window:
      return causal.triu(-(atom.a - 1));  // t - s <= W - 1
    case Kind::Sink: {
      at::Tensor m = at::zeros({T, T}, causal.options());
      m.narrow(1, 0, std::min(atom.a, T)).fill_(true);
      return m.logical_and_(causal);
    }
    case Kind::Stride: {
      const at::Tensor phase = at::remainder(positions(T), atom.a);
      at::Tensor m = phase.unsqueeze(1).eq(phase.unsqueeze(0)).logical_and_(causal);
      return atom.b ? m.triu_(-(atom.b - 1)) : m;
    }
    case Kind::Block: {
      const at::Tensor block = at::div(positions(T), atom.a, "floor");
      return block.unsqueeze(1).eq(block.unsqueeze(0)).logical_and_(causal);
    }
    case Kind::Random:
      return random_mask(atom, T).logical_and_(causal);
  }
  return causal;
}

at::Tensor build_dense(const Expr& expr, std::int64_t T) {
  at::Tensor result;
  for (const auto& term : expr) {
    at::Tensor t = atom_mask(term[0], T);
    for (std::size_t i = 1; i < term.size(); ++i) t = t.logical_and(atom_mask(term[i], T));
    result = result.defined() ? result.logical_or_(t) : t.clone();
  }
  return result;
}

// Fraction of tile x tile tiles holding any allowed element (edge tiles padded).
double block_density_of(const at::Tensor& allowed, std::int64_t tile) {
  const std::int64_t T = allowed.size(0), S = allowed.size(1);
  const std::int64_t nt = (T + tile - 1) / tile, ns = (S + tile - 1) / tile;
  const at::Tensor padded = at::constant_pad_nd(allowed.to(at::kByte), {0, ns * tile - S, 0, nt * tile - T});
  const at::Tensor any = padded.view({nt, tile, ns, tile}).amax({1, 3});
  return static_cast<double>(any.sum().item<std::int64_t>()) / static_cast<double>(nt * ns);
}

// ---------------------------------------------------------------------------------------
// Caches: computed outside the lock; the first result stored wins, so every caller gets the
// same shared tensor.

template <class Key, class Value>
class Cache {
 public:
  template <class Make>
  Value get(const Key& key, Make make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = entries_.find(key);
      if (it != entries_.end()) return it->second;
    }
    Value value = make();
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.emplace(key, std::move(value)).first->second;
  }

 private:
  std::mutex mutex_;
  std::map<Key, Value> entries_;
};

void check_sizes(const std::string& expression, std::int64_t T, std::int64_t tile) {
  if (T < 1) fail("mask '" + expression + "'", "sequence length T must be >= 1, got " + std::to_string(T));
  if (tile < 1) fail("mask '" + expression + "'", "tile must be >= 1, got " + std::to_string(tile));
}

}  // namespace

at::Tensor dense(const std::string& expression, std::int64_t T) {
  check_sizes(expression, T, 1);
  static Cache<std::pair<std::string, std::int64_t>, at::Tensor> cache;
  const Expr expr = parse(expression);
  return cache.get({spell(expr), T}, [&] { return build_dense(expr, T); });
}

std::shared_ptr<const kernels::BlockLayout> block_layout(const std::string& expression, std::int64_t T,
                                                         std::int64_t tile) {
  check_sizes(expression, T, tile);
  using Key = std::tuple<std::string, std::int64_t, std::int64_t>;
  static Cache<Key, std::shared_ptr<const kernels::BlockLayout>> cache;
  const std::string key = canonical(expression);
  return cache.get({key, T, tile}, [&] {
    return std::make_shared<const kernels::BlockLayout>(kernels::BlockLayout::from_dense(dense(key, T), tile));
  });
}

Density density(const std::string& expression, std::int64_t T, std::int64_t tile) {
  check_sizes(expression, T, tile);
  using Key = std::tuple<std::string, std::int64_t, std::int64_t>;
  static Cache<Key, Density> cache;
  const std::string key = canonical(expression);
  return cache.get({key, T, tile}, [&] {
    const at::Tensor allowed = dense(key, T);
    Density d;
    d.element = static_cast<double>(allowed.sum().item<std::int64_t>()) / static_cast<double>(T * T);
    d.block = block_density_of(allowed, tile);
    return d;
  });
}

at::Tensor stack(const std::vector<std::string>& expressions, std::int64_t T, const at::TensorOptions& like) {
  std::vector<at::Tensor> masks;
  for (const auto& e : expressions) masks.push_back(dense(e, T));
  return at::stack(masks).to(like.device(), like.dtype().toScalarType());
}

const at::Tensor& StackCache::get(const std::vector<std::string>& expressions, std::int64_t T,
                                  const at::TensorOptions& like) {
  if (!stack_.defined() || stack_.size(1) != T || stack_.scalar_type() != like.dtype().toScalarType() ||
      stack_.device() != like.device())
    stack_ = stack(expressions, T, like);
  return stack_;
}

}  // namespace attnlab::masks
