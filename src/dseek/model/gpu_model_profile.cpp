// GpuProfiler (gpu_model_profile.h): CUPTI activity records -> per-family device time. CUPTI's
// buffers arrive through two C callbacks (static functions below) that append to the one
// recording profiler's lists; stop() flushes them and sums per tag family and per kernel name.
#include "dseek/model/gpu_model_profile.h"

#include "dseek/core/error.h"

#ifdef DSEEK_HAVE_CUDA

#include <cuda_runtime_api.h>  // cudaDeviceSynchronize
#include <cupti_activity.h>    // activity records and the API (types only: loaded with dlopen)
#include <cxxabi.h>            // abi::__cxa_demangle
#include <dlfcn.h>             // dlopen, dlsym

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

namespace dseek {

// ---------------------------------------------------------------------------------------------
// CUPTI, loaded at run time

namespace {

constexpr size_t kBufferBytes = 16u << 20;
constexpr CUpti_ExternalCorrelationKind kExtKind = CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0;
constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
                                         CUPTI_ACTIVITY_KIND_MEMCPY,
                                         CUPTI_ACTIVITY_KIND_MEMSET,
                                         CUPTI_ACTIVITY_KIND_RUNTIME,
                                         CUPTI_ACTIVITY_KIND_DRIVER,
                                         CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION};

struct CuptiApi {
  void* lib = nullptr;
  std::string error;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityPushExternalCorrelationId) push_ext = nullptr;
  decltype(&cuptiActivityPopExternalCorrelationId) pop_ext = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
};

const CuptiApi& cupti() {
  static const CuptiApi api = [] {
    CuptiApi a;
    std::vector<std::string> names;
    if (const char* e = std::getenv("DSEEK_CUPTI")) names.push_back(e);
    names.push_back("libcupti.so.13");
    names.push_back("libcupti.so");
    for (const std::string& n : names)
      if ((a.lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    if (!a.lib) {
      a.error = "cannot load libcupti (CUDA's CUPTI; set DSEEK_CUPTI=/path/libcupti.so.13)";
      return a;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(a.lib, name));
      if (!fn && a.error.empty()) a.error = std::string("libcupti has no ") + name;
    };
    sym(a.enable, "cuptiActivityEnable");
    sym(a.disable, "cuptiActivityDisable");
    sym(a.register_callbacks, "cuptiActivityRegisterCallbacks");
    sym(a.flush_all, "cuptiActivityFlushAll");
    sym(a.next_record, "cuptiActivityGetNextRecord");
    sym(a.push_ext, "cuptiActivityPushExternalCorrelationId");
    sym(a.pop_ext, "cuptiActivityPopExternalCorrelationId");
    sym(a.result_string, "cuptiGetResultString");
    return a;
  }();
  return api;
}

std::string cupti_error(CUptiResult r) {
  const char* s = nullptr;
  if (cupti().result_string) cupti().result_string(r, &s);
  return s ? s : std::to_string((int)r);
}

// One device record: a kernel (name set), a copy or a memset.
struct Record {
  uint32_t corr = 0;
  uint64_t start = 0, end = 0;
  std::string name;
};

struct Sink {
  std::mutex mu;
  std::vector<Record> records;
  std::unordered_map<uint32_t, uint64_t> ext;  // correlation id -> our tag id
};
Sink* g_sink = nullptr;  // the recording profiler's (one at a time)

void CUPTIAPI buffer_requested(uint8_t** buf, size_t* size, size_t* max_records) {
  *buf = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buf ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buf, size_t, size_t valid) {
  if (g_sink && valid > 0) {
    std::lock_guard<std::mutex> lk(g_sink->mu);
    CUpti_Activity* r = nullptr;
    while (cupti().next_record(buf, valid, &r) == CUPTI_SUCCESS) {
      switch (r->kind) {
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
        case CUPTI_ACTIVITY_KIND_KERNEL: {
          const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(r);
          g_sink->records.push_back({k->correlationId, k->start, k->end, k->name ? k->name : "?"});
          break;
        }
        case CUPTI_ACTIVITY_KIND_MEMCPY: {
          const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(r);
          const char* what = m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD   ? "[memcpy HtoD]"
                             : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH ? "[memcpy DtoH]"
                                                                              : "[memcpy DtoD]";
          g_sink->records.push_back({m->correlationId, m->start, m->end, what});
          break;
        }
        case CUPTI_ACTIVITY_KIND_MEMSET: {
          const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(r);
          g_sink->records.push_back({m->correlationId, m->start, m->end, "[memset]"});
          break;
        }
        case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION: {
          const auto* e = reinterpret_cast<const CUpti_ActivityExternalCorrelation*>(r);
          if (e->externalKind == kExtKind) g_sink->ext[e->correlationId] = e->externalId;
          break;
        }
        default:
          break;
      }
    }
  }
  std::free(buf);
}

// "void dseek::cuda::(anonymous namespace)::fwd_kernel<64, 2>(dseek::cuda::FwdParams)" ->
// "fwd_kernel<64, 2>"
std::string short_name(const std::string& mangled) {
  int st = 0;
  char* d = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &st);
  std::string s = st == 0 && d ? d : mangled;
  std::free(d);
  if (s.rfind("void ", 0) == 0) s = s.substr(5);
  size_t cut = std::string::npos;
  for (size_t i = 0, depth = 0; i < s.size(); i++) {  // first '(' outside template brackets
    if (s[i] == '<') depth++;
    if (s[i] == '>' && depth > 0) depth--;
    if (s[i] == '(' && depth == 0 && s.compare(i, 21, "(anonymous namespace)") != 0) {
      cut = i;
      break;
    }
  }
  if (cut != std::string::npos) s = s.substr(0, cut);
  for (const char* pre : {"dseek::cuda::", "(anonymous namespace)::"})
    for (size_t p; (p = s.find(pre)) != std::string::npos;) s.erase(p, std::string(pre).size());
  if (s.size() > 90) s = s.substr(0, 87) + "...";
  return s;
}

bool is_gemm_kernel(const std::string& name) {
  for (const char* k : {"gemm", "nvjet", "xmma", "cutlass", "grouped_rows", "grouped_wgrad"})
    if (name.find(k) != std::string::npos) return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// GpuProfiler

struct GpuProfiler::State {
  bool active = false;
  uint64_t next_id = 0;
  std::vector<int> tag_family = {-1};  // by tag id (0 unused)
  std::vector<double> flops = std::vector<double>((int)GpuOpFamily::GPU_OP_COUNT, 0.0);
  std::vector<double> bytes = std::vector<double>((int)GpuOpFamily::GPU_OP_COUNT, 0.0);
  Sink sink;
};

GpuProfiler::GpuProfiler() : s_(std::make_unique<State>()) {}

GpuProfiler::~GpuProfiler() {
  if (s_->active) stop();
}

bool GpuProfiler::active() const {
  return s_->active;
}

bool GpuProfiler::start(std::string* why) {
  const CuptiApi& c = cupti();
  auto fail_with = [&](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  if (!c.error.empty()) return fail_with(c.error);
  if (g_sink) return fail_with("another GpuProfiler is recording");
  DSEEK_CHECK(cudaDeviceSynchronize() == cudaSuccess, "GpuProfiler: device error before start");
  g_sink = &s_->sink;
  CUptiResult r = c.register_callbacks(buffer_requested, buffer_completed);
  for (CUpti_ActivityKind k : kKinds)
    if (r == CUPTI_SUCCESS) r = c.enable(k);
  if (r != CUPTI_SUCCESS) {
    for (CUpti_ActivityKind k : kKinds) c.disable(k);
    g_sink = nullptr;
    return fail_with("CUPTI refused to record activity: " + cupti_error(r));
  }
  s_->active = true;
  return true;
}

void GpuProfiler::push(GpuOpFamily f, double flops, double bytes) {
  if (!s_->active) return;
  const uint64_t id = ++s_->next_id;
  s_->tag_family.push_back((int)f);
  s_->flops[(int)f] += flops;
  s_->bytes[(int)f] += bytes;
  cupti().push_ext(kExtKind, id);
}

void GpuProfiler::pop() {
  if (!s_->active) return;
  uint64_t last = 0;
  cupti().pop_ext(kExtKind, &last);
}

GpuProfileReport GpuProfiler::stop() {
  GpuProfileReport rep;
  rep.family.resize((int)GpuOpFamily::GPU_OP_COUNT);
  if (!s_->active) return rep;
  const CuptiApi& c = cupti();
  cudaDeviceSynchronize();
  c.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  for (CUpti_ActivityKind k : kKinds) c.disable(k);
  c.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  s_->active = false;
  g_sink = nullptr;

  std::vector<Record>& recs = s_->sink.records;
  std::sort(recs.begin(), recs.end(),
            [](const Record& a, const Record& b) { return a.start < b.start; });
  std::map<std::pair<std::string, int>, GpuProfileKernel> by_name;
  std::unordered_map<std::string, std::string> short_names;
  uint64_t last_end = 0;
  for (const Record& r : recs) {
    if (r.end <= r.start) continue;
    const double ms = (double)(r.end - r.start) * 1e-6;
    auto it = s_->sink.ext.find(r.corr);
    const int fam = it != s_->sink.ext.end() && it->second < s_->tag_family.size()
                        ? s_->tag_family[it->second]
                        : -1;
    std::string& sn = short_names[r.name];
    if (sn.empty()) sn = short_name(r.name);
    const bool gemm = is_gemm_kernel(sn);
    GpuProfileFamily& f = fam >= 0 ? rep.family[fam] : rep.untagged;
    f.ms += ms;
    f.launches++;
    if (gemm) f.gemm_ms += ms;
    rep.busy_ms += ms;
    if (last_end > 0 && r.start > last_end)
      rep.max_gap_ms = std::max(rep.max_gap_ms, (double)(r.start - last_end) * 1e-6);
    last_end = std::max(last_end, r.end);
    GpuProfileKernel& k = by_name[{sn, fam}];
    k.name = sn;
    k.family = fam >= 0 ? (GpuOpFamily)fam : GpuOpFamily::GPU_OP_COUNT;
    k.ms += ms;
    k.count++;
  }
  if (!recs.empty()) rep.span_ms = (double)(last_end - recs.front().start) * 1e-6;
  for (int f = 0; f < (int)GpuOpFamily::GPU_OP_COUNT; f++) {
    rep.family[f].flops = s_->flops[f];
    rep.family[f].bytes = s_->bytes[f];
  }
  for (auto& kv : by_name) rep.kernels.push_back(kv.second);
  std::sort(rep.kernels.begin(), rep.kernels.end(),
            [](const GpuProfileKernel& a, const GpuProfileKernel& b) { return a.ms > b.ms; });
  recs.clear();
  s_->sink.ext.clear();
  return rep;
}

}  // namespace dseek

#else  // no CUDA

namespace dseek {

struct GpuProfiler::State {};
GpuProfiler::GpuProfiler() = default;
GpuProfiler::~GpuProfiler() = default;
bool GpuProfiler::active() const {
  return false;
}
bool GpuProfiler::start(std::string* why) {
  if (why) *why = "dseek was built without CUDA";
  return false;
}
void GpuProfiler::push(GpuOpFamily, double, double) {}
void GpuProfiler::pop() {}
GpuProfileReport GpuProfiler::stop() {
  return {};
}

}  // namespace dseek

#endif

namespace dseek {

const char* gpu_op_family_name(GpuOpFamily f) {
  switch (f) {
    case GpuOpFamily::GPU_OP_GEMM:
      return "GEMMs (cuBLASLt: MLA, dense FFN, router, eh_proj)";
    case GpuOpFamily::GPU_OP_ATTN_FWD:
      return "attention forward (flash)";
    case GpuOpFamily::GPU_OP_ATTN_BWD:
      return "attention backward (flash)";
    case GpuOpFamily::GPU_OP_MOE_ROUTER:
      return "MoE router, balance losses";
    case GpuOpFamily::GPU_OP_MOE_EXPERTS:
      return "MoE experts (permute, grouped GEMMs, combine)";
    case GpuOpFamily::GPU_OP_ELEMENTWISE:
      return "norms, RoPE, SwiGLU, K assembly, casts";
    case GpuOpFamily::GPU_OP_EMBEDDING:
      return "embedding";
    case GpuOpFamily::GPU_OP_LM_HEAD:
      return "LM head + cross-entropy";
    case GpuOpFamily::GPU_OP_OPTIMIZER:
      return "zero grads, grad norm, AdamW";
    case GpuOpFamily::GPU_OP_TRANSFER:
      return "host <-> device copies";
    default:
      return "untagged";
  }
}

}  // namespace dseek
