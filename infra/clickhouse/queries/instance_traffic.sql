-- Request rate and routing share per instance per time bucket, from the router's decisions.
-- share is the instance's fraction of the bucket's decisions (over the filtered policy).
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param policy = ''  -- only this policy ('' = every policy)
SELECT
    t,
    instance_id,
    decisions,
    decisions / {bucket_s:UInt32} AS rate_per_s,
    decisions / sum(decisions) OVER (PARTITION BY t) AS share
FROM
(
    SELECT
        toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
        instance_id,
        count() AS decisions
    FROM route_decisions FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
      AND ({policy:String} = '' OR policy = {policy:String})
    GROUP BY t, instance_id
)
ORDER BY t, instance_id
