-- Dropped events per time bucket: decisions with no outcome and outcomes with no decision
-- (matched by decision id within the range; requests still in flight at to_ts count as gaps).
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
SELECT
    toStartOfInterval(first_ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    countIf(has_decision) AS decisions,
    countIf(has_outcome) AS outcomes,
    countIf(has_decision AND NOT has_outcome) AS decisions_without_outcome,
    countIf(has_outcome AND NOT has_decision) AS outcomes_without_decision
FROM
(
    SELECT
        decision_id,
        min(ts) AS first_ts,
        max(source = 'decision') AS has_decision,
        max(source = 'outcome') AS has_outcome
    FROM
    (
        SELECT decision_id, ts, 'decision' AS source
        FROM route_decisions FINAL
        WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
        UNION ALL
        SELECT decision_id, ts, 'outcome' AS source
        FROM request_outcomes FINAL
        WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    )
    GROUP BY decision_id
)
GROUP BY t
ORDER BY t
