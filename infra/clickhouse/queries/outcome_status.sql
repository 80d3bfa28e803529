-- Request results per policy per time bucket, as the gateway saw them: errors, cancellations,
-- gateway fallbacks (another instance after a failure) and retries.
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param policy = ''  -- only this policy ('' = every policy)
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    ifNull(policy, '') AS policy,
    count() AS requests,
    countIf(status = 'ok') AS ok,
    countIf(status = 'error') AS errors,
    countIf(status = 'cancelled') AS cancelled,
    countIf(status = 'error') / count() AS error_rate,
    countIf(fallback) AS gateway_fallbacks,
    sum(attempts - 1) AS retries
FROM request_outcomes FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND ({policy:String} = '' OR policy = {policy:String})
GROUP BY t, policy
ORDER BY t, policy
