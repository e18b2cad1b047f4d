#!/usr/bin/env bash
# Builds flashmla-harness (harness.cu) against a FlashMLA checkout, with FlashMLA's own nvcc flags for its sm90 dense
# decode, here (nvcc 13, no GPU needed); the binary links the CUDA runtime statically and runs on the GPU machine
# (carry it there). FlashMLA's sources stay outside this repository.
# usage: tools/side_by_side/build.sh FLASHMLA_DIR [OUT_DIR=build/side_by_side]
#   FLASHMLA_DIR: a checkout of deepseek-ai/FlashMLA (measured: 9241ae3, April 2026); its csrc/cutlass submodule may be
#   empty: the CUTLASS headers of third_party/ (scripts/fetch-deps) are used.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$(cd "${1:?usage: build.sh FLASHMLA_DIR [OUT_DIR]}" && pwd)/csrc
out=${2:-$root/build/side_by_side}
mkdir -p "$out"
flags=(-O3 -std=c++20 -DNDEBUG -D_USE_MATH_DEFINES -U__CUDA_NO_HALF_OPERATORS__ -U__CUDA_NO_HALF_CONVERSIONS__
       -U__CUDA_NO_HALF2_OPERATORS__ -U__CUDA_NO_BFLOAT16_CONVERSIONS__ --expt-relaxed-constexpr --expt-extended-lambda
       --use_fast_math --ptxas-options=--register-usage-level=10 -lineinfo -gencode arch=compute_90a,code=sm_90a
       -I"$root" -I"$src" -I"$src/kerutils/include" -I"$src/sm90" -I"$root/third_party/cutlass/include" -w)
nvcc "${flags[@]}" -c "$src/sm90/decode/dense/instantiations/bf16.cu" -o "$out/bf16.o" &
nvcc "${flags[@]}" -c "$src/smxx/decode/combine/combine.cu" -o "$out/combine.o" &
nvcc "${flags[@]}" -c "$src/smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.cu" -o "$out/sched.o" &
nvcc "${flags[@]}" -c "$root/tools/side_by_side/harness.cu" -o "$out/harness.o" &
wait
nvcc -gencode arch=compute_90a,code=sm_90a "$out"/{harness,bf16,combine,sched}.o -o "$out/flashmla-harness" \
  -cudart static -lcuda
echo "$out/flashmla-harness"
