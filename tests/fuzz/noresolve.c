/* noresolve.c - no name lookups from a fuzz target (linked into every one).
 *
 * libpcap compiles `host NAME`, `net NAME` and the like by asking the
 * resolver (getaddrinfo): a fuzzer that makes up expressions would send DNS
 * queries to whatever resolv.conf names - traffic off this machine - and
 * wait for them (a target ran at 3 % CPU, blocked in the resolver's
 * 5-second poll). This getaddrinfo, found before libc's, lets numeric
 * addresses through (libpcap parses IPv6 ones with it) and fails every
 * name as unknown at once, without a packet.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <netdb.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    typedef int (*real_fn)(const char *, const char *, const struct addrinfo *,
                           struct addrinfo **);
    static real_fn real;
    if (!real) real = (real_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (!real) return EAI_FAIL;
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    if (hints) h = *hints;
    h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV; /* numbers only: never the network */
    return real(node, service, &h, res);
}

/* The older interface, which libpcap falls back on in places: no host. */
struct hostent *gethostbyname(const char *name)
{
    (void)name;
    h_errno = HOST_NOT_FOUND;
    return NULL;
}
