from __future__ import annotations

import procrastinate

from custos.runtime import Runtime


def runtime_of(context: procrastinate.JobContext) -> Runtime:
    """Jobs reach the process's Runtime through the worker's additional context."""
    runtime: Runtime = context.additional_context["runtime"]
    return runtime
