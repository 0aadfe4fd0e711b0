/* pbcopy.c - deep copies through the wire form (see pbcopy.h). */
#include "pbcopy.h"

#include "xmalloc.h"

#include <stdint.h>
#include <stdlib.h>

ProtobufCMessage *pbcopy(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xmalloc(len + 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    if (!c) abort(); /* we just packed it: only out of memory can fail */
    return c;
}
