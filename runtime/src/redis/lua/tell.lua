-- TELL (prepended to the scripts that stop calls): adds a stop to the
-- control stream (`c <caller>`: all of a caller's calls; `x <caller> <seq>`:
-- one call), keeping the stops of the last ten minutes: a node that has not
-- read them by then was declared dead long before (its heartbeat lives
-- seconds), however many stops a burst brought. The stream expires ten
-- minutes after its last stop, when none of its stops is needed any more:
-- it does not stay in Redis for ever once nobody runs the build (only a
-- member's reaper trims it otherwise).
local function tell_nodes(ctl, field, value)
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 - 600000
  redis.call('XADD', ctl, 'MINID', '~', string.format('%d', oldest), '*', field, value)
  redis.call('PEXPIRE', ctl, 600000)
end
