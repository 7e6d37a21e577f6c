// ProtoJsonParser: a JSON text in the canonical proto3 JSON mapping into
// the protobuf encoding of the message it denotes, as protobuf's own
// util::JsonStringToMessage (then SerializeToString) reads it, about ten
// times faster (BENCHMARKS.md, "(f) replay"). The encoding then goes through
// the same decoder as a Kafka record (codec/event_decoder.h).
//
// The fast path parses with simdjson (strict JSON, UTF-8 validated) and
// writes each field's encoding straight from the parsed document, fields
// found by lowerCamel or original name through a per-type table. It takes
// only what it is sure protobuf takes the same way: objects of known fields
// each given once (one member of a oneof), strings, bools, enums by name,
// integers within the field's range, numbers for double fields, nested
// messages, maps of string to string, and Timestamps and Durations in their
// plain forms ("2026-11-01T09:00:00.5Z", "1.5s"). Anything else (a null, an
// unknown field, an enum by number, a quoted number, a time offset, invalid
// JSON...) goes to protobuf's parser, which gives the verdict and the error
// message. So what this accepts, and the message it denotes, are what
// JsonStringToMessage gives, with the same options (unknown fields are an
// error); tests/codec/proto_json_test.cc checks it on generated events of
// every body, hand-picked edge cases and randomly corrupted lines.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace cxpulse {

class ProtoJsonParser final {
 public:
  ProtoJsonParser();
  ~ProtoJsonParser();
  ProtoJsonParser(const ProtoJsonParser&) = delete;
  ProtoJsonParser& operator=(const ProtoJsonParser&) = delete;

  // Replaces *wire with the encoding of the message of `type` that `json`
  // denotes. Not OK: protobuf's own error.
  absl::Status ToWire(std::string_view json, const google::protobuf::Descriptor* type, std::string* wire);

  // Clears `message`, then reads `json` into it (ToWire, then parsed).
  absl::Status Parse(std::string_view json, google::protobuf::Message* message);

  // How many texts the fast path left to protobuf's parser.
  uint64_t fallbacks() const { return fallbacks_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string wire_;  // Parse's
  uint64_t fallbacks_ = 0;
};

}  // namespace cxpulse
