-- Dead letters per source topic per time bucket (undecodable events, and events the history
-- sink could not store).
-- @param from_ts = now-1d  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param bucket_s = 300  -- bucket width in seconds
SELECT
    toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    source_topic,
    count() AS letters,
    sum(payload_bytes) AS payload_bytes
FROM dead_letters FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
GROUP BY t, source_topic
ORDER BY t, source_topic
