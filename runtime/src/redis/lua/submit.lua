-- SUBMIT: adds calls to the task stream, at most once per (caller, seq) even
-- when a batch is sent again after a connection loss whose reply was lost:
-- seqs at or below the caller's high-water mark `hw:<caller>` are skipped.
--
-- KEYS: tasks, members. ARGV: caller, count, then per call
-- seq, task, fingerprint, kind, redeliveries, time limit, args.
-- Returns per call the id of its new entry, or "" for a call already there;
-- error PPFENCED if the caller is no
-- longer registered (declared dead or terminated).
local tasks, members = KEYS[1], KEYS[2]
local caller, n = ARGV[1], tonumber(ARGV[2])
if redis.call('HEXISTS', members, caller) == 0 then
  return redis.error_reply('PPFENCED caller ' .. caller .. ' is not registered')
end
local hwf = 'hw:' .. caller
local hw = tonumber(redis.call('HGET', members, hwf) or '0')
local last, ids = nil, {}
for j = 0, n - 1 do
  local b = 3 + j * 7
  if tonumber(ARGV[b]) > hw then
    ids[j + 1] = redis.call('XADD', tasks, '*', 'c', caller, 'i', ARGV[b], 't', ARGV[b+1],
      'f', ARGV[b+2], 'k', ARGV[b+3], 'r', ARGV[b+4], 'o', ARGV[b+5], 'a', ARGV[b+6])
    last = ARGV[b]
  else
    ids[j + 1] = ''
  end
end
if last then redis.call('HSET', members, hwf, last) end
return ids
