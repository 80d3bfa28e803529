-- One row per routing decision (topic lodestar.route-decisions).
-- Candidates are parallel arrays in the policy's order: candidate_ids[i] had candidate_scores[i]
-- and candidate_features[i]. chosen_* repeat the chosen candidate's entry (chosen_index is
-- 1-based, 0 if instance_id was not among the candidates) so panels need no ARRAY JOIN.
-- Dedupe: ReplacingMergeTree on the sorting key, which ends with event_id; read with FINAL.
CREATE TABLE IF NOT EXISTS route_decisions
(
    event_id              UUID,
    ts                    DateTime64(3, 'UTC'),
    schema_version        UInt8,
    decision_id           String,
    model                 LowCardinality(String),
    instance_id           LowCardinality(String),
    policy                LowCardinality(String),
    model_version         Nullable(UInt64),
    feature_schema_version Nullable(UInt64),
    prompt_tokens         UInt64,
    cached_prefix_tokens  UInt64,
    prefix_segments       Array(UInt64),
    explore               Bool,
    fallback              Bool,
    propensity            Float64,
    num_candidates        UInt32,
    candidate_ids         Array(LowCardinality(String)),
    candidate_scores      Array(Float64),
    candidate_features    Array(Map(LowCardinality(String), Float64)),
    chosen_index          UInt32,
    chosen_score          Nullable(Float64),
    chosen_features       Map(LowCardinality(String), Float64),
    kafka_partition       UInt32,
    kafka_offset          UInt64,
    inserted_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_decision_id decision_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (policy, ts, event_id)
TTL toDateTime(ts) + toIntervalDay({retention_days:UInt32})
SETTINGS ttl_only_drop_parts = 1;
