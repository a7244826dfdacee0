// par_threads() and the contention guard adapt_threads(): see cpu_parallel.h.
#include "dseek/ops/cpu/cpu_parallel.h"

#include <sched.h>

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace dseek {

void set_cpu_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

namespace {

constexpr double kIntervalS = 0.5;  // measurement interval
constexpr double kBusyHigh = 0.6;   // others' cores above which one core is given up
constexpr double kBusyLow = 0.35;   // ... and below which it is taken back

// Busy and total jiffies, summed over the CPUs this process may run on (the cpuN lines of
// /proc/stat for the CPUs in `mask`).
bool read_system(const cpu_set_t& mask, long long* busy, long long* total) {
  FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return false;
  char line[512];
  long long b = 0, t = 0;
  int seen = 0;
  while (std::fgets(line, sizeof line, f)) {
    int cpu = -1;
    long long v[8] = {};
    if (std::strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9') continue;
    const int n = std::sscanf(line, "cpu%d %lld %lld %lld %lld %lld %lld %lld %lld", &cpu, &v[0],
                              &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    if (n < 5 || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask)) continue;
    const long long tt = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    t += tt;
    b += tt - v[3] - v[4];  // minus idle and iowait
    seen++;
  }
  std::fclose(f);
  *busy = b;
  *total = t;
  return seen > 0;
}

// utime + stime of this process (all threads), in jiffies.
bool read_self(long long* ticks) {
  FILE* f = std::fopen("/proc/self/stat", "r");
  if (!f) return false;
  char buf[1024];
  const size_t len = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[len] = '\0';
  const char* p = std::strrchr(buf, ')');  // the command name may contain spaces
  if (!p) return false;
  // after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime(14) stime(15)
  long long ut = 0, st = 0;
  if (std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
    return false;
  *ticks = ut + st;
  return true;
}

struct Guard {
  bool enabled = true;
  bool verbose = false;  // DSEEK_ADAPTIVE_THREADS=verbose: report each change on stderr
  bool started = false;
  int requested = 0;  // the team size the program asked for
  int current = 0;    // the size we last set (0: never set)
  int ncpu = 1;       // CPUs in the affinity mask
  cpu_set_t mask;
  long long busy = 0, total = 0, self = 0;
  std::chrono::steady_clock::time_point last;
  std::thread::id owner;  // the thread that got here first: only it adapts (its own ICV)
};

Guard& guard() {
  static Guard g = [] {
    Guard x;
    const char* e = std::getenv("DSEEK_ADAPTIVE_THREADS");
    x.enabled = !(e && e[0] == '0');
    x.verbose = e && std::strcmp(e, "verbose") == 0;
    CPU_ZERO(&x.mask);
    if (sched_getaffinity(0, sizeof x.mask, &x.mask) != 0) x.enabled = false;
    x.ncpu = std::max(1, CPU_COUNT(&x.mask));
    x.owner = std::this_thread::get_id();
    return x;
  }();
  return g;
}

}  // namespace

void adapt_threads() {
  Guard& g = guard();
  if (!g.enabled || omp_in_parallel() || std::this_thread::get_id() != g.owner) return;
  const auto now = std::chrono::steady_clock::now();
  if (g.started && std::chrono::duration<double>(now - g.last).count() < kIntervalS) return;
  // a team size set by the program since our last change is the new request
  const int icv = omp_get_max_threads();
  if (g.current == 0 || icv != g.current) {
    g.requested = icv;
    g.current = icv;
  }
  long long busy = 0, total = 0, self = 0;
  if (!read_system(g.mask, &busy, &total) || !read_self(&self)) {
    g.enabled = false;
    return;
  }
  const bool had = g.started;
  const long long dbusy = busy - g.busy, dtotal = total - g.total, dself = self - g.self;
  g.started = true;
  g.last = now;
  g.busy = busy;
  g.total = total;
  g.self = self;
  if (!had || dtotal <= 0 || g.requested <= 1) return;
  const double others = (double)(dbusy - dself) * g.ncpu / (double)dtotal;  // in cores
  // Our team keeps min(current, ncpu) cores busy. Shrink it to the cores the others leave free
  // when together we oversubscribe the CPUs; restore the requested size once the others are
  // (nearly) idle, or grow by one when that thread would still fit (hysteresis in between).
  const int fit = std::max(1, std::min(g.requested, (int)(g.ncpu - others + 0.5)));
  int want = g.current;
  if (std::min(g.current, g.ncpu) + others > g.ncpu + kBusyHigh)
    want = std::min(g.current, fit);
  else if (others < kBusyLow)
    want = g.requested;
  else if (g.current < g.requested && g.current + 1 + others < g.ncpu + kBusyLow)
    want = std::max(g.current + 1, fit);
  if (want != g.current) {
    if (g.verbose)
      std::fprintf(stderr, "[dseek] other processes use %.2f of %d cores: %d -> %d threads\n",
                   others, g.ncpu, g.current, want);
    omp_set_num_threads(want);
    g.current = want;
  }
}

int par_threads(double work, double min_work) {
  if (omp_in_parallel()) return 1;
  adapt_threads();
  const int nt = omp_get_max_threads();
  return nt > 1 && work >= min_work ? nt : 1;
}

}  // namespace dseek
