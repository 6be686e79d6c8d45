#pragma once
// A report as a list of blocks, rendered twice from the same content: Markdown (index.md)
// and one self-contained HTML page (index.html, a little inline CSS, <img> for the plots).
// Text may hold `code spans`; everything else is escaped for each format.
#include <string>
#include <vector>

namespace attnlab::report {

struct Block {
  enum class Kind { heading, paragraph, table, image, preformatted };
  Kind kind = Kind::paragraph;
  int level = 2;                                  // heading
  std::string text;                               // heading, paragraph, preformatted; image caption
  std::vector<std::string> header;                // table
  std::vector<std::vector<std::string>> rows;     // table
  std::string png, svg;                           // image paths relative to the page
};

class Document {
 public:
  void heading(int level, std::string text);
  void paragraph(std::string text);
  void table(std::vector<std::string> header, std::vector<std::vector<std::string>> rows);
  void image(std::string caption, std::string png, std::string svg);
  void preformatted(std::string text);

  const std::vector<Block>& blocks() const { return blocks_; }
  std::string markdown() const;
  std::string html(const std::string& title) const;

 private:
  std::vector<Block> blocks_;
};

}  // namespace attnlab::report
