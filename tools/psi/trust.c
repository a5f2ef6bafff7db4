/* trust.c — licence and signature gate before a model is loaded (trust.h). */
#include "trust.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gen.h"

const char trust_help[] =
    "  --accept-license         accept the model's licence (recorded as by psi license accept)\n"
    "  --license-policy P       a missing or unknown licence: open (default), warn, require\n"
    "  --require-signed PUB     refuse the model unless FILE.sig is a valid signature by PUB\n";

int trust_parse(const char *cmd, trust_opts *t, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--accept-license")) {
        t->accept_license = true;
        return 1;
    }
    if (!strcmp(a, "--license-policy")) {
        if (!(v = cli_value(cmd, argc, argv, i))) return -1;
        if (!strcmp(v, "warn")) t->policy = POLICY_WARN;
        else if (!strcmp(v, "open")) t->policy = POLICY_OPEN;
        else if (!strcmp(v, "require")) t->policy = POLICY_REQUIRE;
        else return cli_fail(cmd, "--license-policy: '%s' is not one of warn, open, require", v), -1;
        return 1;
    }
    if (!strcmp(a, "--require-signed")) {
        if (!(v = cli_value(cmd, argc, argv, i))) return -1;
        t->require_signed = v;
        return 1;
    }
    return 0;
}

static int check_license(const char *cmd, const char *path, const trust_opts *t, char *license_id, size_t id_size)
{
    char err[512], store[4096];
    psi_license_info li;
    if (psi_license_read(path, &li, err, sizeof err) != PSI_OK) return cli_fail(cmd, "%s", err);
    if (license_id) snprintf(license_id, id_size, "%s", li.id);
    bool need = li.need == PSI_LICENSE_ACCEPT || (li.need == PSI_LICENSE_UNKNOWN && t->policy == POLICY_REQUIRE);
    if (!need) {
        if (li.need == PSI_LICENSE_UNKNOWN && t->policy == POLICY_WARN)
            fprintf(stderr, "psi %s: note: %s has %s licence%s%s; check its terms yourself\n", cmd, path,
                    li.id[0] ? "an unknown" : "no", li.id[0] ? " " : "", li.id);
        return 0;
    }
    bool placed = psi_license_store_path(store, sizeof store) == PSI_OK;
    if (t->accept_license) { /* accepted; recording it is a convenience (a read-only or HOME-less service) */
        if (!placed) snprintf(err, sizeof err, "no XDG_CONFIG_HOME or HOME to keep it in");
        if (!placed || psi_license_accept(store, path, &li, err, sizeof err) != PSI_OK)
            fprintf(stderr, "psi %s: note: licence '%s' accepted for this run only (not recorded: %s)\n", cmd,
                    li.id, err);
        return 0;
    }
    if (!placed)
        return cli_fail(cmd,
                        "%s needs its licence accepted, and there is no licence store to look in (set "
                        "XDG_CONFIG_HOME or HOME, or add --accept-license)",
                        path);
    bool yes = false;
    if (psi_license_is_accepted(store, path, &li, &yes, err, sizeof err) != PSI_OK) return cli_fail(cmd, "%s", err);
    if (yes) return 0;
    return cli_fail(cmd, "%s is under the licence '%s'%s%s%s, which you have not accepted: read it with "
                    "`psi license show %s`, then run `psi license accept %s` (or add --accept-license)",
                    path, li.id[0] ? li.id : "(none)", li.name[0] ? " (" : "", li.name, li.name[0] ? ")" : "", path,
                    path);
}

int trust_check(const char *cmd, const char *path, const trust_opts *t, char *license_id, size_t id_size)
{
    struct stat st;
    if (license_id && id_size) license_id[0] = 0;
    /* not a file (missing, a FIFO): nothing to check, and opening a FIFO
     * here would block; the loader then says what is wrong with it */
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return 0;
    const char *pubs[2] = {t->require_signed, t->model_signed};
    for (int i = 0; i < 2; i++) {
        if (!pubs[i] || (i && pubs[0] && !strcmp(pubs[0], pubs[1]))) continue;
        char err[512], cache[4096];
        bool cached = false;
        double t0 = gen_now_ms();
        bool use_cache = psi_verify_cache_path(cache, sizeof cache) == PSI_OK;
        if (psi_verify_file_cached(pubs[i], path, use_cache ? cache : NULL, &cached, err, sizeof err) != PSI_OK)
            return cli_fail(cmd, "refusing the model: %s", err);
        fprintf(stderr, "psi %s: %s: signature by %s verified %s in %.0f ms\n", cmd, path, pubs[i],
                cached ? "before, file unchanged since (cache)" : "now", gen_now_ms() - t0);
    }
    return check_license(cmd, path, t, license_id, id_size);
}
