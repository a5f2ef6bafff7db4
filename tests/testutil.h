/* testutil.h — tiny assertion helpers for psi's C tests. */
#ifndef PSI_TESTUTIL_H
#define PSI_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>

extern int tu_failures;
extern int tu_checks;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        tu_checks++;                                                                         \
        if (!(cond)) {                                                                       \
            tu_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);          \
        }                                                                                    \
    } while (0)

#define CHECKF(cond, ...)                                                                    \
    do {                                                                                     \
        tu_checks++;                                                                         \
        if (!(cond)) {                                                                       \
            tu_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

/* $PSI_TEST_DATA or ../shared/data. */
const char *tu_data_dir(void);
/* Path under the data dir in a static buffer rotation (4 slots). */
const char *tu_data(const char *rel);
/* A fresh scratch directory for this test ($PSI_TMP/<name>). */
const char *tu_tmpdir(const char *name);
/* Read a whole file; returns malloc'd buffer (NUL-terminated) or NULL. */
char *tu_read_file(const char *path, size_t *size);
/* Print "N passed, M failed" and return the exit status. */
int tu_finish(const char *name);

/* Run argv[0] with argv (NULL-terminated), capturing stdout and stderr into
 * malloc'd NUL-terminated strings (either pointer may be NULL to discard).
 * Returns the exit status, or 128+signal when it died on a signal, or -1
 * when it could not be started. */
int tu_run(const char *const argv[], char **out, char **err);
/* Path of the psi program ($PSI, set by CTest). */
const char *tu_psi(void);

#endif
