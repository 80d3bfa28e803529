-- Exploration and fallback rates per policy per time bucket, from the router's decisions.
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param policy = ''  -- only this policy ('' = every policy)
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    policy,
    count() AS decisions,
    countIf(explore) AS explored,
    countIf(fallback) AS fallbacks,
    countIf(explore) / count() AS explore_rate,
    countIf(fallback) / count() AS fallback_rate,
    avg(propensity) AS propensity_mean,
    min(propensity) AS propensity_min
FROM route_decisions FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND ({policy:String} = '' OR policy = {policy:String})
GROUP BY t, policy
ORDER BY t, policy
