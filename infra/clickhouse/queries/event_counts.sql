-- Distinct events stored per table in a time range, with the first and last event time
-- (every table is listed; times are NULL when it has no event in the range).
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
SELECT table_name, events, first_ts, last_ts
FROM
(
    SELECT 'instance_states' AS table_name, count() AS events, minOrNull(ts) AS first_ts, maxOrNull(ts) AS last_ts
    FROM instance_states FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'route_decisions', count(), minOrNull(ts), maxOrNull(ts)
    FROM route_decisions FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'request_outcomes', count(), minOrNull(ts), maxOrNull(ts)
    FROM request_outcomes FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'model_updates', count(), minOrNull(ts), maxOrNull(ts)
    FROM model_updates FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'dead_letters', count(), minOrNull(ts), maxOrNull(ts)
    FROM dead_letters FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
)
ORDER BY table_name
