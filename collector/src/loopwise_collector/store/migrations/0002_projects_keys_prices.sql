-- Projects, their API keys (stored as SHA-256 hashes, never in clear) and per-project price overrides.

CREATE TABLE IF NOT EXISTS $db.projects$local $on_cluster
(
    project_id     String,
    name           String,
    retention_days UInt16,
    created_at     DateTime64(3, 'UTC'),
    version        UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
ORDER BY project_id;

-- @cluster
CREATE TABLE IF NOT EXISTS $db.projects $on_cluster AS $db.projects_local
ENGINE = Distributed($cluster, $db, projects_local, cityHash64(project_id));

CREATE TABLE IF NOT EXISTS $db.api_keys$local $on_cluster
(
    key_hash   String,
    project_id String,
    label      String,
    revoked    Bool,
    created_at DateTime64(3, 'UTC'),
    version    UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
ORDER BY key_hash;

-- @cluster
CREATE TABLE IF NOT EXISTS $db.api_keys $on_cluster AS $db.api_keys_local
ENGINE = Distributed($cluster, $db, api_keys_local, cityHash64(key_hash));

CREATE TABLE IF NOT EXISTS $db.model_prices$local $on_cluster
(
    project_id                  String,
    pattern                     String,
    effective_from              Date,
    input_per_million           Float64,
    output_per_million          Float64,
    cached_input_per_million    Nullable(Float64),
    deleted                     Bool,
    version                     UInt64
)
ENGINE = ${replicated}ReplacingMergeTree(version)
ORDER BY (project_id, pattern, effective_from);

-- @cluster
CREATE TABLE IF NOT EXISTS $db.model_prices $on_cluster AS $db.model_prices_local
ENGINE = Distributed($cluster, $db, model_prices_local, cityHash64(project_id));
