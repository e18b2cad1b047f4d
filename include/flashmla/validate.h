// Argument validation shared by every backend. Each function throws flashmla::InvalidArgument whose message names
// the argument, the expectation and the actual value; it reads only shapes, strides, dtypes and devices, never the
// tensors' contents (those may live on the GPU). Content checks (cache_seqlens within the block table, block_table
// entries within k_cache, ...) are done by the CPU reference, which reads them anyway, and by the GPU checked mode.
//
// These are the semantic rules of the operations (spec section 2). What a particular kernel does not implement
// (e.g. a page size) is reported separately by that backend as flashmla::Unsupported.
#pragma once

#include "flashmla/params.h"

namespace flashmla {

void validate(const DenseDecodeParams& p);
void validate(const SparseDecodeParams& p);
void validate(const SparsePrefillParams& p);
/// Checks a quantize or dequantize call (the tensors are the same, only the direction differs).
void validate(const KvQuantizeParams& p);

}  // namespace flashmla
