-- ORPHANS: which of the given callers are no longer registered (they
-- terminated, or the cluster forgot them), so a node that claimed their
-- calls does not run them: the reaper deletes a forgotten caller's queued
-- entries only after it has forgotten it, and a node may claim one in
-- between. (A caller whose heartbeat expired is left to the reaper: a node
-- cannot tell a caller that died from a Redis that stood still for
-- everyone, and only the reaper waits for every member to beat again.)
--
-- KEYS: members. ARGV: callers... Returns the orphans.
local members = KEYS[1]
local out = {}
for _, c in ipairs(ARGV) do
  if redis.call('HGET', members, c) ~= 'caller' then
    out[#out + 1] = c
  end
end
return out
