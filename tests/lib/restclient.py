"""A client of the coordinator's REST API for the tests: the tokens the
coordinator made, and every answer validated against the OpenAPI document
it serves (jsonschema, Draft 2020-12)."""
import json
import os

import harness as h

try:
    import jsonschema
except ImportError:
    h.fail("python3-jsonschema is not installed (scripts/deps.sh installs it)")


class Api:
    def __init__(self, co):
        self.co = co
        self.read = open(os.path.join(co.dir, "api-read.token")).read().strip()
        self.admin = open(os.path.join(co.dir, "api-admin.token")).read().strip()
        st, _, body = h.http_get(co.http, "/api/v1/openapi.json")
        h.check(st == 200, f"openapi.json: {st}")
        self.doc = json.loads(body)
        jsonschema.Draft202012Validator.check_schema({"components": self.doc["components"]})

    def validate(self, value, schema):
        root = {"components": self.doc["components"], "$ref": f"#/components/schemas/{schema}"}
        try:
            jsonschema.Draft202012Validator(root).validate(value)
        except jsonschema.ValidationError as e:
            h.fail(f"answer does not match {schema}: {e.message} at {list(e.absolute_path)}")

    def call(self, method, path, body=None, token="admin", status=200, schema=None):
        """One request; the answer must have this status and match schema
        (Error for an error status). token: "read", "admin", None or a token."""
        tok = {"read": self.read, "admin": self.admin, None: None}.get(token, token)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        st, _, out = h.http_get(self.co.http, path, tok, method=method, body=data,
                                headers={"Content-Type": "application/json"} if data else None)
        h.check(st == status, f"{method} {path}: {st}, want {status}: {out[:300]!r}")
        val = json.loads(out)
        self.validate(val, schema or ("Error" if status >= 400 else None))
        return val

    def get(self, path, schema=None, token="read", status=200):
        return self.call("GET", path, token=token, status=status, schema=schema)
