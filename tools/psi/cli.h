/*
 * cli.h — shared pieces of the psi command line: argument parsing helpers,
 * errors (one line on stderr, non-zero exit) and the sub-command table.
 * The CLI uses only the public API in psi.h.
 */
#ifndef PSI_CLI_H
#define PSI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "psi.h"

/* Print "psi CMD: message" on stderr; returns 1 for `return cli_fail(...)`. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Value of option argv[*i] (advances *i); prints an error and returns NULL
 * when it is missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
bool cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
bool cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
bool cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);

/* t[0..n) as a JSON string, bytes that are not UTF-8 as U+FFFD (a token's
 * piece may be part of a character; a file name or a client's bytes may be
 * anything): json_stringn alone gives NULL for them, and the field or the
 * whole document would be lost. */
json_t *cli_json_text(const char *t, size_t n);

/* Parse "1 2 3" (spaces and/or commas) into a malloc'd array. */
bool cli_parse_ids(const char *cmd, const char *s, int32_t **ids, int32_t *n);
/* Read a whole file ("-": standard input) into a malloc'd NUL-terminated buffer. */
char *cli_read_file(const char *cmd, const char *path, size_t *len);
/* Remove path if SIGINT, SIGTERM or SIGHUP ends the command (the temporary
 * file of a long write: OUT.tmp), then die of that signal. A path that
 * exists when registered is not ours and is left alone. Up to 4 paths. */
void cli_remove_on_signal(const char *path);
/* True when a and b both exist and are the same file (through links). */
bool cli_same_file(const char *a, const char *b);
/* "f32" | "f16" | "q8_0" → type; false with an error otherwise. */
bool cli_kv_type(const char *cmd, const char *s, psi_type *out);
/* llama.cpp file type name ("q8_0", "q4_k_m", …; "f32" when allow_f32) →
 * psi_ftype; false with an error otherwise. */
bool cli_ftype(const char *cmd, const char *s, bool allow_f32, psi_ftype *out);

/* Progress of psi_quantize / psi_convert_hf on stderr: a bar on a
 * terminal, a line per quarter otherwise. */
typedef struct cli_progress {
    const char *cmd;
    bool tty;
    int quarter; /* last quarter reported (plain lines) */
} cli_progress;
void cli_show_progress(void *user, const char *tensor, psi_type type, uint64_t done, uint64_t total);

int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_keyhash(int argc, char **argv);
int cmd_license(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_verify(int argc, char **argv);

#endif
