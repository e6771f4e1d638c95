//! Section 9's failover with Redis Sentinel against real processes: a master, its replica and
//! three sentinels (`tests/util/sentinel.rs`), `a-chat` nodes that follow the master through
//! forced failovers (`SENTINEL FAILOVER`, and SIGKILL of the master).

mod util;

use std::time::Instant;

use util::sentinel::SentinelSetup;

#[test]
fn the_setup_fails_over_both_ways() {
    let mut setup = SentinelSetup::start();
    let first = setup.master_addr();
    let start = Instant::now();
    let (second, _) = setup.failover();
    assert_ne!(first, second);
    eprintln!("SENTINEL FAILOVER switched in {:?}", start.elapsed());
    let start = Instant::now();
    let (third, _) = setup.kill_master();
    assert_eq!(third, first);
    eprintln!("SIGKILL switched in {:?}", start.elapsed());
    setup.restart_killed();
}
