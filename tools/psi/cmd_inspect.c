/* cmd_inspect.c — `psi inspect FILE [--max-array N]`: metadata and tensor table. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    long max_array = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: psi inspect FILE [--max-array N]\n"
                   "  prints the GGUF header, metadata (arrays cut after N elements, default 8)\n"
                   "  and the tensor table (name, type, shape, offset, bytes)\n");
            return 0;
        } else if (!strcmp(argv[i], "--max-array")) {
            const char *v = cli_value("inspect", argc, argv, &i);
            if (!v || !cli_int("inspect", "--max-array", v, 1, 1000000, &max_array)) return 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_fail("inspect", "unknown option '%s'", argv[i]);
        } else if (path) {
            return cli_fail("inspect", "more than one file given");
        } else {
            path = argv[i];
        }
    }
    if (!path) return cli_fail("inspect", "no file given (usage: psi inspect FILE)");
    char err[512];
    psi_gguf *g;
    if (psi_gguf_open(path, &g, err, sizeof err) != PSI_OK) return cli_fail("inspect", "%s", err);
    psi_gguf_print(g, stdout, (int)max_array);
    psi_gguf_free(g);
    return 0;
}
