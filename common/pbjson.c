/* pbjson.c - protobuf-c messages as JSON by their descriptors (see pbjson.h). */
#include "pbjson.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static json_t *pbjson__i64(int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    return json_string(b);
}

static json_t *pbjson__u64(uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return json_string(b);
}

static json_t *pbjson__bytes(const ProtobufCBinaryData *b)
{
    char text[INET6_ADDRSTRLEN];
    if (b->len == 0) return json_string("");
    if ((b->len == 4 && inet_ntop(AF_INET, b->data, text, sizeof text)) ||
        (b->len == 16 && inet_ntop(AF_INET6, b->data, text, sizeof text)))
        return json_string(text);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (b->len + 2) / 3 * 4;
    char *out = malloc(n + 1), *o = out;
    if (!out) return json_null();
    for (size_t i = 0; i < b->len; i += 3) {
        uint32_t v = (uint32_t)b->data[i] << 16;
        if (i + 1 < b->len) v |= (uint32_t)b->data[i + 1] << 8;
        if (i + 2 < b->len) v |= b->data[i + 2];
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < b->len ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < b->len ? b64[v & 63] : '=';
    }
    *o = 0;
    json_t *j = json_string(out);
    free(out);
    return j;
}

/* One value of field f at p (a pointer to the value in the message, or to
 * the array element). */
static json_t *pbjson__value(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return pbjson__i64(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return pbjson__u64(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return ev ? json_string(ev->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: return pbjson__bytes(p);
    case PROTOBUF_C_TYPE_MESSAGE: return pbjson_message(*(ProtobufCMessage *const *)p);
    }
    return json_null();
}

static size_t pbjson__size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    default: return 4;
    }
}

/* A map field is a repeated message of (key, value) entries. */
static int pbjson__is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED) return 0;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t n = strlen(d->name);
    return n > 5 && !strcmp(d->name + n - 5, "Entry") && d->n_fields == 2 &&
           !strcmp(d->fields[0].name, "key") && !strcmp(d->fields[1].name, "value");
}

json_t *pbjson_message(const ProtobufCMessage *m)
{
    if (!m) return json_null();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *o = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* Only the member that is set. */
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            if (pbjson__is_map(f)) {
                json_t *map = json_object();
                for (size_t k = 0; k < n; k++) {
                    const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[k];
                    const ProtobufCFieldDescriptor *kf = &e->descriptor->fields[0];
                    const ProtobufCFieldDescriptor *vf = &e->descriptor->fields[1];
                    json_t *key = pbjson__value(kf, (const char *)e + kf->offset);
                    const char *ks = json_is_string(key) ? json_string_value(key) : "?";
                    json_object_set_new(map, ks, pbjson__value(vf, (const char *)e + vf->offset));
                    json_decref(key);
                }
                json_object_set_new(o, f->name, map);
                continue;
            }
            json_t *a = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(a, pbjson__value(f, arr + k * pbjson__size(f)));
            json_object_set_new(o, f->name, a);
            continue;
        }
        json_object_set_new(o, f->name, pbjson__value(f, base + f->offset));
    }
    return o;
}
