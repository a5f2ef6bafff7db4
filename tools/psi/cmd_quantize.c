/*
 * cmd_quantize.c — `psi quantize IN.gguf OUT.gguf TYPE [-t N]`: llama.cpp's
 * file types (q8_0, q4_0, q4_k_m, …), the same tensor types and bytes as
 * llama-quantize. Progress goes to stderr: a bar on a terminal, a line per
 * quarter otherwise.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define TYPE_LIST "f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k"

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3];
    int n_pos = 0;
    long threads = 0;
    bool requantize = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: psi quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--allow-requantize]\n"
                   "  rewrites the model as llama.cpp's llama-quantize does (no imatrix)\n"
                   "  TYPE: " TYPE_LIST "\n"
                   "  --allow-requantize: also convert tensors that are already quantized\n");
            return 0;
        }
        if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) {
            const char *v = cli_value("quantize", argc, argv, &i);
            if (!v || !cli_int("quantize", "-t", v, 1, 1024, &threads)) return 1;
            continue;
        }
        if (!strcmp(argv[i], "--allow-requantize")) {
            requantize = true;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) return cli_fail("quantize", "unknown option '%s'", argv[i]);
        if (n_pos == 3) return cli_fail("quantize", "too many arguments");
        pos[n_pos++] = argv[i];
    }
    if (n_pos != 3) return cli_fail("quantize", "usage: psi quantize IN.gguf OUT.gguf TYPE");
    psi_quantize_params params = psi_quantize_default_params();
    if (!cli_ftype("quantize", pos[2], false, &params.ftype)) return 1;
    params.n_threads = (int32_t)threads;
    params.allow_requantize = requantize;
    cli_progress prog = {"quantize", isatty(STDERR_FILENO) == 1, 0};
    params.progress = cli_show_progress;
    params.progress_user = &prog;
    char err[512], tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", pos[1]); /* the writer's temporary file */
    cli_remove_on_signal(tmp);
    if (psi_quantize(pos[0], pos[1], &params, err, sizeof err) != PSI_OK) {
        if (prog.tty) fputc('\n', stderr);
        return cli_fail("quantize", "%s", err);
    }
    fprintf(stderr, "psi quantize: wrote %s (%s, from %s)\n", pos[1], pos[2], pos[0]);
    return 0;
}
