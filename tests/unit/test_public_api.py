"""Public API is pinned, and the SDK stays light to import."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import loopwise_collector
import loopwise_collector.store

pytestmark = pytest.mark.unit


def test_collector_public_api() -> None:
    assert sorted(loopwise_collector.__all__) == [
        "AuthenticationError", "ClickHouseStore", "ConflictError", "IngestSettings", "InvalidPayloadError",
        "InvalidQueryError", "LoopwiseError", "NotFoundError", "PayloadTooLargeError", "Settings", "SpoolFullError",
        "StoreError", "StoreUnavailableError", "UnsupportedMediaTypeError", "create_app",
    ]  # fmt: skip
    for name in loopwise_collector.__all__:
        assert getattr(loopwise_collector, name).__doc__, f"{name} needs a docstring"


def test_evaluators_public_api_and_light_import() -> None:
    import loopwise_collector.evaluators as ev

    assert sorted(ev.__all__) == [
        "BaseEvaluator", "ENTRY_POINT_GROUP", "EvalItem", "Evaluator", "EvaluatorConfigError", "EvaluatorError",
        "Kind", "MissingDependencyError", "Registry", "Score", "UnknownEvaluatorError", "available_evaluators",
        "get_evaluator", "register_evaluator",
    ]  # fmt: skip
    for name in ev.__all__:
        obj = getattr(ev, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__ and "Example" in obj.__doc__, f"evaluators.{name} needs a docstring with an example"
    # Listing evaluators must not load their libraries: the collector imports this module.
    code = (
        "import sys; from loopwise_collector.evaluators import available_evaluators; available_evaluators(); "
        "print(sorted({'torch', 'numpy', 'sentence_transformers', 'sacrebleu', 'evaluate'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sdk_public_api() -> None:
    import loopwise

    assert sorted(loopwise.__all__) == [
        "SpanType", "__version__", "configure", "flush", "get_current_span_id", "get_current_trace_id", "observe",
        "propagate", "redact_card_numbers", "redact_emails", "redact_phone_numbers", "score", "semconv", "shutdown",
        "stats", "update_current_llm", "update_current_span",
    ]  # fmt: skip
    for name in loopwise.__all__:
        obj = getattr(loopwise, name)
        if inspect.isfunction(obj):
            assert obj.__doc__ and "Example" in obj.__doc__, f"loopwise.{name} needs a docstring with an example"


def test_sdk_integrations_public_api() -> None:
    from loopwise.integrations import openai, transformers

    assert sorted(openai.__all__) == ["instrument", "uninstrument"]
    assert sorted(transformers.__all__) == ["TracedPipeline", "wrap_pipeline"]
    for module in (openai, transformers):
        for name in module.__all__:
            assert getattr(module, name).__doc__, f"{module.__name__}.{name} needs a docstring"


def test_store_public_api() -> None:
    for name in loopwise_collector.store.__all__:
        assert hasattr(loopwise_collector.store, name)


def test_sdk_import_is_light() -> None:
    code = (
        "import sys, loopwise, loopwise.semconv; heavy = {'httpx', 'requests', 'google.protobuf', 'pydantic', "
        "'numpy', 'torch', 'clickhouse_connect'}; print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # Integrations load their client library only when imported themselves.
    code = "import sys, loopwise; print(sorted({'openai', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_collector_never_spells_attribute_keys() -> None:
    import pathlib

    from loopwise import semconv

    keys = {v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str) and "." in v}
    src = pathlib.Path(loopwise_collector.__file__).parent
    offenders = [
        (path.name, key)
        for path in src.rglob("*.py")
        for key in keys
        if f'"{key}"' in (text := path.read_text()) or f"'{key}'" in text
    ]
    assert offenders == []
