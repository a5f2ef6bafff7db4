/*
 * cmd_convert.c — `psi convert --from llama2c MODEL.bin TOKENIZER.bin -o OUT.gguf`
 * and `psi convert --from hf DIR -o OUT.gguf [--type f32|f16|bf16|q8_0|…]`.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_convert(int argc, char **argv)
{
    const char *from = NULL, *out = NULL, *type = NULL, *pos[2] = {NULL, NULL};
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: psi convert --from llama2c MODEL.bin TOKENIZER.bin -o OUT.gguf\n"
                   "       psi convert --from hf DIR -o OUT.gguf [--type f32|f16|bf16|q8_0|q4_k_m|...]\n"
                   "  llama2c: a llama2.c checkpoint and its tokenizer to a GGUF file (F32)\n"
                   "  hf: a Hugging Face Llama checkpoint directory (config.json, *.safetensors,\n"
                   "      tokenizer.json, tokenizer_config.json) to GGUF as llama.cpp converts it\n"
                   "      (--type: default f32)\n");
            return 0;
        } else if (!strcmp(argv[i], "--from")) {
            if (!(from = cli_value("convert", argc, argv, &i))) return 1;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (!(out = cli_value("convert", argc, argv, &i))) return 1;
        } else if (!strcmp(argv[i], "--type")) {
            if (!(type = cli_value("convert", argc, argv, &i))) return 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_fail("convert", "unknown option '%s'", argv[i]);
        } else if (n_pos < 2) {
            pos[n_pos++] = argv[i];
        } else {
            return cli_fail("convert", "too many arguments");
        }
    }
    if (!from) return cli_fail("convert", "--from is required (supported: llama2c, hf)");
    if (!out) return cli_fail("convert", "-o OUT.gguf is required");
    char err[512], tmp[4200];
    psi_status rc;
    static const char *const temps[] = {".tmp", ".f32.tmp",
                                        ".f32.tmp.tmp"}; /* the writer's; hf's F32 stage */
    for (int i = 0; i < 3; i++) {
        snprintf(tmp, sizeof tmp, "%s%s", out, temps[i]);
        cli_remove_on_signal(tmp);
    }
    if (!strcmp(from, "hf")) {
        psi_convert_hf_params p = psi_convert_hf_default_params();
        if (n_pos != 1) return cli_fail("convert", "need one checkpoint directory");
        if (type && !cli_ftype("convert", type, true, &p.ftype)) return 1;
        cli_progress prog = {"convert", isatty(STDERR_FILENO) == 1, 0};
        p.progress = cli_show_progress;
        p.progress_user = &prog;
        rc = psi_convert_hf(pos[0], out, &p, err, sizeof err);
        if (rc != PSI_OK && prog.tty) fputc('\n', stderr);
    } else if (!strcmp(from, "llama2c")) {
        if (n_pos != 2) return cli_fail("convert", "need MODEL.bin and TOKENIZER.bin");
        if (type) return cli_fail("convert", "--type is for --from hf (llama2c writes F32; use psi quantize)");
        rc = psi_convert_llama2c(pos[0], pos[1], out, err, sizeof err);
    } else {
        return cli_fail("convert", "--from %s is not supported (supported: llama2c, hf)", from);
    }
    if (rc != PSI_OK) return cli_fail("convert", "%s", err);
    fprintf(stderr, "psi convert: wrote %s\n", out);
    return 0;
}
