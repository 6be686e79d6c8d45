// resolve_params: a backend's schema turns a trial's loose values into checked Params.
#include <attnlab/params.hpp>

#include "catch.hpp"

#include <cmath>
#include <limits>
#include <string>

using attnlab::ParamError;
using attnlab::ParamSpec;
using attnlab::ParamValue;
using attnlab::resolve_params;

namespace {

std::vector<ParamSpec> schema() {
  return {ParamSpec::integer("tile", 64, 16, 256, "tile size"),
          ParamSpec::real("temperature", 1.0, 0.05, 10.0, "softmax temperature"),
          ParamSpec::boolean("learned", true, "train the weights"),
          ParamSpec::choice("gate", "sigmoid", {"sigmoid", "softplus"}, "gate nonlinearity"),
          ParamSpec::text("note", "", "free text")};
}

// Runs resolve_params expecting a ParamError; returns it for the message checks.
ParamError refusal(const std::map<std::string, ParamValue>& given) {
  try {
    resolve_params(schema(), given);
  } catch (const ParamError& e) {
    return e;
  }
  FAIL("resolve_params accepted a value it should refuse");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("defaults fill every parameter that is not given") {
  const auto params = resolve_params(schema(), {{"tile", std::int64_t{32}}});
  CHECK(params.get_int("tile") == 32);
  CHECK(params.get_float("temperature") == 1.0);
  CHECK(params.get_bool("learned") == true);
  CHECK(params.get_string("gate") == "sigmoid");
  CHECK(params.get_string("note").empty());
  CHECK(params.values().size() == schema().size());
}

TEST_CASE("an int given for a float widens, bounds are inclusive") {
  const auto params = resolve_params(schema(), {{"temperature", std::int64_t{10}}, {"tile", std::int64_t{16}}});
  REQUIRE(std::holds_alternative<double>(params.values().at("temperature")));
  CHECK(params.get_float("temperature") == 10.0);
  CHECK(params.get_int("tile") == 16);
  // An Int parameter reads as float as well.
  CHECK(params.get_float("tile") == 16.0);
}

TEST_CASE("a float given for an int is refused, naming key and range") {
  const auto e = refusal({{"tile", 32.0}});
  CHECK(e.key == "tile");
  const std::string what = e.what();
  CHECK_THAT(what, Catch::Contains("'tile'") && Catch::Contains("int in [16, 256]") &&
                       Catch::Contains("expected an integer"));
}

TEST_CASE("wrong types are refused for every kind of parameter") {
  CHECK(refusal({{"learned", std::int64_t{1}}}).key == "learned");
  CHECK(refusal({{"temperature", std::string("hot")}}).key == "temperature");
  CHECK(refusal({{"gate", true}}).key == "gate");
  CHECK(refusal({{"tile", std::string("64")}}).key == "tile");
  CHECK_THAT(refusal({{"learned", std::int64_t{1}}}).what(), Catch::Contains("expected a bool"));
}

TEST_CASE("out of range values are refused with the allowed range") {
  SECTION("int above max") {
    const auto e = refusal({{"tile", std::int64_t{257}}});
    CHECK(e.key == "tile");
    CHECK_THAT(e.what(), Catch::Contains("257") && Catch::Contains("out of range") &&
                             Catch::Contains("int in [16, 256]"));
  }
  SECTION("int below min") { CHECK(refusal({{"tile", std::int64_t{15}}}).key == "tile"); }
  SECTION("float below min") {
    const auto e = refusal({{"temperature", 0.01}});
    CHECK(e.key == "temperature");
    CHECK_THAT(e.what(), Catch::Contains("float in [0.05, 10]"));
  }
  SECTION("NaN is not in any range") {
    CHECK(refusal({{"temperature", std::nan("")}}).key == "temperature");
  }
}

TEST_CASE("an unknown key is refused, listing the known ones") {
  const auto e = refusal({{"tiles", std::int64_t{64}}});
  CHECK(e.key == "tiles");
  CHECK_THAT(e.what(), Catch::Contains("unknown parameter 'tiles'") && Catch::Contains("tile, temperature"));
}

TEST_CASE("a string outside the choices is refused, listing the choices") {
  const auto e = refusal({{"gate", std::string("relu")}});
  CHECK(e.key == "gate");
  CHECK_THAT(e.what(), Catch::Contains("relu") && Catch::Contains("one of sigmoid|softplus"));
  // A free-text parameter takes any string.
  CHECK(resolve_params(schema(), {{"note", std::string("relu")}}).get_string("note") == "relu");
}

TEST_CASE("an unbounded float says so in its allowed range") {
  const auto spec = ParamSpec::real("shift", 0.0, -std::numeric_limits<double>::infinity(),
                                    std::numeric_limits<double>::infinity(), "any number");
  CHECK(spec.allowed() == "float in [-inf, inf]");
  CHECK(resolve_params({spec}, {{"shift", -1e300}}).get_float("shift") == -1e300);
}
