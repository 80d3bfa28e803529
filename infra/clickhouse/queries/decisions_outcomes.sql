-- Every decision in a time range with its candidates and its outcome, joined by decision id:
-- the input of `lodestar replay` and off-policy evaluation. Outcome columns are NULL (and
-- has_outcome false) when no outcome arrived within grace_s after the range; when a decision
-- has several outcomes the newest is used. Rows are ordered by decision time; page with
-- limit/offset.
-- @param from_ts = now-1h  -- start of the range (inclusive), on decision time
-- @param to_ts = now  -- end of the range (exclusive), on decision time
-- @param policy = ''  -- only this policy ('' = every policy)
-- @param grace_s = 600  -- how long after to_ts outcomes are still matched
-- @param limit = 10000  -- at most this many rows (page through larger ranges)
-- @param offset = 0  -- rows to skip (paging)
SELECT
    d.decision_id AS decision_id,
    d.ts AS ts,
    d.event_id AS decision_event_id,
    d.policy AS policy,
    d.model_version AS model_version,
    d.feature_schema_version AS feature_schema_version,
    d.model AS model,
    d.instance_id AS instance_id,
    d.explore AS explore,
    d.fallback AS fallback,
    d.propensity AS propensity,
    d.prompt_tokens AS prompt_tokens,
    d.cached_prefix_tokens AS cached_prefix_tokens,
    d.prefix_segments AS prefix_segments,
    d.candidate_ids AS candidate_ids,
    d.candidate_scores AS candidate_scores,
    d.candidate_features AS candidate_features,
    d.chosen_index AS chosen_index,
    o.outcome_ts IS NOT NULL AS has_outcome,
    o.outcome_ts AS outcome_ts,
    o.status AS status,
    o.http_status AS http_status,
    o.error_class AS error_class,
    o.ttft_s AS ttft_s,
    o.tpot_s AS tpot_s,
    o.e2e_s AS e2e_s,
    o.completion_tokens AS completion_tokens,
    o.attempts AS attempts,
    o.gateway_fallback AS gateway_fallback,
    o.outcome_instance_id AS outcome_instance_id
FROM
(
    SELECT *
    FROM route_decisions FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
      AND ({policy:String} = '' OR policy = {policy:String})
) AS d
LEFT JOIN
(
    SELECT
        decision_id,
        toNullable(ts) AS outcome_ts,
        toNullable(status) AS status,
        toNullable(http_status) AS http_status,
        error_class,
        ttft_s,
        tpot_s,
        toNullable(e2e_s) AS e2e_s,
        toNullable(completion_tokens) AS completion_tokens,
        toNullable(attempts) AS attempts,
        toNullable(fallback) AS gateway_fallback,
        instance_id AS outcome_instance_id
    FROM request_outcomes FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')}
      AND ts < {to_ts:DateTime64(3, 'UTC')} + toIntervalSecond({grace_s:UInt32})
    ORDER BY ts DESC, event_id
    LIMIT 1 BY decision_id
) AS o ON o.decision_id = d.decision_id
ORDER BY ts, decision_id
LIMIT {limit:UInt64} OFFSET {offset:UInt64}
