/* pbcopy.h - a deep copy of a protobuf-c message, through its wire form:
 * the copy owns every string and sub-message (free it with
 * protobuf_c_message_free_unpacked), so it outlives the original - a
 * heartbeat snapshot for a database job, a request a job keeps after the
 * handler's strings are gone.
 */
#ifndef MSCOPE_PBCOPY_H
#define MSCOPE_PBCOPY_H

#include <protobuf-c/protobuf-c.h>

/* Never NULL (a message we packed always unpacks; only memory can fail,
 * which aborts as xmalloc does). */
ProtobufCMessage *pbcopy(const ProtobufCMessage *m);

#endif
