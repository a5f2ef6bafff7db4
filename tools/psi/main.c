/*
 * main.c — the psi command: dispatches to one sub-command per file
 * (cmd_*.c). The command-line contract is in DESIGN.md and docs/cli.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hub.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"logits", cmd_logits, "evaluate token ids in one batch and write the logits"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"detokenize", cmd_detokenize, "print the text of token ids"},
    {"chat", cmd_chat, "talk with a chat model in the terminal"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
    {"keyhash", cmd_keyhash, "print the SHA-256 of an API key read on stdin (for serve --config)"},
    {"bench", cmd_bench, "measure prompt and generation speed (llama-bench compatible)"},
    {"inspect", cmd_inspect, "print a GGUF file's metadata and tensor table"},
    {"quantize", cmd_quantize, "rewrite a model in another weight type (q4_k_m, q8_0, f16, ...)"},
    {"license", cmd_license, "show or accept a model's licence"},
    {"hash", cmd_hash, "print a file's SHA-256"},
    {"keygen", cmd_keygen, "make an ed25519 key pair for signing models"},
    {"sign", cmd_sign, "sign a model file (writes FILE.sig)"},
    {"verify", cmd_verify, "check a model file's signature"},
    {"convert", cmd_convert, "convert a llama2.c or Hugging Face checkpoint to GGUF"},
    {"pull", cmd_pull, "download a model from Hugging Face (hf:OWNER/REPO[:QUANT]) or a URL"},
    {"list", cmd_list, "list the models in the cache"},
    {"rm", cmd_rm, "remove a model from the cache"},
};

/* Output that could not be written (a full disk, an I/O error) makes the
 * command fail, in one line, instead of exiting 0 with the output cut. */
static int output_checked(const char *cmd, int rc)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    int e = errno;
    cli_fail(cmd, "cannot write the output%s%s", e ? ": " : "", e ? strerror(e) : "");
    return rc ? rc : 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: psi COMMAND [OPTIONS]   (psi COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("psi %s\n", psi_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return output_checked(argv[1], commands[i].fn(argc - 1, argv + 1));
    fprintf(stderr, "psi: unknown command '%s' (try psi --help)\n", argv[1]);
    return 2;
}
