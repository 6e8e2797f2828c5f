// RedisCommand — one command of a pipeline, encoded as RESP without copying large arguments:
// an argument is up to two byte ranges (a value's record header and its payload in the host
// slot), written to the socket with writev straight from where they lie. The caller keeps every
// range alive until the pipeline that carries the command has been sent.
//
// RedisReply — an owned hiredis reply.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kvt::remote {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReply = std::unique_ptr<redisReply, ReplyDeleter>;

// Where the bulk reply of a command goes when it is exactly header_bytes + payload_bytes long:
// the first header_bytes into `header`, the rest straight from the socket into `payload` (the
// caller's buffer), with no copy in between. A reply of any other length lands in Reply::text.
struct BulkSink {
  char* header = nullptr;
  uint64_t header_bytes = 0;
  char* payload = nullptr;
  uint64_t payload_bytes = 0;
};

// The most of a bulk reply not placed in a sink that Reply::text keeps; the rest is read and
// dropped. The data path only reads such a value's record header (to say why it is not the chunk
// asked for), so a node answering with a huge value costs a bounded allocation.
inline constexpr uint64_t kMaxTextBulkBytes = 64 << 10;

// A reply of the simple kinds the data path uses (GET, EXISTS, SET, DEL, ASKING).
struct Reply {
  enum class Kind { kStatus, kError, kInteger, kNil, kBulk, kArray };
  Kind kind = Kind::kNil;
  int64_t integer = 0;
  std::string text;     // status, error message, or a bulk not placed in the sink (its first
                        // kMaxTextBulkBytes)
  bool in_sink = false; // the bulk went to the command's BulkSink
  uint64_t bulk_bytes = 0;  // the bulk's whole length
};

class RedisCommand {
 public:
  RedisCommand() = default;
  // Arguments are copied into the command unless added with AddView.
  RedisCommand& Add(std::string_view arg);
  // An argument made of `head` (copied) followed by `tail` (not copied).
  RedisCommand& AddView(std::string_view head, std::string_view tail);

  // The key that routes the command (cluster slot); "" for keyless commands.
  void set_routing_key(std::string key) { routing_key_ = std::move(key); }
  const std::string& routing_key() const { return routing_key_; }
  void set_bulk_sink(BulkSink sink) { sink_ = sink; }
  const BulkSink* bulk_sink() const { return sink_.payload ? &sink_ : nullptr; }

  // Appends the RESP encoding to `iov`; scratch strings it points into go to `arena`, which must
  // outlive the writev.
  void Encode(std::vector<iovec>* iov, std::deque<std::string>* arena) const;
  uint64_t encoded_bytes() const;

 private:
  struct Arg {
    std::string owned;      // head bytes
    std::string_view view;  // tail bytes, not owned
  };
  std::vector<Arg> args_;
  std::string routing_key_;
  BulkSink sink_;
};

}  // namespace kvt::remote
