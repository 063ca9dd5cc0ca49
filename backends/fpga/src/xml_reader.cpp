#include "xml_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>

#include "busi/error.hpp"
#include "busi/limits.hpp"

namespace busi::fpga {

const std::string* xml_element::attribute(std::string_view key) const {
  for (const auto& [k, v] : attributes)
    if (k == key) return &v;
  return nullptr;
}

std::vector<const xml_element*> xml_element::children_named(std::string_view child_name) const {
  std::vector<const xml_element*> found;
  for (const auto& c : children)
    if (c->name == child_name) found.push_back(c.get());
  return found;
}

const xml_element* xml_element::child(std::string_view child_name) const {
  for (const auto& c : children)
    if (c->name == child_name) return c.get();
  return nullptr;
}

namespace {

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

class parser {
 public:
  parser(std::string_view text, const std::string& origin) : s_(text), origin_(origin) {}

  std::unique_ptr<xml_element> document() {
    // Vivado starts every .hwh with a UTF-8 byte-order mark.
    if (starts("\xEF\xBB\xBF")) pos_ = 3;
    else if (starts("\xFE\xFF") || starts("\xFF\xFE")) fail("UTF-16 text is not supported (UTF-8 only)");
    skip_misc();
    if (!starts("<")) fail("expected the root element");
    auto root = element();
    skip_misc();
    if (pos_ != s_.size()) fail("unexpected content after the root element");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    const auto line =
        1 + std::count(s_.begin(), s_.begin() + static_cast<std::ptrdiff_t>(std::min(pos_, s_.size())), '\n');
    throw error(origin_ + ": malformed XML at line " + std::to_string(line) + ": " + what);
  }
  bool starts(std::string_view prefix) const { return s_.substr(pos_, prefix.size()) == prefix; }
  void skip_space() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  void skip_past(std::string_view terminator, const char* what) {
    const auto end = s_.find(terminator, pos_);
    if (end == std::string_view::npos) fail(std::string("unterminated ") + what);
    pos_ = end + terminator.size();
  }
  // Whitespace, comments, processing instructions and DOCTYPE between elements.
  void skip_misc() {
    for (;;) {
      skip_space();
      if (starts("<?"))
        skip_past("?>", "processing instruction");
      else if (starts("<!--"))
        skip_past("-->", "comment");
      else if (starts("<!DOCTYPE"))
        skip_past(">", "DOCTYPE");
      else
        return;
    }
  }
  std::string name() {
    const auto begin = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
    if (pos_ == begin) fail("expected a name");
    return std::string(s_.substr(begin, pos_ - begin));
  }
  std::string decode(std::string_view raw) const {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '&') {
        out += raw[i];
        continue;
      }
      const auto semi = raw.find(';', i);
      if (semi == std::string_view::npos) fail("unterminated entity reference");
      const auto entity = raw.substr(i + 1, semi - i - 1);
      if (entity == "lt")
        out += '<';
      else if (entity == "gt")
        out += '>';
      else if (entity == "amp")
        out += '&';
      else if (entity == "quot")
        out += '"';
      else if (entity == "apos")
        out += '\'';
      else if (!entity.empty() && entity[0] == '#') {
        const std::string digits(entity.substr(1));
        const bool is_hex = !digits.empty() && (digits[0] == 'x' || digits[0] == 'X');
        char* end = nullptr;
        const unsigned long code = std::strtoul(digits.c_str() + (is_hex ? 1 : 0), &end, is_hex ? 16 : 10);
        if (!end || *end != '\0' || code > 0x10FFFF) fail("bad character reference &" + std::string(entity) + ";");
        append_utf8(out, static_cast<uint32_t>(code));
      } else {
        fail("unknown entity &" + std::string(entity) + ";");
      }
      i = semi;
    }
    return out;
  }
  static void append_utf8(std::string& out, uint32_t c) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }

  // At '<' of a start tag; consumes through the matching end tag. Iterative
  // over depth, and the depth and element count are limited, so neither this
  // nor the recursive destructor and searches over the tree can overflow the
  // stack or exhaust memory (limits::kNestingDepth, limits::kXmlElements).
  std::unique_ptr<xml_element> element() {
    std::unique_ptr<xml_element> root;
    std::vector<xml_element*> open;
    for (;;) {
      if (starts("</")) {
        pos_ += 2;
        const auto closing = name();
        skip_space();
        if (!starts(">")) fail("expected '>' after </" + closing);
        ++pos_;
        if (open.empty() || open.back()->name != closing)
          fail("end tag </" + closing + "> does not match <" + (open.empty() ? std::string("?") : open.back()->name) +
               ">");
        open.pop_back();
        if (open.empty()) return root;
      } else if (starts("<!--")) {
        skip_past("-->", "comment");
      } else if (starts("<?")) {
        skip_past("?>", "processing instruction");
      } else if (starts("<![CDATA[")) {
        pos_ += 9;
        const auto end = s_.find("]]>", pos_);
        if (end == std::string_view::npos) fail("unterminated CDATA section");
        if (open.empty()) fail("CDATA outside an element");
        open.back()->text += std::string(s_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else if (starts("<")) {
        ++pos_;
        if (++elements_ > limits::kXmlElements)
          fail("more than " + std::to_string(limits::kXmlElements) + " elements");
        if (open.size() >= std::size_t(limits::kNestingDepth))
          fail("elements nested deeper than " + std::to_string(limits::kNestingDepth) + " levels");
        auto e = std::make_unique<xml_element>();
        e->name = name();
        bool self_closing = false;
        for (;;) {
          skip_space();
          if (starts("/>")) {
            pos_ += 2;
            self_closing = true;
            break;
          }
          if (starts(">")) {
            ++pos_;
            break;
          }
          auto key = name();
          skip_space();
          if (!starts("=")) fail("expected '=' after attribute " + key);
          ++pos_;
          skip_space();
          if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) fail("expected a quoted value for " + key);
          const char quote = s_[pos_++];
          const auto end = s_.find(quote, pos_);
          if (end == std::string_view::npos) fail("unterminated value of attribute " + key);
          e->attributes.emplace_back(std::move(key), decode(s_.substr(pos_, end - pos_)));
          pos_ = end + 1;
        }
        xml_element* raw = e.get();
        if (open.empty())
          root = std::move(e);
        else
          open.back()->children.push_back(std::move(e));
        if (self_closing) {
          if (open.empty()) return root;
        } else {
          open.push_back(raw);
        }
      } else if (pos_ >= s_.size()) {
        fail("unexpected end of file inside <" + open.back()->name + ">");
      } else {
        const auto end = s_.find('<', pos_);
        const auto raw = s_.substr(pos_, (end == std::string_view::npos ? s_.size() : end) - pos_);
        open.back()->text += decode(raw);
        pos_ += raw.size();
      }
    }
  }

  std::string_view s_;
  const std::string& origin_;
  std::size_t pos_ = 0;
  std::size_t elements_ = 0;
};

}  // namespace

std::unique_ptr<xml_element> parse_xml(std::string_view text, const std::string& origin) {
  return parser(text, origin).document();
}

}  // namespace busi::fpga
