-- HEARTBEAT: renews a member's heartbeat, unless it was declared dead
-- (removed from the members hash): then it must take a new identity.
--
-- KEYS: members, alive key. ARGV: name, ttl ms. Returns 1, or 0 (fenced).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
