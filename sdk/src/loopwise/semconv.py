"""Attribute keys on the wire: the one place they are spelled.

The SDK writes these keys and the collector reads them; neither spells them as string literals
elsewhere. Names follow the OpenTelemetry GenAI semantic conventions, with project-specific
fields under the ``loopwise.*`` prefix, plus the legacy and vendor spellings that real exporters
(OpenLLMetry, OpenLIT, OpenInference) still send, which the collector understands on ingest.

Example:
    >>> from loopwise import semconv
    >>> semconv.GEN_AI_REQUEST_MODEL
    'gen_ai.request.model'
"""

from __future__ import annotations

from typing import Final

# --- OpenTelemetry GenAI semantic conventions -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # older name of gen_ai.provider.name
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"

# --- Loopwise fields ---------------------------------------------------------------------------
LOOPWISE_COST_USD: Final = "loopwise.cost.usd"
LOOPWISE_USER_ID: Final = "loopwise.user.id"
LOOPWISE_SESSION_ID: Final = "loopwise.session.id"
LOOPWISE_TAGS: Final = "loopwise.tags"
LOOPWISE_VARIANT: Final = "loopwise.variant"
LOOPWISE_PROMPT_NAME: Final = "loopwise.prompt.name"
LOOPWISE_PROMPT_VERSION: Final = "loopwise.prompt.version"
LOOPWISE_INPUT: Final = "loopwise.input"
LOOPWISE_OUTPUT: Final = "loopwise.output"
LOOPWISE_SPAN_TYPE: Final = "loopwise.span.type"
LOOPWISE_TRUNCATED: Final = "loopwise.truncated"
# One attribute per key of propagate(metadata=...) and update_current_span(metadata=...).
LOOPWISE_METADATA_PREFIX: Final = "loopwise.metadata."
# Streams (generators, streamed LLM responses): milliseconds from the call to the first chunk.
LOOPWISE_TIME_TO_FIRST_CHUNK_MS: Final = "loopwise.stream.time_to_first_chunk_ms"
LOOPWISE_STREAM_CHUNKS: Final = "loopwise.stream.chunks"

# --- Legacy and vendor spellings, read on ingest only ------------------------------------------
# OpenLLMetry / early GenAI conventions: indexed prompt and completion messages.
LEGACY_GEN_AI_PROMPT_PREFIX: Final = "gen_ai.prompt."
LEGACY_GEN_AI_COMPLETION_PREFIX: Final = "gen_ai.completion."
LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
LEGACY_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
# OpenInference (Arize Phoenix).
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
LLM_MODEL_NAME: Final = "llm.model_name"
LLM_PROVIDER: Final = "llm.provider"
LLM_SYSTEM: Final = "llm.system"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_REASONING: Final = "llm.token_count.completion_details.reasoning"
LLM_INPUT_MESSAGES_PREFIX: Final = "llm.input_messages."
LLM_OUTPUT_MESSAGES_PREFIX: Final = "llm.output_messages."
# Inside an indexed OpenInference message: llm.input_messages.0.message.role.
OPENINFERENCE_MESSAGE_PREFIX: Final = "message."
INPUT_VALUE: Final = "input.value"
OUTPUT_VALUE: Final = "output.value"
OPENINFERENCE_USER_ID: Final = "user.id"
OPENINFERENCE_SESSION_ID: Final = "session.id"
OPENINFERENCE_TAGS: Final = "tag.tags"

# --- General OpenTelemetry keys the collector reads --------------------------------------------
SERVICE_NAME: Final = "service.name"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
# The API server an integration called (for OpenAI-compatible clients: the host of base_url).
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

__all__ = [name for name in dir() if name.isupper()]
