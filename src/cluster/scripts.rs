//! The Lua scripts the nodes run in Redis (loaded once per connection with `SCRIPT LOAD`, then
//! run by their SHA1 with `EVALSHA`), and the names of the keys and channels they use.
//!
//! - `a-chat:node:ID`: a node's liveness key, `SET` with a TTL of `--cluster-ttl` and renewed a
//!   third of it apart. While it exists, the node holds its names.
//! - `a-chat:name:NAME`: `NODE/CONN`, the connection that holds NAME: the ID of its node and
//!   its number there (`records.rs`). A claim whose node's key is gone is free: a dead node's
//!   names are free once its key expires, with no per-name refresh. (A value without `/`, a
//!   claim of an a-chat of an earlier version, is read as NODE alone: free once that node's
//!   key is gone, and to be routed to no connection meanwhile.)
//! - `a-chat:to:ID`: the channel a node subscribes to; other nodes publish its peers' messages
//!   there, batched, one record per line.
//! - `a-chat:cluster`: set (without a TTL) by the first node that reaches a Redis. A node that
//!   was in the cluster before and finds it missing knows Redis lost its data.
//! - `a-chat:recovering`: set for a TTL when Redis lost its data while nodes had peers (a node
//!   finds its own key, or `a-chat:cluster`, missing): meanwhile only reclaims are granted, so
//!   that every surviving node can claim its peers' names again before anyone else takes
//!   them. (A node that has not renewed its hold for the TTL has closed its peers by then.)

/// The prefix of a node's liveness key.
pub(crate) const NODE_KEY: &str = "a-chat:node:";

/// The prefix of a name's claim.
pub(crate) const NAME_KEY: &str = "a-chat:name:";

/// The prefix of a node's channel.
pub(crate) const NODE_CHANNEL: &str = "a-chat:to:";

/// Renews the node's hold. KEYS[1]: its key; ARGV[1]: the TTL in ms; ARGV[2]: `1` if it has
/// peers; ARGV[3]: `1` if it was in the cluster before (an earlier connection's hold was
/// granted). Returns `{EXISTED, RECOVERING}`: EXISTED 1 if the key was there, 0 if not;
/// RECOVERING the milliseconds the recovery window has left (0 or less when none is open). A
/// recovery window opens when the key was missing while the node has peers, or
/// `a-chat:cluster` was missing and the node was in the cluster before: Redis lost its data.
pub(crate) const HOLD: &str = "-- a-chat hold
local existed = redis.call('EXISTS', KEYS[1])
local new_redis = redis.call('SET', 'a-chat:cluster', '1', 'NX')
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
if (existed == 0 and ARGV[2] == '1') or (new_redis and ARGV[3] == '1') then
  redis.call('SET', 'a-chat:recovering', '1', 'PX', ARGV[1], 'NX')
end
return {existed, redis.call('PTTL', 'a-chat:recovering')}
";

/// Claims names. KEYS: the names' keys; ARGV[1]: the node's ID; ARGV[2]: `new` for logins,
/// `again` for the names of peers already logged in (after a reconnect); ARGV[3]: the TTL in
/// ms; ARGV[3 + i]: the CONN of the connection that claims KEYS[i]. Returns per name: 1 held
/// by that connection now (a name this node held goes to it too), 0 held by another live
/// node, 2 refused because the cluster recovers. A Redis without `a-chat:cluster` (flushed
/// under the nodes' connections) opens the recovery window itself.
pub(crate) const CLAIM: &str = "-- a-chat claim
if redis.call('SET', 'a-chat:cluster', '1', 'NX') then
  redis.call('SET', 'a-chat:recovering', '1', 'PX', ARGV[3], 'NX')
end
local recovering = ARGV[2] == 'new' and redis.call('EXISTS', 'a-chat:recovering') == 1
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  local node = holder and string.match(holder, '^[^/]*')
  if node == ARGV[1] then
    redis.call('SET', key, ARGV[1] .. '/' .. ARGV[3 + i])
    out[i] = 1
  elseif holder and redis.call('EXISTS', 'a-chat:node:' .. node) == 1 then
    out[i] = 0
  elseif recovering then
    out[i] = 2
  else
    redis.call('SET', key, ARGV[1] .. '/' .. ARGV[3 + i])
    out[i] = 1
  end
end
return out
";

/// Releases names. KEYS: the names' keys; ARGV[1]: the node's ID; ARGV[1 + i]: the CONN of
/// the connection that gives KEYS[i] back. A name is deleted only if that very connection
/// holds it. Returns how many keys it was given.
pub(crate) const RELEASE: &str = "-- a-chat release
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] .. '/' .. ARGV[1 + i] then
    redis.call('DEL', key)
  end
end
return #KEYS
";

/// Routes records. KEYS: the destinations' name keys, in the order the records name them;
/// ARGV[1]: the records, back to back; ARGV[2]: per record, where it ends and how many
/// destinations it names (`END,COUNT,END,COUNT...`). The holders are read with one MGET, each
/// `NODE/CONN`. What goes to a node's channel begins with the route line (`R,CONN:CONN...`,
/// `records.rs`): the connection each destination was routed to, in order. When one live node
/// holds every destination (two nodes, most often), the records go to its channel as they
/// came, after the route line, in one PUBLISH, and the reply is one status for all. Otherwise
/// each record is cut per holder's node (its destinations on that node, same sender and text),
/// published per node in order, and the reply has a status per destination. A status is 1
/// when the record was handed to the holder's node, 0 when nobody holds the name (a dead
/// node's leftover claim is deleted), 2 when the holder is alive but not subscribed
/// (unreachable now).
pub(crate) const ROUTE: &str = "-- a-chat route
local holders = redis.call('MGET', unpack(KEYS))
local nodes, conns = {}, {}
for i = 1, #holders do
  local holder = holders[i]
  if holder then
    local slash = string.find(holder, '/', 1, true)
    if slash then
      nodes[i] = string.sub(holder, 1, slash - 1)
      conns[i] = string.sub(holder, slash + 1)
    else
      nodes[i] = holder
      conns[i] = ''
    end
  end
end
local alive = {}
local function live(node)
  local known = alive[node]
  if known == nil then
    known = redis.call('EXISTS', 'a-chat:node:' .. node) == 1
    alive[node] = known
  end
  return known
end
local function publish(node, routed, payload)
  local line = 'R,' .. table.concat(routed, ':') .. '\\n'
  if redis.call('PUBLISH', 'a-chat:to:' .. node, line .. payload) > 0 then
    return 1
  end
  return 2
end
local first = nodes[1]
local same = first and true or false
for i = 2, #holders do
  if nodes[i] ~= first then
    same = false
    break
  end
end
if same and live(first) then
  return {publish(first, conns, ARGV[1])}
end
local nums = {}
for n in string.gmatch(ARGV[2], '%d+') do
  nums[#nums + 1] = tonumber(n)
end
local prefix = string.len('a-chat:name:')
local out, batches, order = {}, {}, {}
local start, k = 1, 0
for r = 1, #nums, 2 do
  local record = string.sub(ARGV[1], start, nums[r])
  start = nums[r] + 1
  local _, head_end = string.find(record, '^[^,]*,[^,]*,[^,]*,[^,]*,')
  local tail_start = string.find(record, ',', head_end + 1, true)
  local names, named = {}, {}
  for _ = 1, nums[r + 1] do
    k = k + 1
    local node = nodes[k]
    out[k] = 0
    if node then
      if live(node) then
        if not names[node] then
          names[node] = {}
          named[#named + 1] = node
        end
        local list = names[node]
        list[#list + 1] = k
      else
        redis.call('DEL', KEYS[k])
      end
    end
  end
  for _, node in ipairs(named) do
    local batch = batches[node]
    if not batch then
      batch = {idx = {}, parts = {}, conns = {}}
      batches[node] = batch
      order[#order + 1] = node
    end
    local dests = {}
    for i, key in ipairs(names[node]) do
      dests[i] = string.sub(KEYS[key], prefix + 1)
      batch.idx[#batch.idx + 1] = key
      batch.conns[#batch.conns + 1] = conns[key]
    end
    batch.parts[#batch.parts + 1] = string.sub(record, 1, head_end)
      .. table.concat(dests, ':') .. string.sub(record, tail_start)
  end
end
for _, node in ipairs(order) do
  local batch = batches[node]
  local status = publish(node, batch.conns, table.concat(batch.parts))
  for _, i in ipairs(batch.idx) do
    out[i] = status
  end
end
return out
";

/// The scripts, in the order a new connection loads them (and of their SHA1s).
pub(crate) const ALL: [&str; 4] = [HOLD, CLAIM, RELEASE, ROUTE];

/// Where each script is in [`ALL`].
pub(crate) const HOLD_INDEX: usize = 0;
pub(crate) const CLAIM_INDEX: usize = 1;
pub(crate) const RELEASE_INDEX: usize = 2;
pub(crate) const ROUTE_INDEX: usize = 3;

/// The SHA1 of a script, as `EVALSHA` names it (Redis computes the same when it loads it).
pub(crate) fn sha(script: &str) -> String {
    sha1_smol::Sha1::from(script).hexdigest()
}
