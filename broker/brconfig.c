/* brconfig.c - the broker's configuration file (see brconfig.h).
 *
 * DESIGN: one option table (common/config.h) for the keys of [tool] and
 * [group] sections, so values parse exactly like command-line flags, plus a
 * column saying which kind of section (and which output type) each key
 * belongs to. The file is read whole, then validated as a whole, so a
 * reference to a tool further down the file works and every error can name
 * the line that caused it.
 */
#include "brconfig.h"

#include "filter.h"
#include "netio.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which sections a key may appear in. */
#define A_VXLAN (1u << BROUT_VXLAN)
#define A_UDP (1u << BROUT_UDP)
#define A_GRE (1u << BROUT_GRE)
#define A_PCAP (1u << BROUT_PCAP)
#define A_IFACE (1u << BROUT_IFACE)
#define A_SOCK (A_VXLAN | A_UDP | A_GRE | A_IFACE)
#define A_TOOL (A_VXLAN | A_UDP | A_GRE | A_PCAP | A_IFACE)
#define A_GROUP (1u << 8)
#define A_RULE (1u << 9) /* a rule: groups, and tools outside a group */

#define O(f) offsetof(brconf_tool, f)
static const config_opt brconfig_keys[] = {
    { "type", 0, CFG_STR, O(type), NULL, 0, 0, "vxlan|udp|gre|pcap|interface", "the output (required in a [tool])" },
    { "dest", 0, CFG_STR, O(dest), NULL, 0, 0, "HOST[:PORT]", "vxlan: where to send (port 4789 unless given); udp: HOST:PORT; gre: HOST" },
    { "vni", 0, CFG_INT, O(vni), "-1", -1, 16777215, "N", "vxlan: the VXLAN network identifier the tool receives (required)" },
    { "dir", 0, CFG_STR, O(dir), NULL, 0, 0, "DIR", "pcap: directory of the rotating file set (required; created if missing)" },
    { "prefix", 0, CFG_STR, O(prefix), NULL, 0, 0, "NAME", "pcap: file name prefix (default: the tool name)" },
    { "rotate-size", 0, CFG_SIZE, O(rotate_size), "256M", 4096, 0, "SIZE", "pcap: start a new file at this size" },
    { "rotate-interval", 0, CFG_DURATION, O(rotate_interval), "0", 0, 0, "DURATION", "pcap: start a new file when the first packet is this old by packet time (0 = by size only)" },
    { "max-files", 0, CFG_INT, O(max_files), "0", 0, 1000000, "N", "pcap: delete the oldest of this tool's files beyond N (0 = keep all)" },
    { "interface", 0, CFG_STR, O(interface), NULL, 0, 0, "IF", "interface: inject frames into this local interface (required)" },
    { "sndbuf", 0, CFG_SIZE, O(sndbuf), "4M", 65536, 1LL << 30, "SIZE", "socket outputs: send buffer" },
    { "filter", 0, CFG_STR, O(filter), "", 0, 0, "EXPR", "tcpdump filter selecting packets (default: all)" },
    { "action", 0, CFG_STR, O(action), "pass", 0, 0, "pass|drop", "pass: send what the filter matches; drop: send what it does not" },
    { "slice", 0, CFG_SIZE, O(slice), "0", 0, 262144, "BYTES", "keep at most this many bytes of each frame (0 = whole frame)" },
    { "mask-payload", 0, CFG_BOOL, O(mask_payload), "no", 0, 0, NULL, "zero every byte after the TCP/UDP/ICMP header (after the IP header for other protocols)" },
    { "members", 0, CFG_STR, O(members), NULL, 0, 0, "T1, T2, ...", "group: the tools sharing the load by symmetric flow hash (required)" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

static const unsigned brconfig_applies[] = {
    A_TOOL,           /* type */
    A_VXLAN | A_UDP | A_GRE, /* dest */
    A_VXLAN,          /* vni */
    A_PCAP,           /* dir */
    A_PCAP,           /* prefix */
    A_PCAP,           /* rotate-size */
    A_PCAP,           /* rotate-interval */
    A_PCAP,           /* max-files */
    A_IFACE,          /* interface */
    A_SOCK,           /* sndbuf */
    A_RULE, A_RULE, A_RULE, A_RULE, /* filter, action, slice, mask-payload */
    A_GROUP,          /* members */
};
_Static_assert(sizeof brconfig_applies / sizeof brconfig_applies[0] ==
                   sizeof brconfig_keys / sizeof brconfig_keys[0] - 1,
               "one 'applies' entry per key");
_Static_assert(sizeof brconfig_applies / sizeof brconfig_applies[0] <= BRCONF_MAX_KEYS,
               "key_line has room for every key");

enum { K_TYPE, K_DEST, K_VNI, K_DIR, K_PREFIX, K_RSIZE, K_RINT, K_MAXF, K_IFACE, K_SNDBUF,
       K_FILTER, K_ACTION, K_SLICE, K_MASK, K_MEMBERS };

static const char *const brconfig_types[] = { "none", "vxlan", "udp", "gre", "pcap", "interface" };

const char *brconfig_type_name(int type_id)
{
    return type_id >= 0 && type_id <= BROUT_IFACE ? brconfig_types[type_id] : "?";
}

void brconfig_print_keys(FILE *out)
{
    fprintf(out, "  [tool NAME] / [group NAME] keys:\n");
    for (int k = 0; brconfig_keys[k].name; k++) {
        const config_opt *o = &brconfig_keys[k];
        char key[64];
        snprintf(key, sizeof key, "%s = %s", o->name, o->metavar ? o->metavar : "yes|no");
        fprintf(out, "    %-36s %s", key, o->help);
        if (o->def && *o->def && strcmp(o->def, "-1")) fprintf(out, " (default: %s)", o->def);
        fputc('\n', out);
    }
}

int brconfig_find(const brconfig_t *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->tools[i].name, name) == 0) return i;
    return -1;
}

static int brconfig__name_ok(const char *s)
{
    if (!*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return 0;
    return 1;
}

/* config_set() words its messages for flags ("--slice: ..."); in a file the
 * key is named without the dashes. */
static const char *brconfig__unflag(const char *msg) { return strncmp(msg, "--", 2) ? msg : msg + 2; }

static int brconfig__section(brconfig_t *c, char *s, const char *path, int lineno, char *err,
                             size_t errlen)
{
    size_t n = strlen(s);
    if (s[n - 1] != ']') {
        snprintf(err, errlen, "%s:%d: a section header ends with ']'", path, lineno);
        return -1;
    }
    s[n - 1] = 0;
    char *body = config_trim(s + 1), *name = body;
    while (*name && !isspace((unsigned char)*name)) name++;
    if (*name) *name++ = 0;
    name = config_trim(name);
    int kind;
    if (!strcmp(body, "tool")) kind = BRCONF_TOOL;
    else if (!strcmp(body, "group")) kind = BRCONF_GROUP;
    else {
        snprintf(err, errlen, "%s:%d: unknown section '[%s%s%s]' (want [tool NAME] or [group NAME])",
                 path, lineno, body, *name ? " " : "", name);
        return -1;
    }
    if (!brconfig__name_ok(name)) {
        snprintf(err, errlen, "%s:%d: [%s] needs a name of letters, digits, '-', '_' or '.' "
                 "(at most 64), got '%s'", path, lineno, body, name);
        return -1;
    }
    int prev = brconfig_find(c, name);
    if (prev >= 0) {
        snprintf(err, errlen, "%s:%d: the name '%s' is already used at line %d", path, lineno, name,
                 c->tools[prev].line);
        return -1;
    }
    c->tools = xrealloc(c->tools, (size_t)(c->n + 1) * sizeof *c->tools);
    brconf_tool *t = &c->tools[c->n++];
    memset(t, 0, sizeof *t);
    config_defaults(brconfig_keys, t);
    t->kind = kind;
    t->name = xstrdup(name);
    t->line = lineno;
    t->group = -1;
    return 0;
}

static int brconfig__key(brconfig_t *c, const config_opt *globals, void *settings,
                         config_origin *where, char *key, char *val, const char *path, int lineno,
                         char *err, size_t errlen)
{
    char msg[512];
    if (c->n == 0) {
        const config_opt *g = globals ? config_find(globals, key) : NULL;
        if (!g || !strcmp(key, "config")) {
            snprintf(err, errlen, "%s:%d: unknown option '%s' (tool keys go under a [tool NAME] "
                     "or [group NAME] header)", path, lineno, key);
            return -1;
        }
        if (config_set(g, settings, val, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, brconfig__unflag(msg));
            return -1;
        }
        config_origin_note(globals, where, g, path, lineno);
        return 0;
    }
    brconf_tool *t = &c->tools[c->n - 1];
    const config_opt *o = config_find(brconfig_keys, key);
    if (!o) {
        snprintf(err, errlen, "%s:%d: unknown key '%s' in [%s %s]", path, lineno, key,
                 t->kind == BRCONF_GROUP ? "group" : "tool", t->name);
        return -1;
    }
    int row = (int)(o - brconfig_keys);
    if (t->key_line[row]) {
        snprintf(err, errlen, "%s:%d: '%s' is already set for '%s' at line %d", path, lineno, key,
                 t->name, t->key_line[row]);
        return -1;
    }
    if (config_set(o, t, val, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "%s:%d: %s", path, lineno, brconfig__unflag(msg));
        return -1;
    }
    t->key_line[row] = lineno;
    return 0;
}

#define VFAIL(line, ...)                                       \
    do {                                                       \
        int _n = snprintf(err, errlen, "%s:%d: ", path, line); \
        if (_n > 0 && (size_t)_n < errlen)                     \
            snprintf(err + _n, errlen - (size_t)_n, __VA_ARGS__); \
        return -1;                                             \
    } while (0)

/* Check one [tool]'s output keys. */
static int brconfig__tool(brconf_tool *t, const char *path, char *err, size_t errlen)
{
    if (!t->type) VFAIL(t->line, "tool '%s' has no 'type' (vxlan, udp, gre, pcap or interface)", t->name);
    for (int i = BROUT_VXLAN; i <= BROUT_IFACE; i++)
        if (!strcmp(t->type, brconfig_types[i])) t->type_id = i;
    if (!t->type_id)
        VFAIL(t->key_line[K_TYPE], "unknown type '%s' (want vxlan, udp, gre, pcap or interface)", t->type);
    unsigned mine = 1u << t->type_id;
    for (int k = 0; brconfig_keys[k].name; k++) {
        if (t->key_line[k] && !(brconfig_applies[k] & (mine | A_RULE)))
            VFAIL(t->key_line[k], "'%s' does not apply to a %s tool", brconfig_keys[k].name, t->type);
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    switch (t->type_id) {
    case BROUT_VXLAN:
    case BROUT_UDP:
        if (!t->dest) VFAIL(t->line, "%s tool '%s' needs 'dest = HOST:PORT'", t->type, t->name);
        if (netio_parse_addr(t->dest, &ss, &sl) < 0) {
            if (t->type_id == BROUT_VXLAN && netio_parse_host(t->dest, &ss, &sl) == 0) {
                char *d = xmalloc(strlen(t->dest) + 6);
                sprintf(d, "%s:4789", t->dest);
                free(t->dest);
                t->dest = d;
            } else {
                VFAIL(t->key_line[K_DEST], "dest: '%s' is not %s (IPv6 as [ADDR]:PORT)", t->dest,
                      t->type_id == BROUT_VXLAN ? "HOST or HOST:PORT" : "HOST:PORT");
            }
        }
        if (t->type_id == BROUT_VXLAN && t->vni < 0)
            VFAIL(t->line, "vxlan tool '%s' needs 'vni = N' (0 to 16777215)", t->name);
        break;
    case BROUT_GRE:
        if (!t->dest) VFAIL(t->line, "gre tool '%s' needs 'dest = HOST'", t->name);
        if (netio_parse_host(t->dest, &ss, &sl) < 0 || ss.ss_family != AF_INET)
            VFAIL(t->key_line[K_DEST], "dest: '%s' is not an IPv4 address", t->dest);
        break;
    case BROUT_PCAP:
        if (!t->dir || !*t->dir) VFAIL(t->line, "pcap tool '%s' needs 'dir = DIRECTORY'", t->name);
        if (!t->prefix) t->prefix = xstrdup(t->name);
        if (!brconfig__name_ok(t->prefix))
            VFAIL(t->key_line[K_PREFIX], "prefix: '%s' may hold only letters, digits, '-', '_' and '.'",
                  t->prefix);
        break;
    case BROUT_IFACE:
        if (!t->interface || !*t->interface)
            VFAIL(t->line, "interface tool '%s' needs 'interface = NAME'", t->name);
        break;
    }
    return 0;
}

/* Check the rules of a group or of a tool outside any group. */
static int brconfig__rules(brconf_tool *t, const char *path, char *err, size_t errlen)
{
    if (!strcmp(t->action, "pass")) t->action_id = BRACT_PASS;
    else if (!strcmp(t->action, "drop")) t->action_id = BRACT_DROP;
    else VFAIL(t->key_line[K_ACTION], "action: '%s' is not pass or drop", t->action);
    char ferr[512];
    filter_t *f = filter_new(t->filter, ferr, sizeof ferr);
    if (!f) VFAIL(t->key_line[K_FILTER], "%s", ferr);
    filter_free(f);
    return 0;
}

static int brconfig__group(brconfig_t *c, int gi, const char *path, char *err, size_t errlen)
{
    brconf_tool *g = &c->tools[gi];
    for (int k = 0; brconfig_keys[k].name; k++) {
        if (g->key_line[k] && !(brconfig_applies[k] & (A_GROUP | A_RULE)))
            VFAIL(g->key_line[k], "'%s' does not apply to a group (put it in the member tools)",
                  brconfig_keys[k].name);
    }
    if (!g->members) VFAIL(g->line, "group '%s' needs 'members = TOOL, TOOL, ...'", g->name);
    int line = g->key_line[K_MEMBERS];
    char *list = xstrdup(g->members), *save = NULL;
    for (char *m = strtok_r(list, ", \t", &save); m; m = strtok_r(NULL, ", \t", &save)) {
        int ti = brconfig_find(c, m);
        const char *why = NULL;
        if (ti < 0) why = "no [tool] has this name";
        else if (c->tools[ti].kind != BRCONF_TOOL) why = "a group cannot be a member";
        else if (c->tools[ti].group == gi) why = "listed twice";
        else if (c->tools[ti].group >= 0) why = "already a member of another group";
        else if (g->nmembers >= BRCONF_MAX_MEMBERS) why = "too many members (at most 64)";
        if (why) {
            int n = snprintf(err, errlen, "%s:%d: group '%s', member '%s': %s", path, line, g->name,
                             m, why);
            if (ti >= 0 && c->tools[ti].group >= 0 && c->tools[ti].group != gi && n > 0 &&
                (size_t)n < errlen)
                snprintf(err + n, errlen - (size_t)n, " ('%s', line %d)",
                         c->tools[c->tools[ti].group].name, c->tools[c->tools[ti].group].line);
            free(list);
            return -1;
        }
        c->tools[ti].group = gi;
        g->member[g->nmembers++] = ti;
    }
    free(list);
    if (!g->nmembers) VFAIL(line, "group '%s' has no members", g->name);
    return 0;
}

static int brconfig__validate(brconfig_t *c, const char *path, char *err, size_t errlen)
{
    if (!c->n) {
        snprintf(err, errlen, "%s: no [tool NAME] section: nothing to send packets to", path);
        return -1;
    }
    for (int i = 0; i < c->n; i++) {
        brconf_tool *t = &c->tools[i];
        if (t->kind == BRCONF_TOOL && brconfig__tool(t, path, err, errlen) < 0) return -1;
        /* Two file sets with one name pattern would delete each other's files. */
        for (int j = 0; t->type_id == BROUT_PCAP && j < i; j++) {
            const brconf_tool *o = &c->tools[j];
            if (o->type_id == BROUT_PCAP && !strcmp(o->dir, t->dir) && !strcmp(o->prefix, t->prefix))
                VFAIL(t->line, "tool '%s' writes the same files as '%s' (line %d): give it another "
                      "dir or prefix", t->name, o->name, o->line);
        }
    }
    for (int i = 0; i < c->n; i++) {
        brconf_tool *t = &c->tools[i];
        if (t->kind == BRCONF_GROUP) {
            if (brconfig__group(c, i, path, err, errlen) < 0) return -1;
            if (brconfig__rules(t, path, err, errlen) < 0) return -1;
        }
    }
    for (int i = 0; i < c->n; i++) {
        brconf_tool *t = &c->tools[i];
        if (t->kind != BRCONF_TOOL) continue;
        if (t->group < 0) {
            if (brconfig__rules(t, path, err, errlen) < 0) return -1;
            continue;
        }
        for (int k = 0; brconfig_keys[k].name; k++) {
            if (t->key_line[k] && (brconfig_applies[k] & A_RULE))
                VFAIL(t->key_line[k], "tool '%s' is a member of group '%s' (line %d): put '%s' in "
                      "the group", t->name, c->tools[t->group].name, c->tools[t->group].line,
                      brconfig_keys[k].name);
        }
    }
    return 0;
}

typedef struct brconfig__reading {
    brconfig_t *c;
    const config_opt *globals;
    void *settings;
    config_origin *where;
} brconfig__reading;

/* config_line_fn: a [tool NAME] / [group NAME] header or a key. */
static int brconfig__line(void *ctx, const char *path, int lineno, char *section, char *key,
                          char *val, char *err, size_t errlen)
{
    brconfig__reading *r = ctx;
    if (section) return brconfig__section(r->c, section, path, lineno, err, errlen);
    return brconfig__key(r->c, r->globals, r->settings, r->where, key, val, path, lineno, err,
                         errlen);
}

brconfig_t *brconfig_load(const char *path, const config_opt *globals, void *settings,
                          config_origin *where, char *err, size_t errlen)
{
    brconfig_t *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    brconfig__reading r = { c, globals, settings, where };
    int rc = config_read_lines(path, "'key = value' or a [tool NAME] / [group NAME] header",
                               brconfig__line, &r, err, errlen);
    if (rc < 0 || brconfig__validate(c, path, err, errlen) < 0) goto fail;
    return c;
fail:
    brconfig_free(c);
    return NULL;
}

static int brconfig__streq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int brconfig_output_equal(const brconf_tool *a, const brconf_tool *b)
{
    return a->kind == b->kind && a->type_id == b->type_id && brconfig__streq(a->dest, b->dest) &&
           a->vni == b->vni && brconfig__streq(a->dir, b->dir) &&
           brconfig__streq(a->prefix, b->prefix) && a->rotate_size == b->rotate_size &&
           a->rotate_interval == b->rotate_interval && a->max_files == b->max_files &&
           brconfig__streq(a->interface, b->interface) && a->sndbuf == b->sndbuf;
}

void brconfig_free(brconfig_t *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        config_free(brconfig_keys, &c->tools[i]);
        free(c->tools[i].name);
    }
    free(c->tools);
    free(c->path);
    free(c);
}
