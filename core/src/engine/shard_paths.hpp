#pragma once
// Where a Slurm sweep's shard databases live (engine/slurm.hpp). Apart from slurm.cpp so that
// `attnlab status`, which reads them, builds without LibTorch (tools/attnlab/front.cpp).
#include <string>

namespace attnlab::engine {

// The sweep's name with every character but letters, digits, '-' and '_' made '_'.
std::string safe_name(const std::string& name);

// The folder of a sweep's shards, and shard i of n in it.
std::string shard_folder(const std::string& db_path, const std::string& sweep_name);
std::string shard_path(const std::string& db_path, const std::string& sweep_name, int i, int n);

}  // namespace attnlab::engine
