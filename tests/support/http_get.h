// A blocking HTTP/1.1 request with Boost.Beast, for tests scraping the admin
// endpoint the way Prometheus would.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>

namespace cxpulse::testing {

struct HttpResult {
  int status = 0;  // 0: could not connect
  std::string content_type;
  std::string body;
};

inline HttpResult HttpRequest(const std::string& method, int port, const std::string& target) {
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
  if (ec) return {};
  http::request<http::string_body> req(method == "POST" ? http::verb::post : http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.prepare_payload();
  http::write(socket, req, ec);
  if (ec) return {};
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res, ec);
  if (ec) return {};
  return {static_cast<int>(res.result_int()), std::string(res[http::field::content_type]), res.body()};
}

inline HttpResult HttpGet(int port, const std::string& target) { return HttpRequest("GET", port, target); }

}  // namespace cxpulse::testing
