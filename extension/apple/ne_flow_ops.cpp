#include "extension/apple/ne_flow_ops.hpp"

#include <boost/asio/error.hpp>

namespace flowrelay::apple {

const char* to_string(NeFlowError e) {
  switch (e) {
    case NeFlowError::none: return "none";
    case NeFlowError::not_connected: return "not connected";
    case NeFlowError::peer_reset: return "peer reset";
    case NeFlowError::host_unreachable: return "host unreachable";
    case NeFlowError::invalid_argument: return "invalid argument";
    case NeFlowError::aborted: return "aborted";
    case NeFlowError::refused: return "refused";
    case NeFlowError::timed_out: return "timed out";
    case NeFlowError::internal: return "internal error";
    case NeFlowError::datagram_too_large: return "datagram too large";
    case NeFlowError::read_already_pending: return "read already pending";
    case NeFlowError::other: return "other error";
  }
  return "unknown";
}

boost::system::error_code to_error_code(NeFlowError e) {
  namespace error = boost::asio::error;
  switch (e) {
    case NeFlowError::none: return {};
    case NeFlowError::not_connected: return error::not_connected;
    case NeFlowError::peer_reset: return error::connection_reset;
    case NeFlowError::host_unreachable: return error::host_unreachable;
    case NeFlowError::invalid_argument: return error::invalid_argument;
    case NeFlowError::aborted: return error::connection_aborted;
    case NeFlowError::refused: return error::connection_refused;
    case NeFlowError::timed_out: return error::timed_out;
    case NeFlowError::internal: return error::fault;
    case NeFlowError::datagram_too_large: return error::message_size;
    case NeFlowError::read_already_pending: return error::in_progress;
    case NeFlowError::other: return error::fault;
  }
  return error::fault;
}

}  // namespace flowrelay::apple
