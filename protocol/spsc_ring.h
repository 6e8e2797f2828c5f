// SpscRing — a single-producer single-consumer ring of fixed-size entries in shared memory.
//
// Memory: a RingHeader followed by `capacity` entries, placed by the daemon inside a client's
// shared region. The producer owns `tail`, the consumer owns `head`; both are free-running
// 32-bit counters (slot = counter & mask). Publication is release/acquire on those counters.
//
// Wake-ups: a consumer about to sleep sets `consumer_waiting`, re-checks the ring, then blocks on
// an eventfd; a producer that sees the flag after publishing writes the eventfd. A busy consumer
// never sleeps, so a busy producer makes no system call per entry.
//
// Trust: the peer can write anything into the shared header. Capacity and mask live in this
// object (daemon-chosen), never re-read from shared memory, and every counter read from the
// peer is checked: an impossible distance between head and tail is reported as corruption.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace kvt::protocol {

struct alignas(64) RingCounter {
  std::atomic<uint32_t> value;
};

struct RingHeader {
  RingCounter head;                         // consumer position
  RingCounter tail;                         // producer position
  RingCounter consumer_waiting;             // 1 while the consumer sleeps (or is about to)
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(RingHeader) == 192);

enum class RingResult { kOk, kEmpty, kFull, kCorrupt };

template <typename Entry>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<Entry>);

 public:
  SpscRing() = default;
  // `memory` points at a RingHeader followed by capacity entries; capacity is a power of two.
  SpscRing(void* memory, uint32_t capacity)
      : header_(static_cast<RingHeader*>(memory)),
        entries_(reinterpret_cast<Entry*>(static_cast<char*>(memory) + sizeof(RingHeader))),
        capacity_(capacity),
        mask_(capacity - 1) {}

  static constexpr uint64_t BytesFor(uint32_t capacity) {
    return sizeof(RingHeader) + uint64_t{capacity} * sizeof(Entry);
  }

  // Producer side.
  RingResult TryPush(const Entry& entry) {
    uint32_t tail = header_->tail.value.load(std::memory_order_relaxed);
    uint32_t head = header_->head.value.load(std::memory_order_acquire);
    uint32_t used = tail - head;
    if (used > capacity_) return RingResult::kCorrupt;
    if (used == capacity_) return RingResult::kFull;
    std::memcpy(&entries_[tail & mask_], &entry, sizeof(Entry));
    header_->tail.value.store(tail + 1, std::memory_order_release);
    return RingResult::kOk;
  }

  // After a successful push: true if the consumer asked to be woken. The other half of
  // PrepareToWait's handshake: each side writes its own word (here tail, there the flag) and then
  // reads the other's, all four sequentially consistent, so at least one side sees the other's
  // write: the consumer finds the entry and stays awake, or the producer finds the flag and wakes
  // it. The tail is written again by a seq_cst read-modify-write that adds 0 (the push stored it
  // with release), which orders it before the flag read as a full fence would; atomic operations
  // instead of a fence because ThreadSanitizer models the former and not the latter.
  bool ConsumerNeedsWake() const {
    header_->tail.value.fetch_add(0, std::memory_order_seq_cst);
    return header_->consumer_waiting.value.load(std::memory_order_seq_cst) != 0;
  }

  // Consumer side. The entry is copied out before anyone looks at it (no double fetch).
  RingResult TryPop(Entry* out) {
    uint32_t head = header_->head.value.load(std::memory_order_relaxed);
    uint32_t tail = header_->tail.value.load(std::memory_order_acquire);
    uint32_t used = tail - head;
    if (used > capacity_) return RingResult::kCorrupt;
    if (used == 0) return RingResult::kEmpty;
    std::memcpy(out, &entries_[head & mask_], sizeof(Entry));
    header_->head.value.store(head + 1, std::memory_order_release);
    return RingResult::kOk;
  }

  // Like TryPop, but calls before_release(slot) while the slot is still owned by the consumer,
  // to copy side tables indexed like the ring (e.g. error messages) before the producer reuses it.
  template <typename F>
  RingResult TryPopWith(Entry* out, F&& before_release) {
    uint32_t head = header_->head.value.load(std::memory_order_relaxed);
    uint32_t tail = header_->tail.value.load(std::memory_order_acquire);
    uint32_t used = tail - head;
    if (used > capacity_) return RingResult::kCorrupt;
    if (used == 0) return RingResult::kEmpty;
    std::memcpy(out, &entries_[head & mask_], sizeof(Entry));
    before_release(head & mask_);
    header_->head.value.store(head + 1, std::memory_order_release);
    return RingResult::kOk;
  }

  // Slot index the next TryPush will write (for side tables indexed like the ring).
  uint32_t NextPushSlot() const { return header_->tail.value.load(std::memory_order_relaxed) & mask_; }
  // Slot index the next TryPop will read.
  uint32_t NextPopSlot() const { return header_->head.value.load(std::memory_order_relaxed) & mask_; }

  // Consumer announces it is going to sleep; returns true if the ring is still empty (then sleep).
  // (The flag store and the tail load are the consumer's half of ConsumerNeedsWake's handshake.)
  bool PrepareToWait() {
    header_->consumer_waiting.value.store(1, std::memory_order_seq_cst);
    uint32_t head = header_->head.value.load(std::memory_order_relaxed);
    uint32_t tail = header_->tail.value.load(std::memory_order_seq_cst);
    if (tail != head) {
      header_->consumer_waiting.value.store(0, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void FinishWait() { header_->consumer_waiting.value.store(0, std::memory_order_relaxed); }

  bool Empty() const {
    return header_->tail.value.load(std::memory_order_acquire) ==
           header_->head.value.load(std::memory_order_relaxed);
  }
  uint32_t Occupancy() const {
    uint32_t used = header_->tail.value.load(std::memory_order_acquire) -
                    header_->head.value.load(std::memory_order_acquire);
    return used > capacity_ ? capacity_ : used;
  }
  uint32_t capacity() const { return capacity_; }

  // Initializes a fresh header (the creator, before sharing it).
  static void Initialize(void* memory) {
    auto* h = new (memory) RingHeader();
    h->head.value.store(0);
    h->tail.value.store(0);
    h->consumer_waiting.value.store(0);
  }

 private:
  RingHeader* header_ = nullptr;
  Entry* entries_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t mask_ = 0;
};

}  // namespace kvt::protocol
