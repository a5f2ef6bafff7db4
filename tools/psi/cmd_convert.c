/* cmd_convert.c — `psi convert --from llama2c MODEL.bin TOKENIZER.bin -o OUT.gguf`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_convert(int argc, char **argv)
{
    const char *from = NULL, *out = NULL, *pos[2] = {NULL, NULL};
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: psi convert --from llama2c MODEL.bin TOKENIZER.bin -o OUT.gguf\n"
                   "  converts a llama2.c checkpoint and its tokenizer to a GGUF file (F32)\n");
            return 0;
        } else if (!strcmp(argv[i], "--from")) {
            if (!(from = cli_value("convert", argc, argv, &i))) return 1;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (!(out = cli_value("convert", argc, argv, &i))) return 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_fail("convert", "unknown option '%s'", argv[i]);
        } else if (n_pos < 2) {
            pos[n_pos++] = argv[i];
        } else {
            return cli_fail("convert", "too many arguments");
        }
    }
    if (!from) return cli_fail("convert", "--from is required (supported: llama2c)");
    if (strcmp(from, "llama2c") != 0)
        return cli_fail("convert", "--from %s is not supported (supported: llama2c)", from);
    if (n_pos != 2) return cli_fail("convert", "need MODEL.bin and TOKENIZER.bin");
    if (!out) return cli_fail("convert", "-o OUT.gguf is required");
    char err[512];
    psi_status rc = psi_convert_llama2c(pos[0], pos[1], out, err, sizeof err);
    if (rc != PSI_OK) return cli_fail("convert", "%s", err);
    fprintf(stderr, "psi convert: wrote %s\n", out);
    return 0;
}
