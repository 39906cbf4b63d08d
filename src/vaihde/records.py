"""The base of vaihde's records: one pydantic model per domain shape (an availability entry, an
employee, a caller, a message, ...) that the stores fill from database rows (`of_row`, the
one way from a row to a record), the code passes around, and the REST API sends as JSON and
documents (its OpenAPI schemas are generated from these models).

Times are stored and handled in UTC; as JSON they are ISO 8601 in the reader's time zone
(`dump_json(..., tz=...)`, the company's zone for the API).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)
from pydantic_core import PydanticCustomError

F = TypeVar("F", bound=Callable[..., Any])

TIME_FORMAT = "ISO 8601 with a UTC offset, e.g. 2025-06-02T14:00:00+03:00"


def fail(code: str, message: str, field: str | None = None) -> PydanticCustomError:
    """What a validator raises for bad input: the API answers 400 with this `code` ("invalid",
    "wrong_type", "missing_field", ...), `message` and `field` (default: the field validated)."""
    context: dict[str, Any] = {"message": message}
    if field is not None:
        context["field"] = field
    return PydanticCustomError(code, "{message}", context)


def _parse_time(value: Any) -> Any:
    """Times given as text must be ISO 8601 with a UTC offset: a time without one is
    ambiguous. Times given as datetimes (from the database, from code) pass as they are."""
    if isinstance(value, datetime):
        return value
    example = "like 2025-06-02T14:00:00+03:00"
    if not isinstance(value, str):
        kind = "a number" if isinstance(value, int | float) else type(value).__name__
        raise fail("wrong_type", f"must be a string {example}, not {kind}")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise fail("invalid", f"{value!r} is not a date and time {example}") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise fail("invalid", f"must include a UTC offset ({example}): a time without one is "
                   "ambiguous")
    return at


def _in_zone(value: datetime, info: SerializationInfo) -> str:
    context = info.context or {}
    return value.astimezone(context.get("tz", UTC)).isoformat()


# A moment in time (aware); as JSON, ISO 8601 with the offset of the reader's zone. Read from
# text only with an offset.
Time = Annotated[
    datetime,
    BeforeValidator(_parse_time),
    PlainSerializer(_in_zone, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "description": TIME_FORMAT}),
]


def _not_required(schema: dict[str, Any], cls: type[Any]) -> None:
    """Fields a record leaves out of its JSON at times (`sometimes`) are not required."""
    sometimes = getattr(cls, "sometimes", ())
    if sometimes and "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in sometimes]


class Record(BaseModel):
    """A record: immutable, built from keyword (or, in field order, positional) arguments or
    from a row's attributes. As JSON every field is present (null when empty) unless it is in
    `sometimes`."""

    model_config = ConfigDict(
        frozen=True,
        from_attributes=True,
        populate_by_name=True,
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_not_required,
    )
    sometimes: ClassVar[tuple[str, ...]] = ()
    positional: ClassVar[tuple[str, ...]] = ()  # the order of positional arguments if not
    # the fields' order

    def __init__(self, /, *args: Any, **values: Any) -> None:
        if args:
            # Records were dataclasses: positional arguments in field order still work.
            names = type(self).positional or tuple(type(self).model_fields)
            values.update(zip(names, args, strict=False))
        super().__init__(**values)


def keeps_fields(serializer: F) -> F:
    """For a wrap serializer that sends the record's own fields (perhaps without some): pydantic
    takes its return annotation for the JSON schema, and without one it documents the
    record's fields, which is right."""
    serializer.__annotations__.pop("return", None)
    return serializer


@keeps_fields
def _drop_absent(self: Record, handler: SerializerFunctionWrapHandler) -> Any:
    out = handler(self)
    if isinstance(out, dict):
        for name in self.sometimes:
            if out.get(name, 0) is None:
                del out[name]
    return out


# For a record whose `sometimes` fields are left out of its JSON when they are None:
#     _absent = LEAVE_OUT_NONE
LEAVE_OUT_NONE = model_serializer(mode="wrap")(_drop_absent)

R = TypeVar("R", bound=BaseModel)


class _Overlay:
    """A row's attributes with some replaced (what the row does not hold itself)."""

    __slots__ = ("_row", "_values")

    def __init__(self, row: object, values: dict[str, Any]) -> None:
        self._row = row
        self._values = values

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        return getattr(object.__getattribute__(self, "_row"), name)


def of_row(model: type[R], row: object, **values: Any) -> R:
    """The record of a database row (its attributes by field name or validation alias), with
    `values` for what the row does not hold itself."""
    return model.model_validate(_Overlay(row, values) if values else row)


def each(attribute: str | None = None) -> BeforeValidator:
    """For a tuple field filled from a relationship or a JSON list: the `attribute` of each
    related row (values that are not rows pass as they are); None (an empty column) is ()."""

    def pick(items: Iterable[Any] | None) -> Any:
        if items is None:
            return ()
        if attribute is None:
            return tuple(items)
        return tuple(getattr(item, attribute, item) for item in items)

    return BeforeValidator(pick)


def dump_json(record: BaseModel, *, tz: Any = UTC, **context: Any) -> bytes:
    """The record as JSON (by alias), times in `tz`; `context` reaches the serializers."""
    return record.__pydantic_serializer__.to_json(
        record, by_alias=True, context={"tz": tz, **context}
    )


def as_json(record: BaseModel, *, tz: Any = UTC, **context: Any) -> dict[str, Any]:
    """The record as JSON data (by alias), times in `tz`, for code that adds to it."""
    out: dict[str, Any] = record.model_dump(
        mode="json", by_alias=True, context={"tz": tz, **context}
    )
    return out
