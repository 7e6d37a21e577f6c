// Reads the event files `cxpulse gen --output` writes: JSON lines, or
// length-delimited protobuf if the name ends in .pb.
#pragma once

#include <google/protobuf/io/coded_stream.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cx/v1/event.pb.h"
#include "support/command.h"

namespace cxpulse::testing {

// Every event of the file. Anything that does not parse fails the test.
inline std::vector<cx::v1::InteractionEvent> ReadEvents(const std::string& path) {
  std::vector<cx::v1::InteractionEvent> events;
  if (path.ends_with(".pb")) {
    const std::string bytes = ReadFile(path);
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                              static_cast<int>(bytes.size()));
    for (uint32_t size; in.ReadVarint32(&size);) {
      std::string message;
      EXPECT_TRUE(in.ReadString(&message, static_cast<int>(size)));
      EXPECT_TRUE(events.emplace_back().ParseFromString(message)) << "event " << events.size();
    }
    EXPECT_EQ(in.CurrentPosition(), static_cast<int>(bytes.size())) << "a truncated message at the end";
    return events;
  }
  return ReadJsonLines<cx::v1::InteractionEvent>(path);
}

}  // namespace cxpulse::testing
