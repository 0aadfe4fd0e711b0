/* pbjson.h - protobuf messages as JSON (jansson), from the messages' own
 * descriptors: the .proto is the one definition of every field the REST API
 * returns, so a field added there appears in JSON with no code to change.
 *
 * The mapping is protobuf's canonical JSON mapping with the .proto's field
 * names kept (snake_case): 64-bit integers as decimal strings (JavaScript
 * numbers lose precision past 2^53, and our times and flow ids are past it),
 * enums by name, repeated fields as arrays, maps as objects, absent
 * sub-messages as null. Our bytes fields are all IP addresses (4 or 16
 * bytes, see the .proto): they become text ("10.0.0.1", "2001:db8::1"), and
 * "" when empty; bytes of any other length are base64.
 */
#ifndef MSCOPE_PBJSON_H
#define MSCOPE_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object for m (NULL gives null). Never fails but for memory. */
json_t *pbjson_message(const ProtobufCMessage *m);

#endif
