#include "examples/llama/llama2c_loader.h"

#include "examples/llama/internal/byte_reader.h"
#include "examples/llama/internal/file_bytes.h"

namespace kvt::llama {

StatusOr<ModelWeights> ParseLlama2cCheckpoint(const std::vector<uint8_t>& bytes,
                                              const std::string& source) {
  internal::ByteReader r(bytes.data(), bytes.size(), source);
  int32_t header[7];
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads",
                          "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    KVT_ASSIGN_OR_RETURN(header[i], r.Read<int32_t>(names[i]));
  }
  ModelConfig c;
  c.dim = header[0];
  c.hidden_dim = header[1];
  c.n_layers = header[2];
  c.n_heads = header[3];
  c.n_kv_heads = header[4];
  const bool shared = header[5] > 0;
  c.vocab_size = header[5] == INT32_MIN ? 0 : (shared ? header[5] : -header[5]);
  c.seq_len = header[6];
  if (Status s = c.Validate(); !s.ok()) return s.WithContext(source + ": bad llama2.c header");

  // Check the whole length before allocating anything the header asks for.
  const uint64_t rope_tables = 2ull * c.seq_len * (c.head_dim() / 2);
  const uint64_t need = c.WeightElements(shared) + rope_tables;
  if (need > r.remaining() / sizeof(float)) {
    return Corruption(source + ": truncated llama2.c checkpoint: header " + c.ToString() + " needs " +
                      std::to_string(28 + need * sizeof(float)) + " bytes, file has " +
                      std::to_string(bytes.size()));
  }

  ModelWeights w;
  w.Allocate(c, shared);
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.tok_emb.size(), "tok_emb", w.tok_emb.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.rms_att.size(), "rms_att", w.rms_att.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.wq.size(), "wq", w.wq.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.wk.size(), "wk", w.wk.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.wv.size(), "wv", w.wv.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.wo.size(), "wo", w.wo.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.rms_ffn.size(), "rms_ffn", w.rms_ffn.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.w1.size(), "w1", w.w1.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.w2.size(), "w2", w.w2.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.w3.size(), "w3", w.w3.data()));
  KVT_RETURN_IF_ERROR(r.ReadFloats(w.rms_final.size(), "rms_final", w.rms_final.data()));
  KVT_RETURN_IF_ERROR(r.Skip(rope_tables * sizeof(float), "legacy RoPE tables"));
  if (!shared) KVT_RETURN_IF_ERROR(r.ReadFloats(w.wcls.size(), "wcls", w.wcls.data()));
  if (Status s = w.Validate(); !s.ok()) return s.WithContext(source);
  return w;
}

StatusOr<ModelWeights> LoadLlama2cCheckpoint(const std::string& path) {
  KVT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, internal::ReadFileBytes(path));
  return ParseLlama2cCheckpoint(bytes, path);
}

}  // namespace kvt::llama
