// A trivial backend compiled several times with different -D definitions, one .so per loader
// test case (see CMakeLists.txt). Uniform causal attention, i.e. every score equal:
//
//   out[b,h,t] = (1 / (t + 1)) * sum_{s<=t} v[b,h,s]
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D] -> out [B, H, T, D]   (S == T)
//
// times the "gain" parameter, so a test can see that parameters reached the object.
//
// Definitions: FAKE_NAME (backend name), FAKE_NEXT_MAJOR / FAKE_NEXT_MINOR (pretend to be
// built against the SDK's API major + 1, or minor + 1), FAKE_BAD_DEFAULT (a schema default
// outside its own range), FAKE_WITHOUT_DESCRIPTOR (export
// attnlab_plugin_api only).
#include <attnlab/plugin.hpp>

#include <ATen/ATen.h>

#include <cmath>

namespace {

class FakeBackend : public attnlab::AttentionBackend {
 public:
  explicit FakeBackend(const attnlab::BackendInit& init)
      : AttentionBackend("FakeBackend"), gain_(init.params.get_float("gain")) {}

  static std::vector<attnlab::ParamSpec> schema() {
#ifdef FAKE_BAD_DEFAULT
    const double gain = std::nan("");  // a default its own range refuses
#else
    const double gain = 1.0;
#endif
    return {attnlab::ParamSpec::real("gain", gain, 0.0, 10.0, "output multiplier"),
            attnlab::ParamSpec::integer("width", 8, 1, 64, "unused; an int parameter to validate"),
            attnlab::ParamSpec::choice("mode", "uniform", {"uniform", "also_uniform"}, "unused; a choice to validate")};
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const auto T = v.size(2);
    auto counts = at::arange(1, T + 1, v.options()).view({1, 1, T, 1});
    return v.cumsum(2) / counts * gain_;
  }

 private:
  double gain_;
};

}  // namespace

// ATTNLAB_PLUGIN reads the version macros where it expands, so redefining them here is what
// a plugin built against another SDK would export.
constexpr int kSdkApiMajor = ATTNLAB_API_MAJOR, kSdkApiMinor = ATTNLAB_API_MINOR;
#ifdef FAKE_NEXT_MAJOR
#undef ATTNLAB_API_MAJOR
#define ATTNLAB_API_MAJOR (kSdkApiMajor + 1)
#endif
#ifdef FAKE_NEXT_MINOR
#undef ATTNLAB_API_MINOR
#define ATTNLAB_API_MINOR (kSdkApiMinor + 1)
#endif

#ifdef FAKE_WITHOUT_DESCRIPTOR
// What a hand-rolled export might look like when the author forgot half of it.
extern "C" ATTNLAB_API std::uint32_t attnlab_plugin_api() {
  return attnlab::pack_api_version(ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR);
}
#else
ATTNLAB_PLUGIN(FakeBackend, FAKE_NAME, "0.1.0", "loader test backend: uniform causal attention times gain")
#endif
