#pragma once
// Where a results database may live. SQLite's WAL journal keeps its index in shared memory
// (the -shm file), which only works when every process is on one host: on a network
// filesystem two hosts would corrupt a shared database. A shared database there is refused;
// a shard (one writer per file, `attnlab run --shard`) is fine anywhere, with a rollback
// journal instead of WAL.
#include <optional>
#include <string>

namespace attnlab::engine {

// "nfs", "lustre", "gpfs", "cifs", ... for a statfs f_type that is a network filesystem.
std::optional<std::string> network_filesystem_name(long f_type);
// The network filesystem `path`'s folder (or its nearest existing parent) is on, if any.
std::optional<std::string> network_filesystem_of(const std::string& path);

}  // namespace attnlab::engine
