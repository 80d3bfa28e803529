-- Every stored event id per table in a time range (for audits: each id appears once).
-- Page with limit/offset; rows are ordered by table, time and id.
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param limit = 10000  -- at most this many rows
-- @param offset = 0  -- rows to skip (paging)
SELECT table_name, event_id, ts
FROM
(
    SELECT 'instance_states' AS table_name, event_id, ts
    FROM instance_states FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'route_decisions', event_id, ts
    FROM route_decisions FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'request_outcomes', event_id, ts
    FROM request_outcomes FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'model_updates', event_id, ts
    FROM model_updates FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'dead_letters', event_id, ts
    FROM dead_letters FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
)
ORDER BY table_name, ts, event_id
LIMIT {limit:UInt64} OFFSET {offset:UInt64}
