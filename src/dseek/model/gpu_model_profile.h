// GpuProfiler: where the GPU training step's time goes, per kernel family. GpuModel tags every
// op it enqueues with a family (GpuOpFamily) and the op's work: model FLOPs and the fewest bytes
// it must move through device memory (each input read once, each output written once). CUPTI's
// activity records (every kernel, copy and memset with its device start and end) are matched to
// the tags through CUPTI's external correlation ids, so a kernel launched inside a library
// (cuBLASLt) lands in the family of the op that called it.
//   family time    = sum of its kernels' device durations (one stream: they never overlap)
//   achieved rate  = family FLOPs / family time, family bytes / family time
// libcupti (CUDA's own) is loaded at run time with dlopen (DSEEK_CUPTI=path, else
// libcupti.so.13 / libcupti.so on the library path): no link-time dependency; when it cannot be
// loaded or refuses to start, start() says why. Profiling adds a few microseconds per launch:
// time the step without it (dseek bench train does).
// Not here: the step's wall clock (the caller's), the roofline ceilings (cli/cmd_bench.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dseek {

enum class GpuOpFamily : int {
  GPU_OP_GEMM,         // dense projections through cuBLASLt (MLA, dense FFN, router, eh_proj)
  GPU_OP_ATTN_FWD,     // flash attention forward
  GPU_OP_ATTN_BWD,     // flash attention backward (incl. its pre/post kernels)
  GPU_OP_MOE_ROUTER,   // router top-k, its backward, balance losses, load counts
  GPU_OP_MOE_EXPERTS,  // permutation, grouped GEMMs (routed + fused shared), combine, backward
  GPU_OP_ELEMENTWISE,  // RMSNorm (+ residual), RoPE, SwiGLU, K assembly, casts, copies
  GPU_OP_EMBEDDING,    // embedding lookup and its backward
  GPU_OP_LM_HEAD,      // LM head + cross-entropy (chunked GEMMs and the CE kernel)
  GPU_OP_OPTIMIZER,    // zeroing gradients, the global grad norm, fused AdamW
  GPU_OP_TRANSFER,     // host <-> device copies (tokens in, losses and loads out, biases in)
  GPU_OP_COUNT
};
const char* gpu_op_family_name(GpuOpFamily f);

struct GpuProfileFamily {
  double ms = 0;                // device time of its kernels, copies and memsets
  double gemm_ms = 0;           // of which in GEMM kernels (cuBLASLt, the grouped GEMMs)
  int64_t launches = 0;         // kernels + copies + memsets
  double flops = 0, bytes = 0;  // the work its tagged ops must do (see the file comment)
};

struct GpuProfileKernel {
  std::string name;                                // demangled, arguments cut
  GpuOpFamily family = GpuOpFamily::GPU_OP_COUNT;  // COUNT: untagged
  double ms = 0;
  int64_t count = 0;
};

struct GpuProfileReport {
  std::vector<GpuProfileFamily> family;   // [GPU_OP_COUNT]
  GpuProfileFamily untagged;              // records outside any tag
  double busy_ms = 0;                     // sum over all records
  double span_ms = 0;                     // first record's start to the last one's end
  double max_gap_ms = 0;                  // the longest idle stretch between two records
  std::vector<GpuProfileKernel> kernels;  // by total time, largest first
};

class GpuProfiler {
 public:
  GpuProfiler();
  ~GpuProfiler();
  GpuProfiler(const GpuProfiler&) = delete;
  GpuProfiler& operator=(const GpuProfiler&) = delete;

  // Loads CUPTI and starts recording. False (why set) when it cannot.
  bool start(std::string* why);
  // Flushes and stops recording; the report covers everything since start().
  GpuProfileReport stop();
  bool active() const;

  // Tags: everything enqueued between push and pop belongs to family f; flops / bytes are the
  // tagged op's work. Tags nest (the innermost wins). No-ops while not active.
  void push(GpuOpFamily f, double flops, double bytes);
  void pop();

  struct State;

 private:
  std::unique_ptr<State> s_;
};

// RAII tag (p may be null).
class GpuProfileTag {
 public:
  GpuProfileTag(GpuProfiler* p, GpuOpFamily f, double flops = 0, double bytes = 0)
      : p_(p && p->active() ? p : nullptr) {
    if (p_) p_->push(f, flops, bytes);
  }
  ~GpuProfileTag() {
    if (p_) p_->pop();
  }
  GpuProfileTag(const GpuProfileTag&) = delete;
  GpuProfileTag& operator=(const GpuProfileTag&) = delete;

 private:
  GpuProfiler* p_;
};

}  // namespace dseek
