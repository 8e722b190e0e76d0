-- FORGET (prepended to the scripts that forget callers): unregisters a
-- caller, deletes its result stream and tells the nodes to stop its calls.
local function forget_caller(members, ctl, prefix, name)
  redis.call('HDEL', members, name, 'hw:' .. name, 't:' .. name)
  redis.call('DEL', prefix .. 'res:' .. name)
  redis.call('XADD', ctl, 'MAXLEN', '~', '10000', '*', 'c', name)
end
