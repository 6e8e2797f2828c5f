// Quest page metadata and page scores (CPU). CUDA twin: gpu/kernels/quest_pages.cuh.
// (Tang et al., "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference", Sec. 3:
// per page, per channel min and max of the keys; the page's criticality for query q is the upper
// bound sum_i max(q_i * max_i, q_i * min_i) of any q . k in the page.)
//
// Grouped-query: a KV head serves several query heads, so its page score is the largest of its
// group's bounds (a page matters if any head of the group may attend to it).
// Pure; allocate nothing; parallel over pages (oneTBB); block until done.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::kernels {

// Min/max of `pages` full pages of `page_size` tokens.
//   keys      token-major, rows `token_stride` apart, starting at the first page's first token
//   page_min, page_max [pages][kv_heads][head_dim]
Status QuestPageMinMax(const AttentionShape& shape, int page_size, const Half* keys,
                       int64_t token_stride, int64_t pages, Half* page_min, Half* page_max);

//   query [q_heads][head_dim]; page_min/max [pages][kv_heads][head_dim]; scores [kv_heads][pages]
Status QuestPageScores(const AttentionShape& shape, const float* query, const Half* page_min,
                       const Half* page_max, int64_t pages, float* scores);

}  // namespace kvt::kernels
