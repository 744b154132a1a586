-- Spans and scores. Tokens: $db, $on_cluster, $replicated (empty or "Replicated"), $local ("" or "_local").
-- A statement whose first line is "-- @cluster" runs only when the store is configured with a cluster.

CREATE TABLE IF NOT EXISTS $db.spans$local $on_cluster
(
    project_id              LowCardinality(String),
    trace_id                String,
    span_id                 String,
    parent_span_id          String,
    name                    LowCardinality(String),
    kind                    LowCardinality(String),
    start_time              DateTime64(9, 'UTC'),
    end_time                DateTime64(9, 'UTC'),
    duration_ms             Float64,
    status_code             LowCardinality(String),
    status_message          String,
    service_name            LowCardinality(String),
    scope_name              LowCardinality(String),
    span_type               LowCardinality(String),
    operation               LowCardinality(String),
    provider                LowCardinality(String),
    request_model           LowCardinality(String),
    response_model          LowCardinality(String),
    model                   LowCardinality(String),
    input_tokens            Nullable(UInt64),
    output_tokens           Nullable(UInt64),
    cache_read_input_tokens Nullable(UInt64),
    reasoning_output_tokens Nullable(UInt64),
    cost_usd                Nullable(Float64),
    cost_source             LowCardinality(String),
    input                   String CODEC(ZSTD(1)),
    output                  String CODEC(ZSTD(1)),
    system_instructions     String CODEC(ZSTD(1)),
    user_id                 String,
    session_id              String,
    tags                    Array(LowCardinality(String)),
    variant                 LowCardinality(String),
    prompt_name             LowCardinality(String),
    prompt_version          LowCardinality(String),
    attributes              Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes     Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    events                  String CODEC(ZSTD(1)),
    links                   String CODEC(ZSTD(1)),
    has_error               Bool,
    retention_days          UInt16,
    version                 UInt64,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ${replicated}ReplacingMergeTree(version)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project_id, toStartOfHour(start_time), trace_id, span_id)
TTL toDateTime(start_time) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 0;

-- @cluster
CREATE TABLE IF NOT EXISTS $db.spans $on_cluster AS $db.spans_local
ENGINE = Distributed($cluster, $db, spans_local, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS $db.scores$local $on_cluster
(
    project_id        LowCardinality(String),
    score_id          String,
    trace_id          String,
    span_id           String,
    name              LowCardinality(String),
    value             Nullable(Float64),
    label             String,
    explanation       String CODEC(ZSTD(1)),
    source            LowCardinality(String),
    evaluator_version LowCardinality(String),
    metadata          Map(String, String),
    created_at        DateTime64(3, 'UTC'),
    version           UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, trace_id, name, score_id);

-- @cluster
CREATE TABLE IF NOT EXISTS $db.scores $on_cluster AS $db.scores_local
ENGINE = Distributed($cluster, $db, scores_local, cityHash64(trace_id));
