/* brconfig.h - the broker's configuration file: global options, tools and
 * groups, validated as a whole with errors that name FILE:LINE.
 *
 *   # global options (the same names as the command-line flags)
 *   dedup = yes
 *
 *   [tool ids]            an output plus the rules deciding what it gets
 *   type   = vxlan        vxlan | udp | gre | pcap | interface
 *   dest   = 10.0.0.5:4789
 *   vni    = 100
 *   filter = tcp port 80 or tcp port 443
 *
 *   [group zeek]          rules, and members sharing the load by flow
 *   filter  = tcp
 *   members = zeek1, zeek2, zeek3
 *
 * A tool listed in a group's members is an output only: the group's rules
 * decide what it gets, and a rule key in it is an error. Every key and its
 * default is in the option table in brconfig.c (and docs/BROKER.md).
 */
#ifndef MSCOPE_BRCONFIG_H
#define MSCOPE_BRCONFIG_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum brconf_kind { BRCONF_TOOL, BRCONF_GROUP };
enum brconf_type { BROUT_NONE = 0, BROUT_VXLAN, BROUT_UDP, BROUT_GRE, BROUT_PCAP, BROUT_IFACE };
enum brconf_action { BRACT_PASS = 0, BRACT_DROP };

#define BRCONF_MAX_MEMBERS 64
#define BRCONF_MAX_KEYS 24

/* One [tool] or [group] section. Strings are owned by the section. */
typedef struct brconf_tool {
    int kind;           /* enum brconf_kind */
    char *name;
    int line;           /* line of the section header */
    /* rules: groups, and tools that are not group members */
    char *filter;       /* tcpdump expression; empty = every packet */
    char *action;       /* "pass" (send what matches) or "drop" (send what does not) */
    int64_t slice;      /* keep at most this many bytes of each frame; 0 = whole */
    int mask_payload;   /* zero the bytes after the transport (or IP) header */
    /* output: tools */
    char *type;
    char *dest;         /* vxlan/udp: HOST[:PORT]; gre: HOST */
    int64_t vni;        /* vxlan */
    char *dir;          /* pcap */
    char *prefix;       /* pcap file name prefix; default: the tool name */
    int64_t rotate_size, rotate_interval, max_files;
    char *interface;    /* interface */
    int64_t sndbuf;
    /* group */
    char *members;      /* "a, b, c" */
    /* derived by validation */
    int type_id;        /* enum brconf_type */
    int action_id;      /* enum brconf_action */
    int group;          /* index of the group this tool belongs to, or -1 */
    int nmembers;
    int member[BRCONF_MAX_MEMBERS]; /* indexes of member tools */
    int key_line[BRCONF_MAX_KEYS];  /* line of each key set, by option row; 0 = unset */
} brconf_tool;

typedef struct brconfig {
    char *path;
    int n;
    brconf_tool *tools; /* [tool] and [group] sections in file order */
} brconfig_t;

/* Parse and validate path. Global lines (before the first section) are
 * applied to settings through the program's option table globals (may be
 * NULL: then global lines are an error), and where each was set goes in
 * where (one entry per row of globals, path borrowed; may be NULL), so that
 * what is found wrong with them later names FILE:LINE too. Returns the
 * configuration, or NULL with "FILE:LINE: message" in err. */
brconfig_t *brconfig_load(const char *path, const config_opt *globals, void *settings,
                          config_origin *where, char *err, size_t errlen);

/* Print every [tool]/[group] key with its meaning and default (for --help). */
void brconfig_print_keys(FILE *out);

/* Look a section up by name; -1 if absent. */
int brconfig_find(const brconfig_t *c, const char *name);

/* 1 when two tools would open the same output (type and every output key
 * equal), so a reload can keep the running one with its sockets or files. */
int brconfig_output_equal(const brconf_tool *a, const brconf_tool *b);

/* "vxlan", "pcap", ... */
const char *brconfig_type_name(int type_id);

/* Free everything. Accepts NULL. */
void brconfig_free(brconfig_t *c);

#endif
