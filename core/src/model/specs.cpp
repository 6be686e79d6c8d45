// The key tables of the distill specs, from the one declaration of each key in specs.hpp.
#include "model/specs.hpp"

namespace attnlab::model {

const keys::Table<DataSpec>& data_keys() {
  static const auto keys = [] {
    using SpecType = DataSpec;
    keys::Table<SpecType> table;
    ATTNLAB_DATA_KEYS(ATTNLAB_KEY_ROW)
    return table;
  }();
  return keys;
}

const keys::Table<TeacherSpec>& teacher_keys() {
  static const auto keys = [] {
    using SpecType = TeacherSpec;
    keys::Table<SpecType> table;
    ATTNLAB_TEACHER_KEYS(ATTNLAB_KEY_ROW)
    return table;
  }();
  return keys;
}

const keys::Table<EvalSpec>& eval_keys() {
  static const auto keys = [] {
    using SpecType = EvalSpec;
    keys::Table<SpecType> table;
    ATTNLAB_EVAL_KEYS(ATTNLAB_KEY_ROW)
    return table;
  }();
  return keys;
}

const keys::Table<DistillSpec>& distill_keys() {
  static const auto keys = [] {
    using SpecType = DistillSpec;
    keys::Table<SpecType> table;
    ATTNLAB_DISTILL_KEYS(ATTNLAB_KEY_ROW)
    return table;
  }();
  return keys;
}

}  // namespace attnlab::model
