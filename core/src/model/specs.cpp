// The key tables of the distill specs, from the one declaration of each key in specs.hpp.
#include "model/specs.hpp"

namespace attnlab::model {

ATTNLAB_KEY_TABLE(data_keys, DataSpec, ATTNLAB_DATA_KEYS)
ATTNLAB_KEY_TABLE(teacher_keys, TeacherSpec, ATTNLAB_TEACHER_KEYS)
ATTNLAB_KEY_TABLE(eval_keys, EvalSpec, ATTNLAB_EVAL_KEYS)
ATTNLAB_KEY_TABLE(distill_keys, DistillSpec, ATTNLAB_DISTILL_KEYS)

}  // namespace attnlab::model
