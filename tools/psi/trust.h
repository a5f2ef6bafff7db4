/*
 * trust.h — the checks psi run/chat/serve make before loading a model:
 * licence acceptance and, with --require-signed, a valid signature
 * (docs/trust.md). The options are shared so every command reads them the
 * same way.
 */
#ifndef PSI_TRUST_H
#define PSI_TRUST_H

#include <stdbool.h>
#include <stddef.h>

/* open (default, zero): a model that declares no licence, or one psi does
 * not know, runs without a word, so plainly open models are not hindered. */
typedef enum license_policy { POLICY_OPEN, POLICY_WARN, POLICY_REQUIRE } license_policy;

typedef struct trust_opts {
    bool accept_license;        /* --accept-license */
    license_policy policy;      /* --license-policy for missing / unknown licences */
    const char *require_signed; /* --require-signed PUBKEY */
    const char *model_signed;   /* serve --config "require_signed" of one model: a key it must be signed by too */
} trust_opts;

/* If argv[*i] is a trust option, take it (and its value): 1 = taken,
 * 0 = not a trust option, -1 = error printed. */
int trust_parse(const char *cmd, trust_opts *t, int argc, char **argv, int *i);

/* Run the checks on a model file; 0 = go on, 1 = refused (printed).
 * license_id (may be NULL) receives the licence id, "" when none. */
int trust_check(const char *cmd, const char *path, const trust_opts *t, char *license_id, size_t id_size);

/* The help lines for the options above. */
extern const char trust_help[];

#endif
