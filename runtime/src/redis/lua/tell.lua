-- TELL (prepended to the scripts that stop calls): adds a stop to the
-- control stream (`c <caller>`: all of a caller's calls; `x <caller> <seq>`:
-- one call), keeping the stops of the last ten minutes: a node that has not
-- read them by then was declared dead long before (its heartbeat lives
-- seconds), however many stops a burst brought.
local function tell_nodes(ctl, field, value)
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 - 600000
  redis.call('XADD', ctl, 'MINID', '~', string.format('%d', oldest), '*', field, value)
end
