/*
 * policy.h — internals shared by the trust modules (licence.c,
 * provenance.c): atomic small-file writes and hex helpers. The public side
 * is the "trust" section of psi.h; docs/trust.md says what it guards.
 */
#ifndef PSI_POLICY_H
#define PSI_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psi.h"

/* Write data to path through a unique temporary file in the same folder
 * (mode `mode`, fsync'd) renamed over path, so a reader sees the old or
 * the new file, never half of one; parent folders are made (0700) when
 * missing. stop_after < len is a test hook: write that many bytes and
 * return PSI_ERR_IO leaving the temporary file, as a crash would. */
psi_status policy_write_atomic(const char *path, const char *data, size_t len, unsigned mode, size_t stop_after,
                               char *err, size_t err_size);

/* Make a folder and its missing parents (mode 0700); dir is restored. */
psi_status policy_mkdirs(char *dir, char *err, size_t err_size);

/* buf = $xdg_var/psi/file, or $HOME/home_dir/psi/file (XDG base dirs). */
psi_status policy_xdg_path(const char *xdg_var, const char *home_dir, const char *file, char *buf, size_t size);

struct stat;
/* A file's identity: device, inode, size, mtime and ctime (which no
 * user can set back), "dev:ino:size:mtime:ctime". */
void policy_file_id(const struct stat *st, char *out, size_t n);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void policy_hex(const uint8_t *p, size_t n, char *out);
/* Parse exactly n bytes of hex (surrounding whitespace allowed); false otherwise. */
bool policy_unhex(const char *s, uint8_t *p, size_t n);

#endif
