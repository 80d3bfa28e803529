-- Instance load and KV-cache usage per time bucket, from the collector's scrapes.
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param instance_id = ''  -- only this instance ('' = every instance)
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    instance_id,
    count() AS scrapes,
    avg(num_running) AS running_avg,
    max(num_running) AS running_max,
    avg(num_waiting) AS waiting_avg,
    max(num_waiting) AS waiting_max,
    avg(kv_usage_frac) AS kv_usage_avg,
    max(kv_usage_frac) AS kv_usage_max,
    avg(toUInt8(healthy)) AS healthy_frac
FROM instance_states FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND ({instance_id:String} = '' OR instance_id = {instance_id:String})
GROUP BY t, instance_id
ORDER BY t, instance_id
