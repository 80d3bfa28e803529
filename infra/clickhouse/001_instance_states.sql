-- One row per collector scrape of one inference instance (topic lodestar.instance-state).
-- Dedupe: ReplacingMergeTree on the sorting key, which ends with event_id; read with FINAL.
CREATE TABLE IF NOT EXISTS instance_states
(
    event_id                   UUID,
    ts                         DateTime64(3, 'UTC'),
    schema_version             UInt8,
    instance_id                LowCardinality(String),
    url                        LowCardinality(String),
    model                      LowCardinality(String),
    hardware                   LowCardinality(Nullable(String)),
    num_running                UInt64,
    num_waiting                UInt64,
    kv_usage_frac              Float64,
    prefix_hit_rate            Nullable(Float64),
    prefix_cache_hits_total    Nullable(UInt64),
    prefix_cache_queries_total Nullable(UInt64),
    block_size                 Nullable(UInt64),
    num_gpu_blocks             Nullable(UInt64),
    healthy                    Bool,
    consecutive_failures       UInt64,
    scrape_latency_s           Float64,
    kafka_partition            UInt32,
    kafka_offset               UInt64,
    inserted_at                DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (instance_id, ts, event_id)
TTL toDateTime(ts) + toIntervalDay({retention_days:UInt32})
SETTINGS ttl_only_drop_parts = 1;
