// A qemu-user TCG plugin that counts the guest instructions a program executes,
// split into the classes that matter for a Cortex-A9 time estimate: NEON/VFP
// ("v*" mnemonics, which issue to the A9's separate in-order NEON unit), their
// multiplies (vmul*, vmla*, vmls*: where the MACs happen), their loads/stores,
// and the scalar core's loads/stores. Debian 12's qemu-arm loads
// plugins (-plugin) but ships none, so this is ours. Counting uses inline adds
// (no helper call per instruction), classification happens once per translation.
//
// Only the small part of QEMU's plugin API (version 1, QEMU 4.2-8.1) that is
// used is declared here, so the build needs no QEMU headers.
//
//   cc -O2 -shared -fPIC -o insn_count_plugin.so insn_count_plugin.c
//   qemu-arm -cpu cortex-a9 -plugin ./insn_count_plugin.so -d plugin ./program
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn, enum qemu_plugin_op op,
                                                void* ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
char* qemu_plugin_insn_disas(const struct qemu_plugin_insn* insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);
void qemu_plugin_outs(const char* string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum insn_class { all, simd, simd_mul, simd_mem, scalar_mem, num_classes };
static const char* const class_names[num_classes] = {"insns", "simd", "simd_mul", "simd_mem", "scalar_mem"};
// user-mode emulation of a single-threaded program: one vCPU, plain counters.
static uint64_t counts[num_classes];

static int starts_with(const char* s, const char* prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[all], 1);
    char* text = qemu_plugin_insn_disas(insn);
    const char* m = text ? text : "";
    if (m[0] == 'v') {
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[simd], 1);
      if (starts_with(m, "vmul") || starts_with(m, "vmla") || starts_with(m, "vmls"))
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[simd_mul], 1);
      if (starts_with(m, "vld") || starts_with(m, "vst") || starts_with(m, "vpush") || starts_with(m, "vpop"))
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[simd_mem], 1);
    } else if (starts_with(m, "ldr") || starts_with(m, "str") || starts_with(m, "ldm") ||
               starts_with(m, "stm") || starts_with(m, "push") || starts_with(m, "pop")) {
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[scalar_mem], 1);
    }
    free(text);
  }
}

static void report_counts(qemu_plugin_id_t id, void* userdata) {
  (void)id;
  (void)userdata;
  char line[256];
  int len = snprintf(line, sizeof line, "insn_count:");
  for (int c = 0; c < num_classes; ++c)
    len += snprintf(line + len, sizeof line - (size_t)len, " %s=%" PRIu64, class_names[c], counts[c]);
  snprintf(line + len, sizeof line - (size_t)len, "\n");
  qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info,
                                                               int argc, char** argv) {
  (void)info;
  (void)argc;
  (void)argv;
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, report_counts, NULL);
  return 0;
}
