-- One row per finished request as the gateway measured it (topic lodestar.request-outcomes).
-- instance_id / policy are NULL when no instance was reached / no policy decided.
-- Dedupe: ReplacingMergeTree on the sorting key, which ends with event_id; read with FINAL.
CREATE TABLE IF NOT EXISTS request_outcomes
(
    event_id          UUID,
    ts                DateTime64(3, 'UTC'),
    schema_version    UInt8,
    request_id        String,
    decision_id       String,
    model             LowCardinality(String),
    instance_id       LowCardinality(Nullable(String)),
    policy            LowCardinality(Nullable(String)),
    stream            Bool,
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    ttft_s            Nullable(Float64),
    tpot_s            Nullable(Float64),
    e2e_s             Float64,
    status            LowCardinality(String),
    http_status       UInt16,
    error_class       LowCardinality(Nullable(String)),
    fallback          Bool,
    attempts          UInt32,
    kafka_partition   UInt32,
    kafka_offset      UInt64,
    inserted_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_decision_id decision_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (ts, event_id)
TTL toDateTime(ts) + toIntervalDay({retention_days:UInt32})
SETTINGS ttl_only_drop_parts = 1;
