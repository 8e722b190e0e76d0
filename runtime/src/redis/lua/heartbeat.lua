-- HEARTBEAT: renews a member's heartbeat, unless it was declared dead
-- (removed from the members hash): then it must take a new identity. Also
-- touches the reaper's clock (clock.lua comes first).
--
-- KEYS: members, alive key, reaper clock. ARGV: name, ttl ms, still ms,
-- grace ms. Returns 1, or 0 (fenced).
touch_clock(KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]))
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
