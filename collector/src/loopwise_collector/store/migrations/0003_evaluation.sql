-- Online evaluation (rules, leases, embeddings, drift results) and offline experiments.

-- Which spans a project evaluates, with what, at what sample rate. Soft-deleted so a re-created
-- rule id never resurrects old settings; `source` is 'api' or 'config' (config rules are re-applied at start).
CREATE TABLE IF NOT EXISTS $db.evaluator_rules$local $on_cluster
(
    project_id     LowCardinality(String),
    rule_id        String,
    name           String,
    evaluator      LowCardinality(String),
    params         String CODEC(ZSTD(1)),
    span_names     Array(String),
    models         Array(String),
    span_types     Array(LowCardinality(String)),
    tags           Array(String),
    sample_rate    Float64,
    backfill_hours UInt32,
    enabled        Bool,
    source         LowCardinality(String),
    created_at     DateTime64(3, 'UTC'),
    updated_at     DateTime64(3, 'UTC'),
    deleted        Bool,
    version        UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
ORDER BY (project_id, rule_id);

-- @cluster
CREATE TABLE IF NOT EXISTS $db.evaluator_rules $on_cluster AS $db.evaluator_rules_local
ENGINE = Distributed($cluster, $db, evaluator_rules_local, cityHash64(project_id));

-- A runner's claim on a span for one rule until expires_at. Leases only spread work: scores carry
-- deterministic ids, so a lease that expires and is re-run replaces its score instead of adding one.
CREATE TABLE IF NOT EXISTS $db.eval_leases$local $on_cluster
(
    project_id  LowCardinality(String),
    rule_id     String,
    span_id     String,
    lease_id    String,
    runner      String,
    expires_at  DateTime64(3, 'UTC'),
    version     UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
ORDER BY (project_id, rule_id, span_id)
TTL toDateTime(expires_at) + toIntervalDay(1);

-- @cluster
CREATE TABLE IF NOT EXISTS $db.eval_leases $on_cluster AS $db.eval_leases_local
ENGINE = Distributed($cluster, $db, eval_leases_local, cityHash64(project_id));

-- Sentence embeddings the runner posts back, for drift: per rule, so each drift rule compares only
-- the spans its filter selects.
CREATE TABLE IF NOT EXISTS $db.embeddings$local $on_cluster
(
    project_id LowCardinality(String),
    rule_id    String,
    field      LowCardinality(String),
    model      LowCardinality(String),
    start_time DateTime64(9, 'UTC'),
    trace_id   String,
    span_id    String,
    text       String CODEC(ZSTD(1)),
    vector     Array(Float32) CODEC(ZSTD(1)),
    retention_days UInt16,
    version    UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project_id, rule_id, toStartOfHour(start_time), span_id)
TTL toDateTime(start_time) + toIntervalDay(retention_days);

-- @cluster
CREATE TABLE IF NOT EXISTS $db.embeddings $on_cluster AS $db.embeddings_local
ENGINE = Distributed($cluster, $db, embeddings_local, cityHash64(span_id));

-- One row per scheduled drift check: the verdict, its statistics (JSON) and the windows compared.
CREATE TABLE IF NOT EXISTS $db.drift_results$local $on_cluster
(
    project_id      LowCardinality(String),
    monitor         String,
    field           LowCardinality(String),
    model           LowCardinality(String),
    computed_at     DateTime64(3, 'UTC'),
    reference_start DateTime64(3, 'UTC'),
    reference_end   DateTime64(3, 'UTC'),
    current_start   DateTime64(3, 'UTC'),
    current_end     DateTime64(3, 'UTC'),
    drift           Bool,
    p_value         Nullable(Float64),
    n_reference     UInt32,
    n_current       UInt32,
    result          String CODEC(ZSTD(1)),
    version         UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
PARTITION BY toYYYYMM(computed_at)
ORDER BY (project_id, monitor, computed_at);

-- @cluster
CREATE TABLE IF NOT EXISTS $db.drift_results $on_cluster AS $db.drift_results_local
ENGINE = Distributed($cluster, $db, drift_results_local, cityHash64(project_id));

-- Offline evaluation runs (`loopwise eval --push`); their per-row scores live in `scores` with source 'offline'.
CREATE TABLE IF NOT EXISTS $db.experiments$local $on_cluster
(
    project_id      LowCardinality(String),
    experiment_id   String,
    name            String,
    dataset_name    String,
    dataset_version String,
    evaluators      Map(String, String),
    summary         String CODEC(ZSTD(1)),
    row_count       UInt32,
    created_at      DateTime64(3, 'UTC'),
    version         UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
ORDER BY (project_id, experiment_id);

-- @cluster
CREATE TABLE IF NOT EXISTS $db.experiments $on_cluster AS $db.experiments_local
ENGINE = Distributed($cluster, $db, experiments_local, cityHash64(project_id));
