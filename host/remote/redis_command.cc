#include "host/remote/redis_command.h"

namespace kvt::remote {

RedisCommand& RedisCommand::Add(std::string_view arg) {
  args_.push_back({std::string(arg), {}});
  return *this;
}

RedisCommand& RedisCommand::AddView(std::string_view head, std::string_view tail) {
  args_.push_back({std::string(head), tail});
  return *this;
}

uint64_t RedisCommand::encoded_bytes() const {
  uint64_t n = 16;
  for (const Arg& a : args_) n += 24 + a.owned.size() + a.view.size();
  return n;
}

void RedisCommand::Encode(std::vector<iovec>* iov, std::deque<std::string>* arena) const {
  // Small parts are gathered into one scratch string per run of owned bytes; views get their
  // own iovec. Offsets are turned into pointers once the scratch string stops growing.
  std::string scratch = "*" + std::to_string(args_.size()) + "\r\n";
  struct Piece {
    bool in_scratch;
    size_t offset;
    size_t len;
    const char* ptr;
  };
  std::vector<Piece> pieces;
  size_t run_start = 0;
  for (const Arg& a : args_) {
    scratch += "$" + std::to_string(a.owned.size() + a.view.size()) + "\r\n";
    scratch += a.owned;
    if (!a.view.empty()) {
      pieces.push_back({true, run_start, scratch.size() - run_start, nullptr});
      pieces.push_back({false, 0, a.view.size(), a.view.data()});
      run_start = scratch.size();
    }
    scratch += "\r\n";
  }
  pieces.push_back({true, run_start, scratch.size() - run_start, nullptr});
  arena->push_back(std::move(scratch));
  // A deque never moves its elements, so pointers into the string stay valid.
  const std::string& s = arena->back();
  for (const Piece& p : pieces) {
    if (p.len == 0) continue;
    iovec v;
    v.iov_base = const_cast<char*>(p.in_scratch ? s.data() + p.offset : p.ptr);
    v.iov_len = p.len;
    iov->push_back(v);
  }
}

}  // namespace kvt::remote
