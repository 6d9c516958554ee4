#include "extension/linux/demo_command.hpp"

#include <ostream>

namespace flowrelay::linux_host {

int demo_command(const DemoOptions&, const std::string&, std::ostream&, std::ostream& err) {
  err << "flowrelay demo: not built yet\n";
  return 1;
}

}  // namespace flowrelay::linux_host
