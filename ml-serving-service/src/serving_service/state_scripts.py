"""The Lua scripts the shared ledger (`shared_state.RedisLedger`) runs in Redis, atomically.

Keys, under `serving:<MODEL_NAME>:` (db and password come from STATE_URL):
`p:<request key>` hash (`v` version, `l` labels as JSON, `a<i>` answered instance i), with
`order` (list of "<key> <instances>") and `issued` (instances in the window) bounding the
ids to the last FEEDBACK_MEMORY predictions of all replicas, and FEEDBACK_TTL_SECONDS
bounding each key's age; `classes` (version -> classes JSON); `outcomes:<version>` (the last
MONITOR_WINDOW outcomes, "1"/"0") and `accuracy` (`f:<version>`, `c:<version>` counters).

`ISSUE_SCRIPT` writes a batch of requests' ids (and their versions' classes) and evicts the
oldest beyond the window; `FEEDBACK_SCRIPT` checks an id, claims its instance and updates
the version's outcome window. Both derive the keys of a version from the prefix, so the
store is one Redis (or one primary), not a cluster.
"""

ISSUE_SCRIPT = """
local order, total, classes = KEYS[1], KEYS[2], KEYS[3]
local prefix, limit, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  redis.call('HSET', classes, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local added = 0
while i <= #ARGV do
  local key = prefix .. ARGV[i]
  redis.call('HSET', key, 'v', ARGV[i + 2], 'l', ARGV[i + 3])
  redis.call('EXPIRE', key, ttl)
  redis.call('RPUSH', order, ARGV[i] .. ' ' .. ARGV[i + 1])
  added = added + tonumber(ARGV[i + 1])
  i = i + 4
end
local count = redis.call('INCRBY', total, added)
while count > limit and redis.call('LLEN', order) > 1 do
  local oldest = redis.call('LPOP', order)
  local space = string.find(oldest, ' ', 1, true)
  redis.call('DEL', prefix .. string.sub(oldest, 1, space - 1))
  count = redis.call('DECRBY', total, tonumber(string.sub(oldest, space + 1)))
end
for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ttl) end
return count
"""

FEEDBACK_SCRIPT = """
local version = redis.call('HGET', KEYS[1], 'v')
if not version then return {'unknown'} end
local labels = cjson.decode(redis.call('HGET', KEYS[1], 'l'))
local index = tonumber(ARGV[1])
if index >= #labels then return {'unknown'} end
if redis.call('HEXISTS', KEYS[1], 'a' .. index) == 1 then return {'again', version} end
local classes = redis.call('HGET', KEYS[2], version) or '[]'
local known = false
for _, c in ipairs(cjson.decode(classes)) do
  if c == ARGV[2] then known = true end
end
if not known then return {'invalid', version, classes} end
redis.call('HSET', KEYS[1], 'a' .. index, ARGV[2])
local predicted = labels[index + 1]
local correct = 0
if predicted == ARGV[2] then correct = 1 end
local outcomes = ARGV[4] .. version
redis.call('RPUSH', outcomes, correct)
local fed = redis.call('HINCRBY', KEYS[3], 'f:' .. version, 1)
local right = redis.call('HINCRBY', KEYS[3], 'c:' .. version, correct)
while fed > tonumber(ARGV[3]) do
  local old = tonumber(redis.call('LPOP', outcomes))
  fed = redis.call('HINCRBY', KEYS[3], 'f:' .. version, -1)
  right = redis.call('HINCRBY', KEYS[3], 'c:' .. version, -old)
end
redis.call('EXPIRE', outcomes, ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {'ok', version, predicted, correct, fed, right}
"""
