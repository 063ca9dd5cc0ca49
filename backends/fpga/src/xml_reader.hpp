#pragma once
// A small non-validating XML reader, enough for Vivado's .hwh hand-off files:
// elements, attributes, text, comments, processing instructions, DOCTYPE and
// CDATA, the five predefined entities and numeric character references. No
// namespaces, no DTD processing. Written here so the ARM build needs no XML
// library.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace busi::fpga {

struct xml_element {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::vector<std::unique_ptr<xml_element>> children;
  std::string text;  // character data directly inside this element

  // The attribute's value, or nullptr when absent.
  const std::string* attribute(std::string_view key) const;
  // Direct children with this element name.
  std::vector<const xml_element*> children_named(std::string_view child_name) const;
  // The first direct child with this name, or nullptr.
  const xml_element* child(std::string_view child_name) const;
};

// Parses a whole document and returns its root element. Throws busi::error
// naming `origin`, the line and what was expected on malformed input.
std::unique_ptr<xml_element> parse_xml(std::string_view text, const std::string& origin);

}  // namespace busi::fpga
