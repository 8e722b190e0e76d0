-- GROUP MADE: a member's registration makes the task stream and its
-- consumer group if they are missing, and marks the making (group.lua).
-- A task stream key of another type fails the registration: no group
-- could be made there.
-- KEYS: tasks, reaper clock. ARGV: group. (IDLE_MS and group.lua come
-- first.) Returns 1 if it made the group, else 0.
local tasks, clock, group = KEYS[1], KEYS[2], ARGV[1]
if ensure_group(tasks, group, clock) then return 1 end
local kind = redis.call('TYPE', tasks)
if kind['ok'] ~= 'stream' then
  return redis.error_reply('WRONGTYPE the task stream ' .. tasks .. ' holds a ' .. tostring(kind['ok']) .. ', not a stream')
end
return 0
