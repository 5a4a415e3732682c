// Errors raised by the core. Each carries a stable code that the binding copies onto the JS Error.
#pragma once

#include <stdexcept>
#include <string>

namespace stenosis {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// Message of any exception without libtorch's C++ backtrace, which means nothing to a JS user.
std::string DescribeException(const std::exception& e);

}  // namespace stenosis
