-- Router-estimated prefix reuse per policy per time bucket: cached prefix tokens of the chosen
-- instance over prompt tokens, from the decisions.
-- @param from_ts = now-1h  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 60  -- bucket width in seconds
-- @param policy = ''  -- only this policy ('' = every policy)
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    policy,
    count() AS decisions,
    sum(cached_prefix_tokens) AS cached_tokens_sum,
    sum(prompt_tokens) AS prompt_tokens_sum,
    if(sum(prompt_tokens) = 0, NULL, sum(cached_prefix_tokens) / sum(prompt_tokens)) AS cached_token_frac
FROM route_decisions FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND ({policy:String} = '' OR policy = {policy:String})
GROUP BY t, policy
ORDER BY t, policy
