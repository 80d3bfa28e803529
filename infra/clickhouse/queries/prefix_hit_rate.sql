-- Engine-measured prefix-cache hit rate per instance per time bucket (mean of the scrapes'
-- prefix_hit_rate; scrapes without prefix queries are skipped).
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param instance_id = ''  -- only this instance ('' = every instance)
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    instance_id,
    count() AS scrapes,
    avg(prefix_hit_rate) AS hit_rate_avg
FROM instance_states FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND prefix_hit_rate IS NOT NULL
  AND ({instance_id:String} = '' OR instance_id = {instance_id:String})
GROUP BY t, instance_id
ORDER BY t, instance_id
