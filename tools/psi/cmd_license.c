/*
 * cmd_license.c — `psi license show FILE` (the licence a model declares,
 * and for Llama licences the main use restrictions and attribution duty)
 * and `psi license accept FILE` (record acceptance; docs/trust.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *license_help =
    "usage: psi license show FILE     print the model's licence and what it asks of you\n"
    "       psi license accept FILE   record that you accept it (in $XDG_CONFIG_HOME/psi/licenses.json)\n";

static const char *need_text(psi_license_need n)
{
    return n == PSI_LICENSE_OPEN ? "open (no acceptance needed)"
         : n == PSI_LICENSE_ACCEPT ? "must be accepted before psi runs the model"
                                   : "unknown to psi (--license-policy decides: open by default)";
}

int cmd_license(int argc, char **argv)
{
    const char *cmd = "license";
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(license_help, stdout);
        return 0;
    }
    if (argc != 3 || (strcmp(argv[1], "show") && strcmp(argv[1], "accept")))
        return cli_fail(cmd, "usage: psi license show|accept FILE");
    const char *path = argv[2];
    char err[512], store[4096];
    psi_license_info li;
    if (psi_license_read(path, &li, err, sizeof err) != PSI_OK) return cli_fail(cmd, "%s", err);
    if (psi_license_store_path(store, sizeof store) != PSI_OK)
        return cli_fail(cmd, "cannot place the licence store: set XDG_CONFIG_HOME or HOME");
    if (!strcmp(argv[1], "show")) {
        bool yes = false;
        if (li.need != PSI_LICENSE_OPEN && psi_license_is_accepted(store, path, &li, &yes, err, sizeof err) != PSI_OK)
            return cli_fail(cmd, "%s", err);
        printf("model:    %s%s%s\n", li.model[0] ? li.model : "(unnamed)", li.org[0] ? " by " : "", li.org);
        printf("licence:  %s%s%s\n", li.id[0] ? li.id : "(none declared)", li.name[0] ? " — " : "", li.name);
        if (li.link[0]) printf("text:     %s\n", li.link);
        printf("status:   %s%s\n", need_text(li.need), yes ? "; accepted" : "");
        if (li.terms) printf("\n%s", li.terms);
        return 0;
    }
    if (!li.id[0]) return cli_fail(cmd, "%s declares no licence; there is nothing to accept", path);
    if (psi_license_accept(store, path, &li, err, sizeof err) != PSI_OK) return cli_fail(cmd, "%s", err);
    printf("accepted %s for %s (recorded in %s)\n", li.id, path, store);
    return 0;
}
