#include "admin/http_server.h"
#include "common/strings.h"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/numbers.h"

namespace cxpulse {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

// One connection: read a request, answer it, repeat while keep-alive.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, const HttpServer& server) : stream_(std::move(socket)), server_(server) {}

  void Read() {
    request_ = {};
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, request_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Shutdown();
      self->Respond();
    });
  }

 private:
  void Respond() {
    std::string path(request_.target());
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    HttpResponse r = server_.Route(std::string(request_.method_string()), path);
    response_ = {};
    response_.result(r.status);
    response_.version(request_.version());
    response_.set(http::field::server, "cxpulse");
    response_.set(http::field::content_type, r.content_type);
    response_.keep_alive(request_.keep_alive());
    response_.body() = std::move(r.body);
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || !self->response_.keep_alive()) return self->Shutdown();
      self->Read();
    });
  }

  void Shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  const HttpServer& server_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

absl::Status HttpServer::Listen(const std::string& address) {
  const size_t colon = address.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(Cat("admin address \"", address, "\": expected host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  const auto ip = boost::asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return absl::InvalidArgumentError(Cat("admin address \"", address, "\": ", ec.message()));
  const tcp::endpoint endpoint(ip, static_cast<uint16_t>(port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(Cat("admin endpoint ", address, ": ", ec.message()));
  port_ = acceptor_.local_endpoint().port();
  Accept();
  return absl::OkStatus();
}

void HttpServer::Close() {
  beast::error_code ec;
  acceptor_.close(ec);
  retry_.cancel();
}

void HttpServer::Accept() {
  acceptor_.async_accept(io_, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted) return;  // closed
    if (ec) {
      // Out of descriptors or similar: back off instead of spinning.
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    std::make_shared<HttpSession>(std::move(socket), *this)->Read();
    Accept();
  });
}

HttpResponse HttpServer::Route(const std::string& method, const std::string& path) const {
  auto it = routes_.find({method, path});
  if (it != routes_.end()) return it->second();
  for (const auto& [key, handler] : routes_) {
    if (key.second == path) return HttpResponse{405, "text/plain; charset=utf-8", "method not allowed\n"};
  }
  return HttpResponse{404, "text/plain; charset=utf-8", "not found\n"};
}

}  // namespace cxpulse
