/*
 * qemu TCG plugin (horq-keras): guest instruction counts between markers.
 *
 * Counts every executed guest instruction (an inline add of each translation block's
 * instruction count, as qemu's tests/plugin/insn.c does with inline=on) and, each time the
 * guest makes the marker system call (number MARKER_SYSCALL, which Linux does not define;
 * qemu answers ENOSYS), appends "<tag> <count>" to the file named by the plugin argument
 * out=PATH, where tag is the call's first argument. A count difference between two
 * markers is the work done between them: deterministic, no timing involved.
 *
 * Build: gcc -O2 -shared -fPIC -I <qemu>/include/qemu marker_plugin.c $(pkg-config
 * --cflags --libs glib-2.0); run: qemu-aarch64 -plugin ./libmarker.so,out=counts.txt ...
 * One guest thread only: the counter is shared by all vCPUs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

#define MARKER_SYSCALL 4090

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t insns;
static FILE *out;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num == MARKER_SYSCALL) {
        fprintf(out, "%" PRIu64 " %" PRIu64 "\n", a1, insns);
        fflush(out);
    }
}

static void on_exit(qemu_plugin_id_t id, void *p)
{
    fprintf(out, "exit %" PRIu64 "\n", insns);
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        }
    }
    out = path ? fopen(path, "w") : NULL;
    if (out == NULL) {
        fprintf(stderr, "marker plugin: give a writable out=PATH\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
