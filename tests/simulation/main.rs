//! Deterministic simulations of the IO-free core, checked against models of the contract:
//! one node with its connections (`single_node.rs`), and several nodes sharing one chat
//! through an in-memory model of Redis, with its faults (`cluster.rs`, `fake_redis.rs`), and
//! cases of cluster routing played step by step (`cluster_cases.rs`).

mod cluster;
mod cluster_cases;
mod fake_redis;
mod single_node;
