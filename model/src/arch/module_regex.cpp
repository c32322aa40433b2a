// A linear-time matcher for the regexes of quantization configs (see
// module_regex.hpp): parse to a tree, compile to a Thompson NFA, simulate it
// with a set of states per input byte.
#include "arch/module_regex.hpp"

#include <fmt/format.h>

#include <cctype>
#include <memory>
#include <stdexcept>

namespace gpucal::model {

struct module_regex::node {
  enum class kind { chr, any, cls, bol, eol, concat, alt, repeat } k = kind::concat;
  unsigned char c = 0;
  std::size_t cls = 0;
  int min = 0, max = -1;  ///< repeat: max -1 = unbounded
  std::vector<node> kids;
};

namespace {

[[noreturn]] void refuse(const std::string& what) { throw std::invalid_argument(what); }

// Recursive descent over the pattern; depth is bounded, so no input can exhaust the stack.
class parser {
public:
  parser(std::string_view p, std::vector<std::vector<bool>>& classes) : p_(p), classes_(classes) {}

  module_regex::node parse() {
    module_regex::node n = alternation(0);
    if (at_ < p_.size()) refuse(fmt::format("unbalanced ')' at offset {}", at_));
    return n;
  }

private:
  using node = module_regex::node;

  bool more() const { return at_ < p_.size(); }
  char peek() const { return p_[at_]; }

  node alternation(int depth) {
    if (depth > module_regex::max_depth) refuse(fmt::format("groups nest deeper than {} levels", module_regex::max_depth));
    node alt;
    alt.k = node::kind::alt;
    alt.kids.push_back(sequence(depth));
    while (more() && peek() == '|') {
      ++at_;
      alt.kids.push_back(sequence(depth));
    }
    return alt.kids.size() == 1 ? std::move(alt.kids.front()) : alt;
  }

  node sequence(int depth) {
    node seq;
    seq.k = node::kind::concat;
    while (more() && peek() != '|' && peek() != ')') seq.kids.push_back(repeated(depth));
    return seq;
  }

  int number() {
    if (!more() || !std::isdigit(static_cast<unsigned char>(peek()))) refuse(fmt::format("a count expected at offset {}", at_));
    int v = 0;
    while (more() && std::isdigit(static_cast<unsigned char>(peek()))) {
      v = v * 10 + (peek() - '0');
      if (v > module_regex::max_repeat) refuse(fmt::format("a repeat count above {}", module_regex::max_repeat));
      ++at_;
    }
    return v;
  }

  node repeated(int depth) {
    node a = atom(depth);
    bool repeated_once = false;
    while (more() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')) {
      if (repeated_once) refuse(fmt::format("a second quantifier at offset {} (multiple repeat)", at_));
      repeated_once = true;
      if (a.k == node::kind::bol || a.k == node::kind::eol) refuse("a quantifier after an anchor");
      node r;
      r.k = node::kind::repeat;
      const char q = p_[at_++];
      if (q == '*') {
        r.min = 0;
        r.max = -1;
      } else if (q == '+') {
        r.min = 1;
        r.max = -1;
      } else if (q == '?') {
        r.min = 0;
        r.max = 1;
      } else {
        r.min = number();
        r.max = r.min;
        if (more() && peek() == ',') {
          ++at_;
          r.max = more() && peek() == '}' ? -1 : number();
        }
        if (!more() || peek() != '}') refuse(fmt::format("'{{' without '}}' at offset {}", at_));
        ++at_;
        if (r.max != -1 && r.max < r.min) refuse("a {m,n} with n < m");
      }
      if (more() && peek() == '?') ++at_;  // lazy: the same yes/no answer
      r.kids.push_back(std::move(a));
      a = std::move(r);
    }
    return a;
  }

  std::size_t new_class(std::vector<bool> set) {
    classes_.push_back(std::move(set));
    return classes_.size() - 1;
  }

  static void add_escape_class(std::vector<bool>& set, char e) {
    for (int c = 0; c < 256; ++c) {
      const auto u = static_cast<unsigned char>(c);
      const bool in = e == 'd' || e == 'D' ? std::isdigit(u) != 0
                      : e == 'w' || e == 'W' ? (std::isalnum(u) != 0 || u == '_')
                                              : std::isspace(u) != 0;
      if (in != static_cast<bool>(std::isupper(static_cast<unsigned char>(e)))) set[static_cast<std::size_t>(c)] = true;
    }
  }

  // The byte an escape stands for, or -1 for a class escape.
  static int escaped(char e) {
    if (e == 'd' || e == 'D' || e == 'w' || e == 'W' || e == 's' || e == 'S') return -1;
    if (e == 'n') return '\n';
    if (e == 't') return '\t';
    if (std::isalnum(static_cast<unsigned char>(e))) refuse(fmt::format("the escape '\\{}'", e));
    return static_cast<unsigned char>(e);
  }

  node atom(int depth) {
    node n;
    const char c = p_[at_++];
    switch (c) {
      case '(': {
        if (more() && peek() == '?') {
          if (at_ + 1 < p_.size() && p_[at_ + 1] == ':') {
            at_ += 2;
          } else {
            refuse(fmt::format("the group syntax '(?' at offset {} (allowed: '(?:')", at_ - 1));
          }
        }
        n = alternation(depth + 1);
        if (!more() || peek() != ')') refuse("'(' without ')'");
        ++at_;
        return n;
      }
      case ')': refuse(fmt::format("unbalanced ')' at offset {}", at_ - 1));
      case '*':
      case '+':
      case '?':
      case '{': refuse(fmt::format("'{}' with nothing to repeat at offset {}", c, at_ - 1));
      case '.': n.k = node::kind::any; return n;
      case '^': n.k = node::kind::bol; return n;
      case '$': n.k = node::kind::eol; return n;
      case '[': return bracket();
      case '\\': {
        if (!more()) refuse("a trailing '\\'");
        const char e = p_[at_++];
        const int b = escaped(e);
        if (b < 0) {
          std::vector<bool> set(256, false);
          add_escape_class(set, e);
          n.k = node::kind::cls;
          n.cls = new_class(std::move(set));
        } else {
          n.k = node::kind::chr;
          n.c = static_cast<unsigned char>(b);
        }
        return n;
      }
      default: n.k = node::kind::chr; n.c = static_cast<unsigned char>(c); return n;
    }
  }

  node bracket() {
    std::vector<bool> set(256, false);
    bool negate = false;
    if (more() && peek() == '^') {
      negate = true;
      ++at_;
    }
    bool first = true;
    while (more() && (peek() != ']' || first)) {
      first = false;
      int lo = static_cast<unsigned char>(p_[at_++]);
      if (lo == '\\') {
        if (!more()) refuse("a trailing '\\'");
        const char e = p_[at_++];
        lo = escaped(e);
        if (lo < 0) {
          add_escape_class(set, e);
          continue;
        }
      }
      int hi = lo;
      if (at_ + 1 < p_.size() && peek() == '-' && p_[at_ + 1] != ']') {
        ++at_;
        hi = static_cast<unsigned char>(p_[at_++]);
        if (hi == '\\') {
          if (!more()) refuse("a trailing '\\'");
          hi = escaped(p_[at_++]);
          if (hi < 0) refuse("a class escape as a range end");
        }
        if (hi < lo) refuse("a reversed range in [...]");
      }
      for (int b = lo; b <= hi; ++b) set[static_cast<std::size_t>(b)] = true;
    }
    if (!more()) refuse("'[' without ']'");
    ++at_;
    if (negate) set.flip();
    node n;
    n.k = node::kind::cls;
    n.cls = new_class(std::move(set));
    return n;
  }

  std::string_view p_;
  std::size_t at_ = 0;
  std::vector<std::vector<bool>>& classes_;
};

}  // namespace

module_regex::module_regex(std::string_view pattern) {
  if (pattern.size() > max_pattern_chars) refuse(fmt::format("longer than {} characters", max_pattern_chars));
  const node tree = parser(pattern, classes_).parse();
  emit(tree);
  prog_.push_back({op::accept});
}

void module_regex::emit(const node& n) {
  if (prog_.size() > max_program) refuse(fmt::format("compiles to more than {} steps", max_program));
  const auto here = [this] { return static_cast<std::uint32_t>(prog_.size()); };
  switch (n.k) {
    case node::kind::chr: prog_.push_back({op::chr, n.c}); return;
    case node::kind::any: prog_.push_back({op::any}); return;
    case node::kind::cls: prog_.push_back({op::cls, static_cast<std::uint32_t>(n.cls)}); return;
    case node::kind::bol: prog_.push_back({op::bol}); return;
    case node::kind::eol: prog_.push_back({op::eol}); return;
    case node::kind::concat:
      for (const node& k : n.kids) emit(k);
      return;
    case node::kind::alt: {
      // split L1, next; L1: a; jmp end; next: split L2, ...
      std::vector<std::size_t> jumps;
      for (std::size_t i = 0; i < n.kids.size(); ++i) {
        if (i + 1 < n.kids.size()) {
          const std::size_t split = prog_.size();
          prog_.push_back({op::split, here() + 1, 0});
          emit(n.kids[i]);
          jumps.push_back(prog_.size());
          prog_.push_back({op::jmp});
          prog_[split].y = here();
        } else {
          emit(n.kids[i]);
        }
      }
      for (const std::size_t j : jumps) prog_[j].x = here();
      return;
    }
    case node::kind::repeat: {
      const node& body = n.kids.front();
      for (int i = 0; i < n.min; ++i) emit(body);
      if (n.max == -1) {
        // loop: split body, out; body; jmp loop
        const std::size_t loop = prog_.size();
        prog_.push_back({op::split, here() + 1, 0});
        emit(body);
        prog_.push_back({op::jmp, static_cast<std::uint32_t>(loop)});
        prog_[loop].y = here();
        return;
      }
      std::vector<std::size_t> splits;
      for (int i = n.min; i < n.max; ++i) {
        splits.push_back(prog_.size());
        prog_.push_back({op::split, here() + 1, 0});
        emit(body);
      }
      for (const std::size_t s : splits) prog_[s].y = here();
      return;
    }
  }
}

bool module_regex::match(std::string_view text) const {
  // Thompson simulation: the states alive before each byte, each added once.
  std::vector<std::uint32_t> now, next, stack;
  std::vector<std::size_t> seen(prog_.size(), static_cast<std::size_t>(-1));
  bool accepted = false;
  const auto add = [&](std::vector<std::uint32_t>& list, std::uint32_t pc, std::size_t pos) {
    stack.assign(1, pc);
    while (!stack.empty()) {
      const std::uint32_t s = stack.back();
      stack.pop_back();
      if (seen[s] == pos) continue;
      seen[s] = pos;
      const inst& i = prog_[s];
      switch (i.code) {
        case op::jmp: stack.push_back(i.x); break;
        case op::split:
          stack.push_back(i.y);
          stack.push_back(i.x);
          break;
        case op::bol:
          if (pos == 0) stack.push_back(s + 1);
          break;
        case op::eol:
          if (pos == text.size()) stack.push_back(s + 1);
          break;
        case op::accept: accepted = true; break;
        default: list.push_back(s); break;
      }
    }
  };
  add(now, 0, 0);
  for (std::size_t pos = 0; pos < text.size() && !accepted && !now.empty(); ++pos) {
    const auto c = static_cast<unsigned char>(text[pos]);
    next.clear();
    for (const std::uint32_t s : now) {
      const inst& i = prog_[s];
      const bool step = i.code == op::any || (i.code == op::chr && i.x == c) || (i.code == op::cls && classes_[i.x][c]);
      if (step) add(next, s + 1, pos + 1);
    }
    now.swap(next);
  }
  return accepted;
}

}  // namespace gpucal::model
