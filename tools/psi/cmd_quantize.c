/* cmd_quantize.c — `psi quantize IN.gguf OUT.gguf TYPE` (f16, bf16, q8_0 so far). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: psi quantize IN.gguf OUT.gguf TYPE\n"
                   "  rewrites the weight matrices as TYPE: f16, bf16 or q8_0\n"
                   "  (q4_0 and the K-quant mixes are not implemented yet)\n");
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) return cli_fail("quantize", "unknown option '%s'", argv[i]);
        if (n_pos == 3) return cli_fail("quantize", "too many arguments");
        pos[n_pos++] = argv[i];
    }
    if (n_pos != 3) return cli_fail("quantize", "usage: psi quantize IN.gguf OUT.gguf TYPE");
    psi_type type;
    if (!strcasecmp(pos[2], "q8_0")) type = PSI_TYPE_Q8_0;
    else if (!strcasecmp(pos[2], "f16")) type = PSI_TYPE_F16;
    else if (!strcasecmp(pos[2], "bf16")) type = PSI_TYPE_BF16;
    else return cli_fail("quantize", "type '%s' is not supported yet (supported: f16, bf16, q8_0)", pos[2]);
    char err[512];
    fprintf(stderr, "psi quantize: %s -> %s (%s)\n", pos[0], pos[1], pos[2]);
    if (psi_quantize(pos[0], pos[1], type, err, sizeof err) != PSI_OK) return cli_fail("quantize", "%s", err);
    fprintf(stderr, "psi quantize: wrote %s\n", pos[1]);
    return 0;
}
