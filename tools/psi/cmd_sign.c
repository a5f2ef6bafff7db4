/*
 * cmd_sign.c — provenance: `psi hash FILE`, `psi keygen NAME`,
 * `psi sign --key NAME.key FILE`, `psi verify --pubkey NAME.pub FILE`
 * (formats in docs/trust.md).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gen.h"

/* Progress on stderr for files of 256 MiB and more, when it is a terminal. */
static void progress(void *user, uint64_t done, uint64_t total)
{
    (void)user;
    if (total < (256u << 20) || !isatty(2)) return;
    fprintf(stderr, "\rhashing: %3.0f%% of %.1f GiB", 100.0 * (double)done / (double)total,
            (double)total / (1u << 30));
    if (done >= total) fputc('\n', stderr);
}

/* hash and keygen take one argument: 0 = go on, 1 = error, -1 = help printed. */
static int one_arg(const char *cmd, const char *usage, int argc, char **argv)
{
    if (argc == 2 && argv[1][0] != '-') return 0;
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) return printf("usage: %s\n", usage), -1;
    return cli_fail(cmd, "usage: %s", usage);
}

int cmd_hash(int argc, char **argv)
{
    int rc = one_arg("hash", "psi hash FILE   (SHA-256, as sha256sum prints it)", argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    uint8_t d[32];
    uint64_t size;
    char err[512];
    if (psi_file_sha256(argv[1], d, &size, progress, NULL, err, sizeof err) != PSI_OK)
        return cli_fail("hash", "%s", err);
    for (int i = 0; i < 32; i++) printf("%02x", d[i]);
    printf("  %s\n", argv[1]);
    return 0;
}

int cmd_keygen(int argc, char **argv)
{
    int rc = one_arg("keygen", "psi keygen NAME   (writes NAME.key, mode 0600, and NAME.pub)", argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    char err[512];
    if (psi_keygen(argv[1], err, sizeof err) != PSI_OK) return cli_fail("keygen", "%s", err);
    printf("wrote %s.key (secret, keep it) and %s.pub\n", argv[1], argv[1]);
    return 0;
}

/* sign and verify: one option with a key file, one FILE. */
static int key_and_file(const char *cmd, const char *opt, int argc, char **argv, const char **key, const char **file)
{
    *key = *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: psi %s %s KEYFILE FILE\n", cmd, opt);
            return -1;
        }
        if (!strcmp(argv[i], opt)) {
            if (!(*key = cli_value(cmd, argc, argv, &i))) return 1;
        } else if (argv[i][0] == '-') return cli_fail(cmd, "unknown option '%s'", argv[i]);
        else if (*file) return cli_fail(cmd, "unexpected argument '%s'", argv[i]);
        else *file = argv[i];
    }
    if (!*key || !*file) return cli_fail(cmd, "usage: psi %s %s KEYFILE FILE", cmd, opt);
    return 0;
}

/* psi sign / psi verify: the same arguments, one call each. */
static int sign_or_verify(bool sign, int argc, char **argv)
{
    const char *cmd = sign ? "sign" : "verify", *key, *file;
    int rc = key_and_file(cmd, sign ? "--key" : "--pubkey", argc, argv, &key, &file);
    if (rc) return rc < 0 ? 0 : rc;
    char err[512];
    double t0 = gen_now_ms();
    psi_status st = sign ? psi_sign_file(key, file, progress, NULL, err, sizeof err)
                         : psi_verify_file(key, file, progress, NULL, err, sizeof err);
    if (st != PSI_OK) return cli_fail(cmd, "%s", err);
    if (sign) printf("wrote %s.sig\n", file);
    else printf("%s: good signature by %s (checked in %.0f ms)\n", file, key, gen_now_ms() - t0);
    return 0;
}

int cmd_sign(int argc, char **argv) { return sign_or_verify(true, argc, argv); }
int cmd_verify(int argc, char **argv) { return sign_or_verify(false, argc, argv); }
