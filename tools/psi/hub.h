/*
 * hub.h — models from the Hugging Face Hub (or a mirror, PSI_HF_ENDPOINT)
 * and plain https URLs, kept in psi's cache ($PSI_HOME, default
 * $XDG_CACHE_HOME/psi, else ~/.cache/psi; files under models/). See
 * docs/models.md.
 */
#ifndef PSI_HUB_H
#define PSI_HUB_H

#include <stdbool.h>

/* True for "hf:..." and "http(s)://..." model references. */
bool hub_is_ref(const char *s);

/* The local path of a model reference, downloading it first (after saying
 * so on stderr) when it is not in the cache. Returns a malloc'd path (the
 * first file of a split set), or NULL after printing "psi CMD: ..." on
 * stderr. A plain path is returned as a copy, untouched. */
char *hub_model_path(const char *cmd, const char *ref);

int cmd_pull(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);

#endif
