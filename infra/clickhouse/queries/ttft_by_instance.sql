-- TTFT p50/p99 per instance per time bucket (requests that produced a first token).
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param policy = ''  -- only requests routed by this policy ('' = every policy)
-- @param instance_id = ''  -- only this instance ('' = every instance)
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    ifNull(instance_id, '') AS instance_id,
    count() AS requests,
    quantiles(0.5, 0.99)(ttft_s)[1] AS ttft_p50_s,
    quantiles(0.5, 0.99)(ttft_s)[2] AS ttft_p99_s,
    avg(ttft_s) AS ttft_mean_s
FROM request_outcomes FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND ttft_s IS NOT NULL
  AND instance_id != ''
  AND ({policy:String} = '' OR policy = {policy:String})
  AND ({instance_id:String} = '' OR instance_id = {instance_id:String})
GROUP BY t, instance_id
ORDER BY t, instance_id
