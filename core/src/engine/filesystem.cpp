#include "engine/filesystem.hpp"

#include <sys/vfs.h>

#include <filesystem>

namespace attnlab::engine {

std::optional<std::string> network_filesystem_name(long f_type) {
  // Magic numbers from linux/magic.h and the filesystems' own headers.
  switch (static_cast<unsigned long>(f_type) & 0xFFFFFFFFul) {
    case 0x6969: return "nfs";
    case 0x0BD00BD0: return "lustre";
    case 0x47504653: return "gpfs";
    case 0xFF534D42: return "cifs";
    case 0xFE534D42: return "smb2";
    case 0x517B: return "smb";
    case 0x00C36400: return "ceph";
    case 0x5346414F: return "afs";
    case 0x01021997: return "9p";
    case 0x013111A8: return "ibrix";
    case 0x19830326: return "beegfs";
    default: return std::nullopt;
  }
}

std::optional<std::string> network_filesystem_of(const std::string& path) {
  std::filesystem::path at = std::filesystem::absolute(path).parent_path();
  std::error_code ec;
  while (!at.empty() && !std::filesystem::exists(at, ec)) at = at.parent_path();
  struct statfs info {};
  if (::statfs(at.empty() ? "/" : at.c_str(), &info) != 0) return std::nullopt;
  return network_filesystem_name(static_cast<long>(info.f_type));
}

}  // namespace attnlab::engine
