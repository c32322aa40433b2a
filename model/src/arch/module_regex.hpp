// The regular expressions of quantization ignore lists and targets
// ("re:.*mlp.gate$", compressed-tensors' syntax, matched as Python's
// re.match does: from the start of the module name). A small engine of our
// own instead of std::regex, whose backtracking hangs on "(.*)*x" and whose
// recursive compiler overflows the stack on deeply nested groups: patterns
// compile to an NFA that runs in time linear in the name, and size limits
// bound the compile.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gpucal::model {

class module_regex {
public:
  /// Longest pattern, deepest group nesting, largest {m,n} count and program
  /// accepted: far beyond any checkpoint's patterns.
  static constexpr std::size_t max_pattern_chars = 1024;
  static constexpr int max_depth = 32;
  static constexpr int max_repeat = 100;
  static constexpr std::size_t max_program = 20'000;

  /// Compiles the supported subset: literals, '.', escapes (\. \d \w \s and
  /// their negations \D \W \S, any escaped punctuation), classes ([a-z_],
  /// [^.]), groups ( ) and (?: ), alternation |, quantifiers * + ? {m}
  /// {m,} {m,n} (lazy forms too: a yes/no match is the same), and the
  /// anchors ^ and $. Throws std::invalid_argument saying what is not
  /// supported or too large.
  explicit module_regex(std::string_view pattern);

  /// Whether the pattern matches a prefix of `text` (all of it where the
  /// pattern ends in $), as Python's re.match.
  bool match(std::string_view text) const;

  struct node;  ///< a parsed pattern (module_regex.cpp)

private:
  enum class op : std::uint8_t { chr, any, cls, split, jmp, bol, eol, accept };
  struct inst {
    op code;
    std::uint32_t x = 0, y = 0;  ///< chr: the byte; cls: class index; split: both targets; jmp: x
  };
  std::vector<inst> prog_;
  std::vector<std::vector<bool>> classes_;  ///< 256 flags each

  void emit(const node& n);
};

}  // namespace gpucal::model
