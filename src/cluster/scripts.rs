//! The Lua scripts the nodes run in Redis (with `EVAL`: Redis caches them by their text), and
//! the names of the keys and channels they use.
//!
//! - `a-chat:node:ID`: a node's liveness key, `SET` with a TTL of `--cluster-ttl` and renewed a
//!   third of it apart. While it exists, the node holds its names.
//! - `a-chat:name:NAME`: the ID of the node that holds NAME. A claim whose node's key is gone is
//!   free: a dead node's names are free once its key expires, with no per-name refresh.
//! - `a-chat:to:ID`: the channel a node subscribes to; other nodes publish its peers' messages
//!   there, batched, one record per line.
//! - `a-chat:recovering`: set for a TTL by a node that finds Redis without its key while it
//!   still has peers (Redis lost its data): meanwhile only reclaims are granted, so that every
//!   surviving node can claim its peers' names again before anyone else takes them.

/// The prefix of a node's liveness key.
pub(crate) const NODE_KEY: &str = "a-chat:node:";

/// The prefix of a name's claim.
pub(crate) const NAME_KEY: &str = "a-chat:name:";

/// The prefix of a node's channel.
pub(crate) const NODE_CHANNEL: &str = "a-chat:to:";

/// Renews the node's hold. KEYS[1]: its key; ARGV[1]: the TTL in ms; ARGV[2]: `1` if it has
/// peers. Returns 1 if the key was there, 0 if not (then, with peers, Redis lost its data or
/// the node was gone too long: a recovery window opens).
pub(crate) const HOLD: &str = "-- a-chat hold
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
if existed == 0 and ARGV[2] == '1' then
  redis.call('SET', 'a-chat:recovering', '1', 'PX', ARGV[1], 'NX')
end
return existed
";

/// Claims names. KEYS: the names' keys; ARGV[1]: the node's ID; ARGV[2]: `new` for logins,
/// `again` for the names of peers already logged in (after a reconnect). Returns per name: 1
/// held by this node now, 0 held by another live node, 2 refused because the cluster recovers.
pub(crate) const CLAIM: &str = "-- a-chat claim
local recovering = ARGV[2] == 'new' and redis.call('EXISTS', 'a-chat:recovering') == 1
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    out[i] = 1
  elseif holder and redis.call('EXISTS', 'a-chat:node:' .. holder) == 1 then
    out[i] = 0
  elseif recovering then
    out[i] = 2
  else
    redis.call('SET', key, ARGV[1])
    out[i] = 1
  end
end
return out
";

/// Releases names. KEYS: the names' keys; ARGV[1]: the node's ID. A name is deleted only if
/// this node holds it. Returns how many keys it was given.
pub(crate) const RELEASE: &str = "-- a-chat release
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
  end
end
return #KEYS
";

/// Routes records. KEYS: the destinations' name keys; ARGV[i]: the record for KEYS[i]. The
/// records for each live holder are published to its channel in one message, in order.
/// Returns per record: 1 handed to the holder's node, 0 nobody holds the name (a dead node's
/// leftover claim is deleted), 2 the holder is alive but not subscribed (unreachable now).
pub(crate) const ROUTE: &str = "-- a-chat route
local out, batches, order, alive = {}, {}, {}, {}
for i, key in ipairs(KEYS) do
  out[i] = 0
  local holder = redis.call('GET', key)
  if holder then
    local live = alive[holder]
    if live == nil then
      live = redis.call('EXISTS', 'a-chat:node:' .. holder) == 1
      alive[holder] = live
    end
    if live then
      local batch = batches[holder]
      if not batch then
        batch = {}
        batches[holder] = batch
        order[#order + 1] = holder
      end
      batch[#batch + 1] = i
    else
      redis.call('DEL', key)
    end
  end
end
for _, holder in ipairs(order) do
  local batch, parts = batches[holder], {}
  for j, i in ipairs(batch) do
    parts[j] = ARGV[i]
  end
  local status = 2
  if redis.call('PUBLISH', 'a-chat:to:' .. holder, table.concat(parts)) > 0 then
    status = 1
  end
  for _, i in ipairs(batch) do
    out[i] = status
  end
end
return out
";
