"""Query strings into pydantic models: every bad parameter named once in a 400's details."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict

from service.errors import BadRequest, FieldProblem

Query = TypeVar("Query", bound=BaseModel)


def parse_query(
    model: type[Query], args: MultiDict[str, str], overrides: dict[str, Any] | None = None
) -> Query:
    """A parameter given once is a string, given again a list; a model field that is not a list
    then refuses the repeat instead of silently taking one of the values."""
    values: dict[str, Any] = {
        name: items[0] if len(items) == 1 else items
        for name, items in args.lists()
        if name in model.model_fields
    }
    values.update(overrides or {})
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise BadRequest("invalid query parameters", parameter_problems(error)) from None


def parameter_problems(error: ValidationError) -> list[FieldProblem]:
    """One entry per parameter (status=x&status=y is one bad 'status'); values are not echoed."""
    problems: dict[str, FieldProblem] = {}
    for item in error.errors(include_input=False, include_url=False):
        name = str(item["loc"][0]) if item["loc"] else "query"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.setdefault(name, FieldProblem(name, message))
    return list(problems.values())
