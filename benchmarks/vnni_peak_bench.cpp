// The int8 ceiling of this core: throughput and latency of vpdpbusd (zmm and
// ymm), one thread, from a loop of independent (or chained) instructions in
// inline assembly, timed with the thread's CPU clock. It turns into the floor
// for the paper's network (47.68 M multiply-accumulates per image) that the
// cpu_int benchmark is read against (benchmarks/results/cpu_int.md).
#include <cstdio>
#include <ctime>

namespace {

constexpr long iterations = 20'000'000;
constexpr double network_macs = 47.68e6;

double thread_cpu_ns() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e9 + double(t.tv_nsec);
}

// Best of 5 runs, in ns per instruction; `body` runs `per_iteration` vpdpbusd per loop trip.
template <class F>
double best_ns(F body, int per_iteration) {
  double best = 1e300;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = thread_cpu_ns();
    body();
    const double t = thread_cpu_ns() - t0;
    if (t < best) best = t;
  }
  return best / (double(iterations) * per_iteration);
}

#define DP16(R)                                                            \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "2\n vpdpbusd %%" R "0,%%" R "1,%%" R  \
  "3\n"                                                                    \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "4\n vpdpbusd %%" R "0,%%" R "1,%%" R  \
  "5\n"                                                                    \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "6\n vpdpbusd %%" R "0,%%" R "1,%%" R  \
  "7\n"                                                                    \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "8\n vpdpbusd %%" R "0,%%" R "1,%%" R  \
  "9\n"                                                                    \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "10\n vpdpbusd %%" R "0,%%" R "1,%%" R \
  "11\n"                                                                   \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "12\n vpdpbusd %%" R "0,%%" R "1,%%" R \
  "13\n"                                                                   \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "14\n vpdpbusd %%" R "0,%%" R "1,%%" R \
  "15\n"                                                                   \
  "vpdpbusd %%" R "0,%%" R "1,%%" R "16\n vpdpbusd %%" R "0,%%" R "1,%%" R "17\n"
#define CLOBBERS                                                                                                      \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", \
      "xmm14", "xmm15", "xmm16", "xmm17"

}  // namespace

int main() {
  if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512vl")) {
    std::printf("this CPU has no AVX-512 VNNI: nothing to measure\n");
    return 0;
  }
  const double zmm = best_ns(
      [] {
        long n = iterations;
        __asm__ volatile("1:\n" DP16("zmm") "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBERS);
      },
      16);
  const double ymm = best_ns(
      [] {
        long n = iterations;
        __asm__ volatile("1:\n" DP16("ymm") "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBERS);
      },
      16);
  const double latency = best_ns(
      [] {
        long n = iterations;
        __asm__ volatile(
            "1:\n vpdpbusd %%zmm0,%%zmm1,%%zmm2\n vpdpbusd %%zmm0,%%zmm1,%%zmm2\n"
            "vpdpbusd %%zmm0,%%zmm1,%%zmm2\n vpdpbusd %%zmm0,%%zmm1,%%zmm2\n dec %0\n jnz 1b\n"
            : "+r"(n)
            :
            : "xmm0", "xmm1", "xmm2");
      },
      4);
  const double macs_per_ns = 64.0 / zmm;  // 16 lanes x 4 u8*s8 products
  std::printf("vpdpbusd zmm: %.3f ns per instruction (independent), %.3f ns latency (chained)\n", zmm, latency);
  std::printf("vpdpbusd ymm: %.3f ns per instruction (independent)\n", ymm);
  std::printf("int8 peak: %.1f G multiply-accumulates/s; floor for %.2f M MACs: %.0f us\n", macs_per_ns,
              network_macs / 1e6, network_macs / macs_per_ns / 1e3);
  return 0;
}
