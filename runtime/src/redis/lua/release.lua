-- RELEASE: gives entries a node claimed but did not start back to the
-- queue, for any node to take: each one still pending under the node's
-- name is added again (same fields, same redeliveries left), acknowledged
-- and deleted. (A node claims ahead only what it expects to be quick; a
-- call of a task it has not seen be quick goes back rather than wait
-- behind its busy processes while another node may be idle. A node that
-- learns it was declared dead gives back what it claimed under its old
-- name and did not start: an entry the reaper has not settled yet is still
-- pending under that name, and is queued again rather than answered
-- NodeLost; one it settled is not there, and is left alone.)
--
-- KEYS: tasks, members. ARGV: group, node, entry ids... Returns how many.
local tasks = KEYS[1]
local group, node = ARGV[1], ARGV[2]
local released = 0
for j = 3, #ARGV do
  local id = ARGV[j]
  if #redis.call('XPENDING', tasks, group, id, id, 1, node) == 1 then
    local e = redis.call('XRANGE', tasks, id, id)
    if #e == 1 then
      redis.call('XADD', tasks, '*', unpack(e[1][2]))
      released = released + 1
    end
    redis.call('XACK', tasks, group, id)
    redis.call('XDEL', tasks, id)
  end
end
return released
