-- Events some consumer could not decode (topic lodestar.dead-letter), and events the history
-- sink decoded but could not store (reason starts with "not storable:").
-- source_partition / source_offset locate the bad message on source_topic; payload_head holds
-- its first bytes (binary String; queries return it hex-encoded).
-- Dedupe: ReplacingMergeTree on the sorting key, which ends with event_id; read with FINAL.
CREATE TABLE IF NOT EXISTS dead_letters
(
    event_id         UUID,
    ts               DateTime64(3, 'UTC'),
    schema_version   UInt8,
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    reason           String,
    field            Nullable(String),
    payload_bytes    UInt64,
    payload_head     String,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (source_topic, ts, event_id)
TTL toDateTime(ts) + toIntervalDay({retention_days:UInt32})
SETTINGS ttl_only_drop_parts = 1;
