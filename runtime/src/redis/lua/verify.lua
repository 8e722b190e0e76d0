-- VERIFY: which of the given seqs of a caller are nowhere: not in the task
-- stream (queued, running or queued again) and not in the unread part of
-- its result stream. Scans the whole task stream: used only after a
-- reconnection.
--
-- KEYS: tasks, results. ARGV: caller, last result id read, seqs...
local caller = ARGV[1]
local found = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. ARGV[2], '+')) do
  local f = e[2]
  for k = 1, #f, 2 do if f[k] == 'i' then found[f[k + 1]] = true end end
end
local cursor = '-'
while true do
  local es = redis.call('XRANGE', KEYS[1], cursor, '+', 'COUNT', 1000)
  for _, e in ipairs(es) do
    local f, c, i = e[2], nil, nil
    for k = 1, #f, 2 do
      if f[k] == 'c' then c = f[k + 1] elseif f[k] == 'i' then i = f[k + 1] end
    end
    if c == caller and i then found[i] = true end
  end
  if #es < 1000 then break end
  cursor = '(' .. es[#es][1]
end
local missing = {}
for j = 3, #ARGV do
  if not found[ARGV[j]] then missing[#missing + 1] = ARGV[j] end
end
return missing
