// SocketTcpFlow::read tells the bridge whether the socket is drained: a read that came back short
// emptied the socket buffer, so the flow parks on readiness at once instead of reading again
// (a wasted recv and a coroutine per request on every interactive flow).

#include "relay/socket_tcp_flow.hpp"

#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <poll.h>
#include <sys/ioctl.h>
#include <vector>

namespace flowrelay::relay {
namespace {

namespace asio = boost::asio;

class SocketTcpFlowRead : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_.bind_to_current_thread();
    buffers::Pool::set_local(&pool_);
    test::Fd listener = test::tcp_listen();
    client_ = test::tcp_connect(test::local_port(listener.get()));
    test::Fd accepted = test::tcp_accept(listener.get());
    flow_ = std::make_unique<SocketTcpFlow>(asio::ip::tcp::socket(io_, asio::ip::tcp::v4(), accepted.release()));
  }
  void TearDown() override {
    flow_.reset();
    buffers::Pool::set_local(nullptr);
  }
  /// Sends n bytes from the client and waits until the relay's socket has them all.
  void arrive(std::size_t n) {
    std::vector<char> bytes(n, 'x');
    test::send_all(client_.get(), bytes.data(), n);
    for (int waited = 0; waited < 5000; ++waited) {
      int queued = 0;
      ::ioctl(flow_->native_handle(), FIONREAD, &queued);
      if (std::size_t(queued) >= n) return;
      pollfd p{flow_->native_handle(), POLLIN, 0};
      ::poll(&p, 1, 1);
    }
    FAIL() << "bytes did not arrive";
  }

  buffers::Pool pool_;
  asio::io_context io_;
  test::Fd client_;
  std::unique_ptr<SocketTcpFlow> flow_;
};

TEST_F(SocketTcpFlowRead, AShortReadSaysTheSocketIsDrained) {
  arrive(64);
  buffers::Chain into;
  const IoResult r = flow_->read(into, 256 * 1024);
  EXPECT_EQ(r.bytes, 64u);
  EXPECT_FALSE(r.ec);
  EXPECT_TRUE(r.would_block) << "64 bytes into a 16 KiB chunk: nothing more is waiting";
  EXPECT_EQ(into.size(), 64u);
}

TEST_F(SocketTcpFlowRead, AFullReadSaysThereMayBeMore) {
  arrive(100 * 1024);
  buffers::Chain into;
  const IoResult r = flow_->read(into, 256 * 1024);  // an interactive flow reads one 16 KiB chunk first
  EXPECT_GT(r.bytes, 0u);
  EXPECT_FALSE(r.would_block) << "the chunk was filled: read again before parking";
  std::size_t total = r.bytes;
  for (IoResult next = r; !next.would_block && total < 100 * 1024;) {
    next = flow_->read(into, 256 * 1024);
    total += next.bytes;
  }
  EXPECT_EQ(total, 100u * 1024);
}

}  // namespace
}  // namespace flowrelay::relay
