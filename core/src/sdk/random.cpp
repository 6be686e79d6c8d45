#include <attnlab/random.hpp>

#include <ATen/CPUGeneratorImpl.h>

namespace attnlab {

at::Generator seeded_generator(std::uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

}  // namespace attnlab
