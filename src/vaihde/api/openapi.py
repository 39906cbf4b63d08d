"""The OpenAPI 3.1 description of /api/v1, served at GET /api/v1/openapi.json (no login).
Written by hand; tests check that it lists exactly the routes the application has, that it
validates, and that responses match its schemas.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from vaihde import __version__
from vaihde.api.errors import Query
from vaihde.auth.middleware import public
from vaihde.messages.model import (
    CALLBACK_STATUSES,
    CHANNELS,
    DELIVERY_STATUSES,
    MESSAGE_STATUSES,
    NAME_MAX,
    NOTE_MAX,
)
from vaihde.presence.model import (
    MAX_INTERNAL_NOTE,
    MAX_NOTE_FOR_CALLERS,
    Source,
    State,
)

Schema = dict[str, Any]

STATES = [s.value for s in State]
SOURCES = [s.value for s in Source]
ROLES = ["employee", "operator", "admin"]
STAFF = ["operator", "admin"]
TIME_FORMAT = "ISO 8601 with a UTC offset, e.g. 2025-06-02T14:00:00+03:00"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def null(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **more: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties}
    out["required"] = list(properties) if required is None else required
    out.update(more)
    return out


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time", "description": TIME_FORMAT}
ANY: Schema = {}

RECIPIENT_REF = {
    "description": "whom it is for: an employee or a team of the directory",
    "oneOf": [
        obj({"employee": {"type": "string", "description": "employee id"}},
            additionalProperties=False),
        obj({"team": {"type": "string", "description": "team id"}}, additionalProperties=False),
    ],
}
CALLER_NUMBER: Schema = {
    "type": "string",
    "description": "3-32 digits with an optional leading + (spaces and - are ignored); "
    "stored as digits",
}
CALL_ID = null({"type": "string", "maxLength": 64,
                "description": "the Asterisk call (linkedid) it came from; letters, digits "
                ". _ : -"})
MESSAGE_SCHEMAS: dict[str, Schema] = {
    "Recipient": obj(
        {"kind": {"enum": ["employee", "team"]}, "id": STR,
         "name": {"type": "string", "description": "from the running configuration"}}
    ),
    "Delivery": obj(
        {
            "id": INT,
            "channel": {"enum": list(CHANNELS)},
            "address": {"type": "string", "description": "e-mail address or SMS number"},
            "status": {"enum": list(DELIVERY_STATUSES)},
            "attempts": {"type": "integer", "description": "attempts made (since the last "
                         "retry by hand)"},
            "next_retry_at": null({**TIME, "description": "when it is tried (again); null "
                                   "while being sent and once final"}),
            "last_error": {"type": "string", "description": "why the last attempt failed; "
                           "\"\" if none"},
            "sent_at": null(TIME),
        }
    ),
    "Message": obj(
        {
            "id": INT,
            "created_at": TIME,
            "for": ref("Recipient"),
            "caller_number": null({"type": "string", "description": "digits; null = withheld "
                                   "or not given"}),
            "caller_name": STR,
            "taken_by": {"type": "string",
                         "description": "\"caller\" (recorded after the tone) or the "
                         "operator's username"},
            "path": {"type": "string", "description": "what the caller tried, and how"},
            "text": STR,
            "call_id": null(STR),
            "language": {"enum": ["fi", "sv", "en"]},
            "status": {"enum": list(MESSAGE_STATUSES),
                       "description": "summary of the deliveries; no_address: nobody to "
                       "send it to (operators see it here)"},
            "has_recording": {"type": "boolean",
                              "description": "GET /messages/{id}/recording serves it"},
            "deliveries": array(ref("Delivery")),
        }
    ),
    "MessageList": obj(
        {
            "messages": array(ref("Message")),
            "next_cursor": null({"type": "string",
                                 "description": "pass as cursor for the next page; null: "
                                 "no more"}),
        }
    ),
    "TakeMessage": obj(
        {
            "for": RECIPIENT_REF,
            "caller_number": null(CALLER_NUMBER),
            "caller_name": {"type": "string", "maxLength": NAME_MAX},
            "text": {"type": "string", "minLength": 1, "maxLength": NOTE_MAX},
            "call_id": CALL_ID,
        },
        ["for", "text"],
        additionalProperties=False,
    ),
    "Callback": obj(
        {
            "id": INT,
            "created_at": TIME,
            "for": null(ref("Recipient")),
            "caller_number": {"type": "string", "description": "digits"},
            "caller_name": STR,
            "text": STR,
            "call_id": null(STR),
            "taken_by": STR,
            "status": {"enum": list(CALLBACK_STATUSES)},
            "handled_by": null(STR),
            "handled_at": null(TIME),
        }
    ),
    "CallbackList": obj(
        {
            "callbacks": array(ref("Callback")),
            "next_cursor": null({"type": "string",
                                 "description": "pass as cursor for the next page; null: "
                                 "no more"}),
        }
    ),
    "TakeCallback": obj(
        {
            "for": null({**RECIPIENT_REF, "description": "whom to call back for; null: "
                         "whoever takes it"}),
            "caller_number": CALLER_NUMBER,
            "caller_name": {"type": "string", "maxLength": NAME_MAX},
            "text": {"type": "string", "maxLength": NOTE_MAX},
            "call_id": CALL_ID,
        },
        ["caller_number"],
        additionalProperties=False,
    ),
}

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {
                        "type": "string",
                        "description": "machine-readable: invalid, missing_field, "
                        "unknown_field, wrong_type, malformed_json, invalid_config, not_found, "
                        "unauthenticated, invalid_token, session_expired, invalid_credentials, "
                        "csrf, forbidden, too_many_attempts, too_many_streams, too_large, "
                        "unsupported_media_type, method_not_allowed, conflict, "
                        "unknown_recipient, unavailable, internal",
                    },
                    "message": {"type": "string", "description": "plain words, for people"},
                    "field": {"type": "string", "description": "the input that is wrong"},
                    "problems": array(ANY),
                },
                ["code", "message"],
            )
        }
    ),
    "User": obj(
        {
            "username": STR,
            "display_name": STR,
            "role": {"enum": ROLES},
            "employee_id": null(STR),
            "sip_endpoint": null(STR),
        }
    ),
    "Session": obj(
        {
            "user": ref("User"),
            "via": {"enum": ["token", "session"]},
            "csrf_token": {
                "type": "string",
                "description": "send as X-CSRF-Token with every POST, PUT and DELETE made with "
                "the session cookie",
            },
            "expires_at": TIME,
            "idle_expires_at": {**TIME, "description": "when the session ends if unused (12 h "
                                "idle limit, 7 days at most)"},
        },
        ["user", "via"],
    ),
    "Login": obj(
        {"username": STR, "password": STR}, additionalProperties=False
    ),
    "State": {"enum": STATES},
    "AvailabilitySummary": obj(
        {
            "state": ref("State"),
            "until": null(TIME),
            "on_call": BOOL,
            "reachable": BOOL,
            "note_for_callers": STR,
        }
    ),
    "Availability": obj(
        {
            "employee_id": STR,
            "state": ref("State"),
            "until": null(TIME),
            "on_call": {"type": "boolean", "description": "the phone is in use (AMI)"},
            "reachable": BOOL,
            "note_for_callers": STR,
            "internal_note": {
                "type": "string",
                "description": "only for the employee themselves, operators and admins",
            },
            "source": null({"enum": SOURCES}),
            "set_by": null(STR),
            "since": null(TIME),
            "entry_id": null(INT),
            "explanation": {"type": "string", "description": "which entry won and why"},
            "next_change": null(TIME),
        },
        [
            "employee_id", "state", "until", "on_call", "reachable", "note_for_callers",
            "source", "set_by", "since", "entry_id", "explanation", "next_change",
        ],
    ),
    "Entry": obj(
        {
            "id": INT,
            "employee_id": STR,
            "state": ref("State"),
            "starts_at": TIME,
            "until": null(TIME),
            "note_for_callers": STR,
            "internal_note": STR,
            "source": {"enum": SOURCES},
            "set_by": STR,
            "created_at": TIME,
            "cancelled_at": null(TIME),
            "cancelled_by": null(STR),
        },
        [
            "id", "employee_id", "state", "starts_at", "until", "note_for_callers", "source",
            "set_by", "created_at", "cancelled_at", "cancelled_by",
        ],
    ),
    "AuditRecord": obj(
        {
            "id": INT,
            "entry_id": INT,
            "action": {"enum": ["created", "updated", "cancelled"]},
            "actor": STR,
            "at": TIME,
            "details": {"type": "object"},
        }
    ),
    "SetAvailability": obj(
        {
            "state": ref("State"),
            "until": {**TIME, "description": f"when it ends (default: until changed); "
                      f"{TIME_FORMAT}; must be in the future"},
            "note_for_callers": {"type": "string", "maxLength": MAX_NOTE_FOR_CALLERS},
            "internal_note": {"type": "string", "maxLength": MAX_INTERNAL_NOTE},
        },
        ["state"],
        additionalProperties=False,
    ),
    "ScheduleEntry": obj(
        {
            "state": ref("State"),
            "starts_at": TIME,
            "until": TIME,
            "note_for_callers": {"type": "string", "maxLength": MAX_NOTE_FOR_CALLERS},
            "internal_note": {"type": "string", "maxLength": MAX_INTERNAL_NOTE},
        },
        ["state", "starts_at"],
        additionalProperties=False,
    ),
    "EntryChange": obj({"entry": ref("Entry"), "availability": ref("Availability")}),
    "EntryList": obj({"entries": array(ref("Entry"))}),
    "History": obj({"entries": array(ref("Entry")), "audit": array(ref("AuditRecord"))}),
    "AvailabilityList": obj({"availability": array(ref("Availability"))}),
    "EmployeeSummary": obj(
        {
            "id": STR,
            "name": STR,
            "title": STR,
            "extension": null(STR),
            "teams": array(STR),
            "availability": ref("AvailabilitySummary"),
        }
    ),
    "EmployeeList": obj({"employees": array(ref("EmployeeSummary"))}),
    "Person": obj({"id": STR, "name": STR, "availability": ref("AvailabilitySummary")}),
    "Employee": obj(
        {
            "id": STR,
            "name": STR,
            "title": STR,
            "active": BOOL,
            "extension": null(STR),
            "email": null(STR),
            "sms_number": null(STR),
            "languages": array(STR),
            "numbers": array(STR),
            "devices": array(obj({
                "dial": STR, "kind": {"enum": ["desk", "mobile", "softphone"]},
                # From Asterisk's device state and registrations; mobiles are always unknown.
                "reach": {"enum": ["reachable", "in_use", "unreachable", "unknown"]},
            })),
            "teams": array(obj({"id": STR, "name": STR})),
            "delegates": array(ref("Person")),
            "availability": ref("Availability"),
            "updated_at": TIME,
        }
    ),
    "TeamSummary": obj({"id": STR, "name": STR, "kind": STR, "members": array(STR)}),
    "TeamList": obj({"teams": array(ref("TeamSummary"))}),
    "Team": obj(
        {
            "id": STR,
            "name": STR,
            "kind": STR,
            "active": BOOL,
            "strategy": null({"enum": ["all", "in_order"]}),
            "ring_seconds": null(INT),
            "queue": null(STR),
            "members": array(ref("Person")),
            "updated_at": TIME,
        }
    ),
    "SearchResult": obj(
        {
            "query": STR,
            "hits": array(
                obj(
                    {
                        "employee_id": STR,
                        "name": STR,
                        "score": INT,
                        "matched": array({"enum": ["name", "title", "topic", "team",
                                                   "extension", "number", "device"]}),
                        "extension": null(STR),
                        "teams": array(STR),
                        "title": STR,
                        "topics": array(STR),
                        "availability": ref("AvailabilitySummary"),
                    }
                )
            ),
            "teams": array(
                obj(
                    {
                        "team_id": STR,
                        "name": STR,
                        "score": INT,
                        "matched": array({"enum": ["name", "title", "topic"]}),
                        "title": STR,
                        "topics": array(STR),
                    }
                )
            ),
        }
    ),
    "Caller": obj(
        {
            "number": {"type": "string", "description": "digits only"},
            "name": STR,
            "organisation": STR,
            "greet_by_name": {"type": "boolean", "description": "the caller agreed to it"},
            "preferred_channel": null({"enum": ["phone", "email", "sms"]}),
            "email": null(STR),
            "notes": STR,
            "updated_at": TIME,
        }
    ),
    "CallerUpdate": obj(
        {
            "name": {"type": "string", "maxLength": 200},
            "organisation": {"type": "string", "maxLength": 200},
            "greet_by_name": BOOL,
            "preferred_channel": null({"enum": ["phone", "email", "sms"]}),
            "email": null({"type": "string", "maxLength": 254}),
            "notes": {"type": "string", "maxLength": 5000},
        },
        [],
        additionalProperties=False,
        minProperties=1,
    ),
    "ContactList": obj(
        {
            "number": STR,
            "days": INT,
            "contacts": array(
                obj(
                    {
                        "id": INT,
                        "at": TIME,
                        "direction": {"enum": ["in", "out"]},
                        "path": STR,
                        "employee_id": null(STR),
                        "outcome": STR,
                        "call_id": STR,
                        "details": {"type": "object"},
                    }
                )
            ),
        }
    ),
    "ConfigProblem": obj(
        {
            "file": null(STR),
            "line": null(INT),
            "field": null(STR),
            "message": STR,
            "text": {"type": "string", "description": "file:line: field: message"},
        }
    ),
    "ConfigCheck": obj(
        {
            "ok": BOOL,
            "problems": array(ref("ConfigProblem")),
            "warnings": array(ref("ConfigProblem")),
            "company": STR,
            "counts": obj({"employees": INT, "teams": INT, "menus": INT, "numbers": INT}),
        },
        ["ok", "problems", "warnings"],
    ),
    "Change": obj(
        {
            "kind": {"enum": ["added", "removed", "changed"]},
            "path": STR,
            "old": ANY,
            "new": ANY,
            "summary": STR,
        }
    ),
    "ConfigDiff": obj({"changes": array(ref("Change")), "text": STR}),
    "ConfigApply": obj(
        {
            "applied": {"type": "boolean", "description": "false: nothing changed"},
            "version": null(INT),
            "changes": array(ref("Change")),
            "text": STR,
        }
    ),
    "ConfigVersion": obj(
        {
            "version": INT,
            "applied_at": TIME,
            "applied_by": STR,
            "source_name": STR,
            "sha256": STR,
            "document": {"type": "object", "description": "the canonical company document"},
        }
    ),
    **MESSAGE_SCHEMAS,
}

_ERROR_TEXT = {
    400: "Bad input: the error names the field (unknown fields and query parameters, wrong "
    "types, malformed JSON, invalid times)",
    401: "No working credentials: log in, or send Authorization: Bearer <token>",
    403: "Not allowed for your role, or (with the session cookie) a missing or wrong "
    "X-CSRF-Token",
    404: "Not found",
    409: "Conflicts with the current state (already done, nothing to retry; a console "
    "action on a call whose state does not allow it)",
    413: "The body is too large",
    415: "Wrong Content-Type",
    422: "Refers to something that does not exist (the error names the field)",
    429: "Too many failed logins or logins in progress, or too many open console streams of "
    "your user: wait (Retry-After)",
    503: "Not ready for this: no company configuration loaded yet, Asterisk (AMI) not "
    "connected, or the operator console not running",
}


def _json(schema: Schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def op(
    summary: str,
    *,
    tag: str,
    ok: tuple[int, str, Schema | None],
    errors: tuple[int, ...] = (),
    roles: list[str] | None = None,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    description: str = "",
    auth: bool = True,
    method: str = "get",
) -> dict[str, Any]:
    """One operation. Every authenticated one can answer 400 (unknown query parameters) and
    401; changes also 403 (CSRF) and, with a JSON body, 413 and 415."""
    status, text, schema = ok
    responses: dict[str, Any] = {str(status): {"description": text}}
    if schema is not None:
        responses[str(status)].update(_json(schema))
    codes = set(errors) | {400}
    if auth:
        codes |= {401}
        if method != "get":
            codes |= {403}
    if roles is not None and roles != ROLES:
        codes |= {403}
    if body is not None:
        codes |= {413, 415}
    for code in sorted(codes):
        responses[str(code)] = {"description": _ERROR_TEXT[code], **_json(ref("Error"))}
    out: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "operationId": "",
        "responses": responses,
    }
    if description:
        out["description"] = description
    parameters = list(params or [])
    if auth and method != "get":
        parameters.append({"$ref": "#/components/parameters/CsrfToken"})
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = body
    if not auth:
        out["security"] = []
    if roles is not None:
        out["x-roles"] = roles
    return out


def path_param(name: str, description: str, schema: Schema = STR) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


def query_param(
    name: str, description: str, schema: Schema, required: bool = False
) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def json_body(schema: Schema) -> dict[str, Any]:
    return {"required": True, **_json(schema)}


EMPLOYEE = path_param("employee_id", "employee id, e.g. anna")
NUMBER = path_param("number", "phone number; separators (spaces, +, -) allowed")
YAML_BODY = {
    "required": True,
    "description": "the company file (YAML within the limits of config/README.md: at most "
    "8 MiB, 1,000,000 values, 32 levels, no tags beyond plain values); employees_file: "
    "includes are not read over HTTP",
    "content": {
        "application/yaml": {"schema": STR},
        "text/yaml": {"schema": STR},
    },
}
FILE_NAME = query_param(
    "name", "file name used in problem messages (default company.yaml)", STR
)


def _paths() -> dict[str, dict[str, Any]]:
    return {
        "/openapi.json": {
            "get": op(
                "This document",
                tag="meta",
                ok=(200, "The OpenAPI 3.1 document", {"type": "object"}),
                auth=False,
            )
        },
        "/session": {
            "post": op(
                "Log in (web console)",
                tag="session",
                method="post",
                auth=False,
                ok=(200, "Logged in: the vaihde_session cookie is set (HttpOnly, "
                    "SameSite=Strict); keep csrf_token for changes", ref("Session")),
                errors=(401, 429),
                body=json_body(ref("Login")),
                description="Wrong username, wrong password, a disabled user and a user "
                "without a password all get the same 401. Failed logins are limited per "
                "username and client address, counted before the password is checked, and "
                "so are logins in progress per address and overall (429 with Retry-After).",
            ),
            "get": op(
                "Who am I",
                tag="session",
                roles=ROLES,
                ok=(200, "The user and how they authenticated", ref("Session")),
            ),
            "delete": op(
                "Log out",
                tag="session",
                method="delete",
                roles=ROLES,
                ok=(204, "Logged out; the cookie is cleared", None),
                description="Ends the cookie's session. Succeeds without credentials too "
                "(the cookie is cleared); with a live session cookie it needs X-CSRF-Token.",
            ),
        },
        "/employees": {
            "get": op(
                "Active employees with their availability",
                tag="directory",
                roles=ROLES,
                ok=(200, "Employees by name", ref("EmployeeList")),
            )
        },
        "/employees/{employee_id}": {
            "get": op(
                "An employee: devices, numbers, teams, delegates, availability",
                tag="directory",
                roles=ROLES,
                params=[EMPLOYEE],
                ok=(200, "The employee", ref("Employee")),
                errors=(404,),
            )
        },
        "/teams": {
            "get": op(
                "Active teams",
                tag="directory",
                roles=ROLES,
                ok=(200, "Teams", ref("TeamList")),
            )
        },
        "/teams/{team_id}": {
            "get": op(
                "A team and its members' availability",
                tag="directory",
                roles=ROLES,
                params=[path_param("team_id", "team id, e.g. sales")],
                ok=(200, "The team", ref("Team")),
                errors=(404,),
            )
        },
        "/directory/search": {
            "get": op(
                "Search employees and teams by name, title, topic, team, extension or "
                "number (ranked: exact before prefix; name before title before topic)",
                tag="directory",
                roles=ROLES,
                params=[
                    query_param("q", "what was typed (1-100 characters; accents optional)",
                                {"type": "string", "minLength": 1, "maxLength": 100}, True),
                    query_param("limit", "at most this many hits (1-100, default 20)",
                                {"type": "integer", "minimum": 1, "maximum": 100,
                                 "default": 20}),
                ],
                ok=(200, "Hits, best first", ref("SearchResult")),
            )
        },
        "/availability": {
            "get": op(
                "Everyone's availability now",
                tag="availability",
                roles=ROLES,
                ok=(200, "Every active employee", ref("AvailabilityList")),
            )
        },
        "/employees/{employee_id}/availability": {
            "get": op(
                "An employee's availability now, with the explanation",
                tag="availability",
                roles=ROLES,
                params=[EMPLOYEE],
                ok=(200, "Availability", ref("Availability")),
                errors=(404,),
            ),
            "put": op(
                "Set an employee's availability from now",
                tag="availability",
                method="put",
                roles=ROLES,
                params=[EMPLOYEE],
                body=json_body(ref("SetAvailability")),
                ok=(200, "The new entry and the resulting availability", ref("EntryChange")),
                errors=(404,),
                description="Replaces the employee's earlier open-ended status. Employees may "
                "set only their own (source manual); operators and admins anyone's (source "
                "operator).",
            ),
        },
        "/employees/{employee_id}/availability/entries": {
            "get": op(
                "Entries active now or starting later",
                tag="availability",
                roles=ROLES,
                params=[EMPLOYEE],
                ok=(200, "Entries by start time", ref("EntryList")),
                errors=(404,),
            ),
            "post": op(
                "Schedule an entry (a vacation, a meeting)",
                tag="availability",
                method="post",
                roles=ROLES,
                params=[EMPLOYEE],
                body=json_body(ref("ScheduleEntry")),
                ok=(201, "The scheduled entry", ref("EntryChange")),
                errors=(404,),
                description="Must not overlap another scheduled entry from the same source.",
            ),
        },
        "/availability/entries/{entry_id}": {
            "delete": op(
                "Cancel an entry (kept in the history)",
                tag="availability",
                method="delete",
                roles=ROLES,
                params=[path_param("entry_id", "entry number", {"type": "integer"})],
                ok=(200, "The cancelled entry", ref("EntryChange")),
                errors=(404,),
            )
        },
        "/employees/{employee_id}/availability/history": {
            "get": op(
                "Every entry (cancelled too) and the audit trail, newest first",
                tag="availability",
                roles=ROLES,
                params=[
                    EMPLOYEE,
                    query_param("limit", "1-500, default 50",
                                {"type": "integer", "minimum": 1, "maximum": 500,
                                 "default": 50}),
                ],
                ok=(200, "History", ref("History")),
                errors=(403, 404),
                description="For the employee themselves, operators and admins.",
            )
        },
        "/callers/{number}": {
            "get": op(
                "What is known about a caller",
                tag="callers",
                roles=STAFF,
                params=[NUMBER],
                ok=(200, "The caller", ref("Caller")),
                errors=(404,),
            ),
            "put": op(
                "Create or change a caller's details (fields not sent are kept)",
                tag="callers",
                method="put",
                roles=STAFF,
                params=[NUMBER],
                body=json_body(ref("CallerUpdate")),
                ok=(200, "Changed", ref("Caller")),
                errors=(),
            ),
        },
        "/callers/{number}/contacts": {
            "get": op(
                "Earlier calls with this number, newest first",
                tag="callers",
                roles=STAFF,
                params=[
                    NUMBER,
                    query_param("days", "how far back (1-3650, default 30)",
                                {"type": "integer", "minimum": 1, "maximum": 3650,
                                 "default": 30}),
                    query_param("limit", "1-500, default 50",
                                {"type": "integer", "minimum": 1, "maximum": 500,
                                 "default": 50}),
                ],
                ok=(200, "Contacts", ref("ContactList")),
            )
        },
        **_message_paths(),
        "/config": {
            "get": op(
                "The applied company configuration and its version",
                tag="config",
                roles=["admin"],
                ok=(200, "The current version", ref("ConfigVersion")),
                errors=(404,),
            )
        },
        "/config/check": {
            "post": op(
                "Validate a company file (nothing is applied)",
                tag="config",
                method="post",
                roles=["admin"],
                params=[FILE_NAME],
                body=YAML_BODY,
                ok=(200, "ok, or every problem as file:line: field: message",
                    ref("ConfigCheck")),
            )
        },
        "/config/diff": {
            "post": op(
                "What applying a company file would change",
                tag="config",
                method="post",
                roles=["admin"],
                params=[FILE_NAME],
                body=YAML_BODY,
                ok=(200, "The changes", ref("ConfigDiff")),
                description="A file with problems is a 400 (invalid_config) listing them.",
            )
        },
        "/config/apply": {
            "post": op(
                "Apply a company file: all of it or nothing",
                tag="config",
                method="post",
                roles=["admin"],
                params=[FILE_NAME],
                body=YAML_BODY,
                ok=(200, "Applied (or nothing to change)", ref("ConfigApply")),
                description="A file with problems is a 400 (invalid_config) listing them; "
                "nothing changes.",
            )
        },
    }


MESSAGE_ID = path_param("message_id", "message number", {"type": "integer"})
LIMIT = query_param("limit", "1-200, default 50",
                    {"type": "integer", "minimum": 1, "maximum": 200, "default": 50})
CURSOR = query_param("cursor", "next_cursor of the previous page", STR)
FOR_EMPLOYEE = query_param("employee", "only those for this employee", STR)
FOR_TEAM = query_param("team", "only those for this team", STR)
READERS = ("Operators and admins see all; an employee those for them and their teams (403 "
           "for others').")


def _message_paths() -> dict[str, dict[str, Any]]:
    recording = op(
        "The message's recording (what the caller said after the tone)",
        tag="messages",
        roles=ROLES,
        params=[MESSAGE_ID],
        ok=(200, "The audio file", None),
        errors=(403, 404),
        description="404 when the message has no recording (taken by an operator, or the "
        "file is gone). " + READERS,
    )
    recording["responses"]["200"]["content"] = {
        media: {"schema": {"type": "string", "contentMediaType": media}}
        for media in ("audio/wav", "audio/x-gsm", "audio/ogg")
    }
    return {
        "/messages": {
            "get": op(
                "Messages, newest first",
                tag="messages",
                roles=ROLES,
                params=[
                    FOR_EMPLOYEE, FOR_TEAM,
                    query_param("status", "only messages whose delivery summary is this",
                                {"enum": list(MESSAGE_STATUSES)}),
                    query_param("since", f"only those taken at or after this ({TIME_FORMAT})",
                                TIME),
                    LIMIT, CURSOR,
                ],
                ok=(200, "A page of messages", ref("MessageList")),
                errors=(403,),
                description=READERS,
            ),
            "post": op(
                "Take a message for an employee or a team",
                tag="messages",
                method="post",
                roles=STAFF,
                body=json_body(ref("TakeMessage")),
                ok=(201, "Stored; delivery by e-mail and SMS has started", ref("Message")),
                errors=(422, 503),
                description="Stored like the messages callers record and delivered by the same "
                "sender (retried until sent or failed). An unknown employee or team is a 422 "
                "naming for.employee or for.team; nothing is stored on any error.",
            ),
        },
        "/messages/{message_id}": {
            "get": op(
                "A message with each delivery's status, attempts, last error and next retry",
                tag="messages",
                roles=ROLES,
                params=[MESSAGE_ID],
                ok=(200, "The message", ref("Message")),
                errors=(403, 404),
                description=READERS,
            )
        },
        "/messages/{message_id}/recording": {"get": recording},
        "/messages/{message_id}/retry": {
            "post": op(
                "Send the failed and cancelled deliveries again, now",
                tag="messages",
                method="post",
                roles=STAFF,
                params=[MESSAGE_ID],
                ok=(200, "The message, its deliveries pending again", ref("Message")),
                errors=(404, 409),
                description="409 when nothing of it failed or was cancelled.",
            )
        },
        "/messages/{message_id}/cancel": {
            "post": op(
                "Stop delivering a message (deliveries not yet sent are cancelled)",
                tag="messages",
                method="post",
                roles=STAFF,
                params=[MESSAGE_ID],
                ok=(200, "The message", ref("Message")),
                errors=(404,),
            )
        },
        "/callbacks": {
            "get": op(
                "Callback requests, oldest first (the order to call back in)",
                tag="callbacks",
                roles=ROLES,
                params=[
                    FOR_EMPLOYEE, FOR_TEAM,
                    query_param("status", "open (default), done, cancelled or all",
                                {"enum": [*CALLBACK_STATUSES, "all"], "default": "open"}),
                    LIMIT, CURSOR,
                ],
                ok=(200, "A page of callback requests", ref("CallbackList")),
                errors=(403,),
                description=READERS + " Requests for nobody in particular are for staff.",
            ),
            "post": op(
                "Take a callback request",
                tag="callbacks",
                method="post",
                roles=STAFF,
                body=json_body(ref("TakeCallback")),
                ok=(201, "Stored, open", ref("Callback")),
                errors=(422,),
                description="An unknown employee or team is a 422 naming for.employee or "
                "for.team; nothing is stored on any error.",
            ),
        },
        "/callbacks/{callback_id}/done": {
            "post": op(
                "Mark a callback request done (called back), with who and when",
                tag="callbacks",
                method="post",
                roles=ROLES,
                params=[path_param("callback_id", "callback request number",
                                   {"type": "integer"})],
                ok=(200, "The request, done", ref("Callback")),
                errors=(403, 404, 409),
                description="Operators and admins close any; an employee those for them and "
                "their teams. 409 when it is not open any more. No body, or an empty JSON "
                "object.",
            )
        },
    }


def _with_put_created(paths: dict[str, dict[str, Any]]) -> None:
    put = paths["/callers/{number}"]["put"]
    put["responses"]["201"] = {"description": "Created", **_json(ref("Caller"))}


def document() -> dict[str, Any]:
    paths = _paths()
    paths.update(console_paths())
    _with_put_created(paths)
    for path, methods in paths.items():
        for method, operation in methods.items():
            operation["operationId"] = _operation_id(method, path)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vaihde REST API",
            "version": __version__,
            "description": "The company switchboard's directory, availability, caller register "
            "and configuration. Authenticate with an API token (`vaihde token create`) as "
            "`Authorization: Bearer <token>`, or log in with POST /session (web console: "
            "cookie plus X-CSRF-Token on changes). Roles: employee (read; change own "
            "availability, read messages for them), operator (+ anyone's availability, callers, "
            "messages and callbacks), admin (everything). "
            f"Times are {TIME_FORMAT}.",
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "tags": [
            {"name": name}
            for name in ("session", "directory", "availability", "callers", "messages",
                         "callbacks", "console", "config", "meta")
        ],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "an API token from `vaihde token create`"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "vaihde_session",
                               "description": "set by POST /session"},
            },
            "parameters": {
                "CsrfToken": {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": False,
                    "description": "the session's csrf_token; required with the session "
                    "cookie, not with a bearer token",
                    "schema": STR,
                }
            },
        },
    }


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[/_.{}]+", path) if w]
    return method + "".join(w[:1].upper() + w[1:] for w in words)


_ENCODED: bytes | None = None


@public
async def serve(request: web.Request) -> web.Response:
    global _ENCODED
    Query(request, ())
    if _ENCODED is None:
        _ENCODED = json.dumps(document(), ensure_ascii=False, indent=1).encode("utf-8")
    return web.Response(body=_ENCODED, content_type="application/json", charset="utf-8")


# --- the operator console ------------------------------------------------------------------

CALL_STATES = ["waiting", "ringing", "active", "parked", "transferring"]
SCHEMAS.update({
    "ConsoleCall": obj(
        {
            "id": {"type": "string", "description": "the caller channel's Uniqueid"},
            "state": {"enum": CALL_STATES},
            "queue": null(STR),
            "position": null(INT),
            "since": {**TIME, "description": "when the call entered its current state (UTC)"},
            "answered_at": null(TIME),
            "caller": obj({
                "number": STR,
                "name": {"type": "string", "description": "untrusted: render as text"},
                "known": null(obj({"name": STR, "organisation": STR})),
            }),
            "sought": null(obj({
                "kind": {"enum": ["employee", "team", "operator"]},
                "id": STR, "name": STR,
                "path": {"type": "string", "description": "direct_number, menu_option, "
                         "extension, name_search, operator, …"},
                "detail": STR,
            })),
            "what_happened": STR,
            "availability": null(obj(
                {"state": ref("State"), "until": null(TIME), "note": STR,
                 "internal_note": STR, "on_call": BOOL},
                ["state", "until", "note"],
            )),
            "bounced": null(obj({"target": STR, "why": STR, "by": STR})),
            "transfer": null(obj({
                "target": STR, "name": STR, "mode": {"enum": ["blind", "attended"]},
                "by": STR, "answered": BOOL,
            })),
            "parking": null(obj({"space": STR, "lot": STR, "timeout": null(INT)})),
            "parties": array(obj({"channel": STR, "name": STR, "number": STR,
                                  "employee": STR}, ["channel", "name", "number"])),
            "dialled": null(obj({"number": {"type": "string", "description": "digits"},
                                 "label": {"type": "string", "description":
                                           "the number's label in the company file"}})),
            "earlier": obj({
                "today": INT, "last_30_days": INT,
                "recent": array(obj({
                    "at": TIME,
                    "sought": null(obj({"kind": STR, "id": STR, "name": STR})),
                    "path": STR, "outcome": STR,
                    "ended": {"type": "string", "description": "the outcome in words"},
                })),
            }),
            "story": array(obj({"at": TIME, "kind": STR, "detail": {"type": "object"}})),
            "channel": STR,
        },
        ["id", "state", "queue", "position", "since", "answered_at", "caller", "sought",
         "what_happened", "availability", "bounced", "parties", "earlier", "story"],
    ),
    "ConsoleTransfer": obj(
        {
            "to": {"oneOf": [
                obj({"employee": STR}, additionalProperties=False),
                obj({"team": STR}, additionalProperties=False),
                obj({"number": {"type": "string", "pattern": "^\\+?[0-9]{3,32}$"}},
                    additionalProperties=False),
            ]},
            "mode": {"enum": ["blind", "attended"], "default": "blind"},
        },
        ["to"], additionalProperties=False,
    ),
    "ConsoleActionReply": obj(
        {"ok": BOOL, "action": STR, "call_id": STR,
         "space": null({"type": "string", "description": "park: the parking space"})},
        ["ok", "action"],
    ),
    "ConsoleBoard": obj({
        "seq": {"type": "integer", "description": "the id of the last stream event it includes"},
        "ami": obj({"connected": BOOL}),
        "waiting": array(ref("ConsoleCall")),
        "active": array(ref("ConsoleCall")),
        "parked": array(ref("ConsoleCall")),
    }),
})

STREAM_TEXT = """Server-Sent Events. Every event has `id: <seq>` and JSON data:
`board` (a ConsoleBoard: sent first, and again after Asterisk reconnects),
`call` (one ConsoleCall, new or changed), `positions` (`{call id: position}` for calls whose
queue position alone changed), `gone` (`{"id": call id}`),
`ami` (`{"connected": bool}`), `availability` (`{"employee": id, …Availability}`).
A `: ping` comment comes every 15 s. A console that reads too slowly gets a `reconnect` event
(`{"why": …}`, no id) and the stream ends; EventSource reconnects by itself (`retry: 2000`).
The stream also ends (with `reconnect`) within a second of its session ending or its token
being revoked (logout, the user disabled) or its user losing the console role; a user may
have only a few streams open at once (429 `too_many_streams` beyond)."""


def console_paths() -> dict[str, dict[str, Any]]:
    stream = op(
        "Live changes of the board", tag="console", roles=STAFF, errors=(429, 503),
        ok=(200, "An endless text/event-stream", None), description=STREAM_TEXT,
    )
    stream["responses"]["200"]["content"] = {"text/event-stream": {"schema": STR}}
    return {
        "/console/board": {
            "get": op("The board: waiting, active and parked calls", tag="console",
                      roles=STAFF, errors=(503,),
                      ok=(200, "The board", ref("ConsoleBoard")))
        },
        "/console/stream": {"get": stream},
        "/console/answer-next": {"post": _console_action(
            "The longest-waiting call to your own phone", "answer-next", call=False)},
        "/console/calls/{call_id}/answer": {"post": _console_action(
            "This call to your own phone (waiting, parked, or a bounced transfer)", "answer")},
        "/console/calls/{call_id}/transfer": {"post": _console_action(
            "Transfer: blind (rings the target; unanswered or busy it comes back to you, "
            "marked bounced) or attended (your phone talks to the target first)", "transfer",
            body=json_body(ref("ConsoleTransfer")))},
        "/console/calls/{call_id}/transfer/complete": {"post": _console_action(
            "Complete an attended transfer (the target has answered)", "complete")},
        "/console/calls/{call_id}/transfer/cancel": {"post": _console_action(
            "Cancel a transfer: back to the caller on your phone", "cancel")},
        "/console/calls/{call_id}/park": {"post": _console_action(
            "Park the call; the reply names the parking space", "park")},
        "/console/calls/{call_id}/retrieve": {"post": _console_action(
            "A parked call to your own phone", "retrieve")},
        "/console/calls/{call_id}/hangup": {"post": _console_action("Hang up the call",
                                                                    "hangup")},
    }


CALL_ID_PARAM = path_param("call_id", "the call's id (the caller channel's Uniqueid)")


def _console_action(
    summary: str, action: str, *, call: bool = True, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    errors = (409, 503) + ((404,) if call else ())
    return op(
        summary, tag="console", method="post", roles=STAFF, errors=errors, body=body,
        params=[CALL_ID_PARAM] if call else None,
        ok=(202, "Asterisk accepted the action; the board changes on the stream",
            ref("ConsoleActionReply")),
        description=f"Action `{action}`. 409 when the call's state does not allow it, 503 "
        "when Asterisk is not connected.",
    )
