// HttpServer: the admin endpoint (/metrics, /healthz, /readyz, ...), a small
// Boost.Beast server on the control thread's io_context. Handlers run on that
// thread; they must not block. Not for the data path.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"

namespace cxpulse {

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;

  explicit HttpServer(boost::asio::io_context& io) : io_(io), acceptor_(io), retry_(io) {}

  // method "GET" or "POST"; register before Listen.
  void Handle(const std::string& method, const std::string& path, Handler handler) {
    routes_[{method, path}] = std::move(handler);
  }
  // "host:port"; port 0 picks a free one (see port()).
  [[nodiscard]] absl::Status Listen(const std::string& address);
  uint16_t port() const { return port_; }
  void Close();

 private:
  void Accept();
  friend class HttpSession;
  HttpResponse Route(const std::string& method, const std::string& path) const;

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;  // after an accept error such as EMFILE
  std::map<std::pair<std::string, std::string>, Handler> routes_;
  uint16_t port_ = 0;
};

}  // namespace cxpulse
