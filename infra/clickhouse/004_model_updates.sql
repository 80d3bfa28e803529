-- One row per predictor version the trainer published (topic lodestar.model-updates).
-- The weights blob stays on the compacted topic; only its size and sha256 are kept here.
-- Kept longer than the other tables (model_retention_days): the topic keeps only the newest.
-- Dedupe: ReplacingMergeTree on the sorting key, which ends with event_id; read with FINAL.
CREATE TABLE IF NOT EXISTS model_updates
(
    event_id               UUID,
    ts                     DateTime64(3, 'UTC'),
    schema_version         UInt8,
    version                UInt64,
    parent_version         Nullable(UInt64),
    feature_schema_version UInt64,
    weights_format         LowCardinality(String),
    weights_bytes          UInt64,
    weights_sha256         String,
    trained_samples        UInt64,
    metrics                Map(LowCardinality(String), Float64),
    kafka_partition        UInt32,
    kafka_offset           UInt64,
    inserted_at            DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (ts, event_id)
TTL toDateTime(ts) + toIntervalDay({model_retention_days:UInt32})
SETTINGS ttl_only_drop_parts = 1;
