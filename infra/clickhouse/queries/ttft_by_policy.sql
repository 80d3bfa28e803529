-- TTFT p50/p99 per routing policy per time bucket (requests that produced a first token).
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param policy = ''  -- only this policy ('' = every policy)
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    ifNull(policy, '') AS policy,
    count() AS requests,
    quantiles(0.5, 0.99)(ttft_s)[1] AS ttft_p50_s,
    quantiles(0.5, 0.99)(ttft_s)[2] AS ttft_p99_s,
    avg(ttft_s) AS ttft_mean_s
FROM request_outcomes FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND ttft_s IS NOT NULL
  AND ({policy:String} = '' OR policy = {policy:String})
GROUP BY t, policy
ORDER BY t, policy
