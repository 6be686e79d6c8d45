#include "engine/shard_paths.hpp"

#include <cctype>
#include <filesystem>

namespace attnlab::engine {

namespace fs = std::filesystem;

std::string safe_name(const std::string& name) {
  std::string out;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out;
}

std::string shard_folder(const std::string& db_path, const std::string& sweep_name) {
  const fs::path db = fs::absolute(db_path);
  return (db.parent_path() / (db.stem().string() + ".slurm") / safe_name(sweep_name)).string();
}

std::string shard_path(const std::string& db_path, const std::string& sweep_name, int i, int n) {
  return (fs::path(shard_folder(db_path, sweep_name)) /
          ("shard-" + std::to_string(i) + "-of-" + std::to_string(n) + ".sqlite"))
      .string();
}

}  // namespace attnlab::engine
