"""Shared pydantic building blocks: strict, frozen models that reject unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl


class Strict(BaseModel):
    """Base for every document model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Reference(Strict):
    """A source a figure or rule relies on."""

    title: str = Field(min_length=3)
    url: HttpUrl | None = None
