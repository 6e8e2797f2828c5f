// kvt-bench nvme --dir DIR [--json] [--mib N] [--readers N] [--io-workers N] [--raw-depth N]
//
// Raw io_uring O_DIRECT sequential 1 MiB reads and writes on DIR (the physical limit of this
// run, measured before and after the tier, their mean the limit), then the NVMe tier in-process under a BlockStore with a small host tier: demotion and
// promotion throughput of 2 MiB chunks (8 concurrent readers), and p50/p99 latency of random 256 KiB chunk reads through
// BlockStore::Get -> NvmeTier::Read (scheduler, io_uring, verification, copy out).
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <fcntl.h>
#include <unistd.h>

#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "host/nvme/io_queue.h"
#include "host/nvme/nvme_tier.h"
#include "host/nvme/staging_pool.h"
#include "tiering/block_store.h"
#include "tiering/lru_policy.h"
#include "tools/kvt_bench/bench_commands.h"

namespace kvt::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

std::string FsName(const std::string& dir) {
  struct statfs s;
  if (::statfs(dir.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    default: {
      char b[32];
      std::snprintf(b, sizeof b, "0x%lx", static_cast<unsigned long>(s.f_type));
      return b;
    }
  }
}

std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

// Raw sequential 1 MiB O_DIRECT io_uring throughput (GB/s) over `bytes`, `depth` blocks in flight.
bool RawThroughput(const std::string& dir, uint64_t bytes, uint32_t depth, double* write_gbps, double* read_gbps,
                   std::string* note) {
  auto q = nvme::MakeIoQueue({nvme::IoBackend::kIoUring, dir, depth});
  if (!q.ok()) {
    *note = q.status().ToString();
    return false;
  }
  *note = (*q)->capabilities().note;
  std::string path = dir + "/raw-bench.tmp";
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | ((*q)->capabilities().direct ? O_DIRECT : 0), 0600));
  if (!fd.valid()) return false;
  ::fallocate(fd.get(), 0, 0, static_cast<off_t>(bytes));
  constexpr uint64_t kBlock = 1 << 20;
  const uint64_t kDepth = depth;
  auto pool = nvme::StagingPool::Create(kBlock * kDepth);
  (*q)->RegisterBuffer((*pool)->base(), (*pool)->size());
  std::memset((*pool)->base(), 0x5a, (*pool)->size());
  auto pass = [&](nvme::IoRequest::Op op) {
    auto t0 = Clock::now();
    for (uint64_t off = 0; off < bytes; off += kBlock * kDepth) {
      std::vector<nvme::IoRequest> rs;
      for (uint64_t i = 0; i < kDepth && off + i * kBlock < bytes; ++i) {
        rs.push_back({op, fd.get(), (*pool)->base() + i * kBlock, static_cast<uint32_t>(kBlock), off + i * kBlock, 0});
      }
      (*q)->Run(rs);
    }
    if (op == nvme::IoRequest::Op::kWrite) (*q)->Sync(fd.get()).IgnoreError();
    return static_cast<double>(bytes) / Seconds(t0) / 1e9;
  };
  *write_gbps = pass(nvme::IoRequest::Op::kWrite);
  *read_gbps = pass(nvme::IoRequest::Op::kRead);
  ::unlink(path.c_str());
  return true;
}

std::vector<char> Payload(uint64_t i, uint64_t bytes) {
  std::vector<char> p(bytes);
  std::mt19937_64 rng(i);
  for (size_t k = 0; k + 8 <= bytes; k += 8) {
    uint64_t v = rng();
    std::memcpy(&p[k], &v, 8);
  }
  return p;
}

}  // namespace

int RunNvmeBench(int argc, char** argv) {
  std::string dir;
  bool json = false;
  uint64_t mib = 1024;
  int readers_n = 8;
  uint32_t io_workers = 0;
  uint32_t raw_depth = 8;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (a == "--json") json = true;
    else if (a == "--mib" && i + 1 < argc) mib = std::stoull(argv[++i]);
    else if (a == "--readers" && i + 1 < argc) readers_n = std::max(1, std::stoi(argv[++i]));
    else if (a == "--io-workers" && i + 1 < argc) io_workers = static_cast<uint32_t>(std::stoul(argv[++i]));
    else if (a == "--raw-depth" && i + 1 < argc) raw_depth = std::max(1u, static_cast<uint32_t>(std::stoul(argv[++i])));
    else {
      std::fprintf(stderr, "usage: kvt-bench nvme --dir DIR [--json] [--mib N] [--readers N] [--io-workers N] [--raw-depth N]\n");
      return 2;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "kvt-bench nvme: --dir is required\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  std::string work = dir + "/kvt-nvme-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(work);
  const uint64_t bytes = mib << 20;

  // The raw limit is measured before and after the tier (a shared virtual disk drifts over a
  // run) and the mean of the two is the limit the tier's numbers are divided by.
  double raw_w = 0, raw_r = 0, raw_w1 = 0, raw_r1 = 0, raw_w2 = 0, raw_r2 = 0;
  std::string raw_note;
  if (!RawThroughput(work, bytes, raw_depth, &raw_w1, &raw_r1, &raw_note)) {
    std::fprintf(stderr, "kvt-bench nvme: raw io_uring failed: %s\n", raw_note.c_str());
    std::filesystem::remove_all(work);
    return 1;
  }

  // The tier: 256 MiB host tier (its arena registered with io_uring), tier capacity 2x the data,
  // 2 MiB chunks.
  prometheus::Registry registry;
  host::HostTierOptions ho;
  ho.capacity_bytes = 256 << 20;
  ho.lock_memory = false;
  auto host = host::HostTier::Create(ho);
  tiering::BlockStore store(host->get(), std::make_unique<tiering::LruPolicy>(), registry);
  nvme::NvmeTierOptions o;
  o.dir = work + "/tier";
  std::filesystem::create_directories(o.dir);
  o.capacity_bytes = std::max<uint64_t>(2 * bytes, 512ull << 20);
  o.segment_bytes = 64 << 20;
  o.flush_interval_ms = 0;
  o.staging_bytes = 256 << 20;
  o.writeback_bytes = 64 << 20;
  if (io_workers) o.io_workers = io_workers;
  o.host_arena = {(*host)->base(), (*host)->capacity_bytes()};
  o.promote_on_hit = false;  // measure the read path, not host-tier churn
  auto tier = nvme::NvmeTier::Create(o, registry);
  if (!tier.ok()) {
    std::fprintf(stderr, "kvt-bench nvme: %s\n", tier.status().ToString().c_str());
    return 1;
  }
  nvme::NvmeTier* t = tier->get();
  store.set_lower_tier(t);
  store.set_eviction_sink([t](const tiering::ChunkIndex::EntryPtr& e, tiering::EvictionReason) { t->Demote(e); });
  const tiering::Fingerprint fp{1, 2};

  constexpr uint64_t kBig = 2 << 20;
  const uint64_t n = bytes / kBig;
  std::vector<std::vector<char>> payloads;
  for (uint64_t i = 0; i < 8; ++i) payloads.push_back(Payload(i, kBig));
  // Demotion: store n chunks; every store past the host capacity evicts one into write-back,
  // written straight from its host slot; timed until the write-back is durable. The loop waits
  // for write-back room before each store (as a producer that must not lose demotions would),
  // so nothing is dropped and the disk queue never runs dry.
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    t->WaitForWriteBackRoom(kBig, Deadline::After(std::chrono::seconds(60))).IgnoreError();
    store.Put({i + 1, 7}, fp, payloads[i % 8].data(), kBig).status().IgnoreError();
  }
  store.Evict(UINT64_MAX, tiering::EvictionReason::kOperator);
  t->Flush(Deadline::After(std::chrono::seconds(60))).IgnoreError();
  double demote_gbps = static_cast<double>(n * kBig) / Seconds(t0) / 1e9;
  const uint64_t demoted = t->counters().chunks;  // n unless demotions were dropped
  if (demoted < n) std::fprintf(stderr, "kvt-bench nvme: only %llu of %llu chunks reached NVMe\n",
                                static_cast<unsigned long long>(demoted), static_cast<unsigned long long>(n));

  // Promotion: read every chunk back through the store (all host misses), `readers` threads
  // (8 unless --readers) retrieving at once, as concurrent engine sessions do.
  t0 = Clock::now();
  std::vector<std::thread> readers;
  std::atomic<uint64_t> next{0}, bad{0};
  for (int r = 0; r < readers_n; ++r) {
    readers.emplace_back([&] {
      std::vector<char> o2(kBig);
      for (uint64_t i; (i = next++) < n;) {
        Status st = store.Get({i + 1, 7}, fp, o2.data(), kBig);
        if (!st.ok() || std::memcmp(o2.data(), payloads[i % 8].data(), kBig)) {
          ++bad;
          std::fprintf(stderr, "kvt-bench nvme: chunk %llu: %s\n", static_cast<unsigned long long>(i),
                       st.ok() ? "wrong bytes" : st.ToString().c_str());
        }
      }
    });
  }
  for (auto& th : readers) th.join();
  double promote_gbps = static_cast<double>(n * kBig) / Seconds(t0) / 1e9;

  // Random 256 KiB chunk reads, one at a time (latency).
  constexpr uint64_t kSmall = 256 << 10;
  const uint64_t m = std::min<uint64_t>(2048, bytes / kSmall);
  auto small = Payload(99, kSmall);
  for (uint64_t i = 0; i < m; ++i) {
    // Paced like the demotion phase, so no demotion is dropped and every read below can hit.
    t->WaitForWriteBackRoom(kSmall, Deadline::After(std::chrono::seconds(60))).IgnoreError();
    store.Put({i + 1, 9}, fp, small.data(), kSmall).status().IgnoreError();
  }
  store.Evict(UINT64_MAX, tiering::EvictionReason::kOperator);
  t->Flush(Deadline::After(std::chrono::seconds(60))).IgnoreError();
  std::vector<double> lat;
  std::mt19937_64 rng(3);
  std::vector<char> so(kSmall);
  for (int k = 0; k < 2000; ++k) {
    uint64_t i = rng() % m;
    auto s0 = Clock::now();
    Status st = store.Get({i + 1, 9}, fp, so.data(), kSmall);
    if (!st.ok()) {
      ++bad;
      std::fprintf(stderr, "kvt-bench nvme: 256 KiB chunk %llu: %s\n", static_cast<unsigned long long>(i),
                   st.ToString().c_str());
    }
    lat.push_back(Seconds(s0) * 1e6);
  }
  std::sort(lat.begin(), lat.end());
  double p50 = lat[lat.size() / 2], p99 = lat[lat.size() * 99 / 100];
  if (demoted < n) bad += n - demoted;
  const auto caps = t->queue_capabilities();
  const bool arena_registered = t->host_arena_registered();
  tier->reset();
  std::filesystem::remove_all(o.dir);
  if (!RawThroughput(work, bytes, raw_depth, &raw_w2, &raw_r2, &raw_note)) {
    std::fprintf(stderr, "kvt-bench nvme: raw io_uring failed: %s\n", raw_note.c_str());
    std::filesystem::remove_all(work);
    return 1;
  }
  raw_w = (raw_w1 + raw_w2) / 2;
  raw_r = (raw_r1 + raw_r2) / 2;
  std::filesystem::remove_all(work);

  utsname u{};
  ::uname(&u);
  std::string fs = FsName(dir);
  if (json) {
    std::printf(
        "{\n  \"machine\": \"%s, %ld cpus, Linux %s\",\n  \"dir\": \"%s\",\n  \"filesystem\": \"%s\",\n"
        "  \"bytes\": %llu,\n  \"queue\": \"%s\",\n  \"direct\": %s,\n  \"registered_buffers\": %s,\n"
        "  \"host_arena_registered\": %s,\n  \"readers\": %d,\n  \"raw_depth\": %u,\n"
        "  \"raw_write_gbps_before\": %.3f,\n  \"raw_write_gbps_after\": %.3f,\n"
        "  \"raw_read_gbps_before\": %.3f,\n  \"raw_read_gbps_after\": %.3f,\n"
        "  \"raw_write_gbps\": %.3f,\n  \"raw_read_gbps\": %.3f,\n  \"demote_gbps\": %.3f,\n  \"promote_gbps\": %.3f,\n"
        "  \"demote_vs_raw\": %.3f,\n  \"promote_vs_raw\": %.3f,\n  \"nvme_read_p50_us\": %.1f,\n"
        "  \"nvme_read_p99_us\": %.1f,\n  \"verify_failures\": %llu\n}\n",
        CpuName().c_str(), sysconf(_SC_NPROCESSORS_ONLN), u.release, dir.c_str(), fs.c_str(),
        static_cast<unsigned long long>(bytes), caps.backend.c_str(), caps.direct ? "true" : "false",
        caps.registered_buffers ? "true" : "false", arena_registered ? "true" : "false", readers_n, raw_depth, raw_w1, raw_w2,
        raw_r1, raw_r2, raw_w, raw_r, demote_gbps, promote_gbps, demote_gbps / raw_w,
        promote_gbps / raw_r, p50, p99, static_cast<unsigned long long>(bad.load()));
  } else {
    std::printf("nvme bench on %s (%s): raw write %.2f GB/s, raw read %.2f GB/s | demote %.2f GB/s (%.2f of raw), "
                "promote %.2f GB/s (%.2f of raw) | 256 KiB read p50 %.0f us p99 %.0f us | %llu verify failures\n",
                dir.c_str(), fs.c_str(), raw_w, raw_r, demote_gbps, demote_gbps / raw_w, promote_gbps,
                promote_gbps / raw_r, p50, p99, static_cast<unsigned long long>(bad.load()));
  }
  return bad ? 1 : 0;
}

}  // namespace kvt::bench
