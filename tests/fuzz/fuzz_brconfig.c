/* fuzz_brconfig.c - the broker's configuration file (broker/brconfig.c):
 * global options, [tool] and [group] sections, validation as a whole.
 *
 * An input is a configuration file, loaded as `mscope-broker --config FILE`
 * and SIGHUP load it, with the broker's global options (its own table,
 * bropts.c). A file that loads must describe what the broker builds from
 * it without further checks: every tool a known type with what that type
 * needs, every group's members tools of that group, every rule's action
 * known. Filters are compiled by libpcap
 * here as in the broker; names never resolve (noresolve.c).
 */
#include "brconfig.h"
#include "bropts.h"
#include "fuzz.h"

#include <stddef.h>
#include <string.h>

static void fuzz__check(const brconfig_t *c)
{
    FUZZ_CHECK(c->n > 0);
    for (int i = 0; i < c->n; i++) {
        const brconf_tool *t = &c->tools[i];
        FUZZ_CHECK(t->name && brconfig_find(c, t->name) == i);
        FUZZ_CHECK(t->kind == BRCONF_TOOL || t->kind == BRCONF_GROUP);
        if (t->kind == BRCONF_GROUP) {
            FUZZ_CHECK(t->nmembers > 0 && t->nmembers <= BRCONF_MAX_MEMBERS);
            for (int m = 0; m < t->nmembers; m++) {
                FUZZ_CHECK(t->member[m] >= 0 && t->member[m] < c->n);
                FUZZ_CHECK(c->tools[t->member[m]].kind == BRCONF_TOOL);
                FUZZ_CHECK(c->tools[t->member[m]].group == i);
            }
        } else {
            FUZZ_CHECK(t->type_id >= BROUT_VXLAN && t->type_id <= BROUT_IFACE);
            FUZZ_CHECK(strcmp(brconfig_type_name(t->type_id), "?") != 0);
            FUZZ_CHECK(t->group == -1 || (t->group < c->n && c->tools[t->group].kind == BRCONF_GROUP));
            if (t->type_id == BROUT_VXLAN) FUZZ_CHECK(t->dest && t->vni >= 0 && t->vni <= 0xffffff);
            if (t->type_id == BROUT_UDP || t->type_id == BROUT_GRE) FUZZ_CHECK(t->dest);
            if (t->type_id == BROUT_PCAP) FUZZ_CHECK(t->dir && *t->dir && t->prefix);
            if (t->type_id == BROUT_IFACE) FUZZ_CHECK(t->interface && *t->interface);
            FUZZ_CHECK(brconfig_output_equal(t, t));
        }
        if (t->kind == BRCONF_GROUP || t->group < 0) {
            FUZZ_CHECK(t->action_id == BRACT_PASS || t->action_id == BRACT_DROP);
            FUZZ_CHECK(t->filter && t->slice >= 0 && t->slice <= 262144);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size > 65536) return 0;
    br_settings s;
    memset(&s, 0, sizeof s);
    FUZZ_CHECK(config_defaults(br_opts, &s) == 0);
    char err[1024] = "";
    const char *path = fuzz_memfile(data, size, NULL);
    brconfig_t *c = brconfig_load(path, br_opts, &s, NULL, err, sizeof err);
    if (c) fuzz__check(c);
    else FUZZ_CHECK(err[0] && strlen(err) < sizeof err);
    brconfig_free(c);
    config_free(br_opts, &s);
    return 0;
}
