//! Logs on standard error through `env_logger`: one line per record, with a UTC timestamp and
//! the level, filtered by `RUST_LOG` as every Rust program reads it, shifted by `-v`/`-q`.

use std::io::Write;

use log::LevelFilter;

/// Installs the logger. `RUST_LOG` takes `env_logger`'s directives (`debug`,
/// `a_chat::cluster=trace`, `warn,a_chat::net=debug`); its bare level, `info` when it gives
/// none, is raised one step per `-v` and lowered one per `-q`, and applies to every module that
/// no directive names.
pub fn init(verbose: u8, quiet: u8) {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let filters = shifted_filters(&spec, verbose, quiet);
    let _ = env_logger::Builder::new()
        .parse_filters(&filters)
        .format(|out, record| {
            writeln!(
                out,
                "{} {:<5} {}",
                out.timestamp_millis(),
                record.level(),
                record.args()
            )
        })
        .try_init();
}

/// `spec`'s directives, with its bare level (the default for every module it does not name)
/// moved `verbose` steps up and `quiet` steps down, as `env_logger` parses them.
fn shifted_filters(spec: &str, verbose: u8, quiet: u8) -> String {
    let mut base = LevelFilter::Info;
    let mut directives = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<LevelFilter>() {
            Ok(level) => base = level,
            Err(_) => directives.push(part),
        }
    }
    let steps = base as i32 + i32::from(verbose) - i32::from(quiet);
    let level = LevelFilter::iter()
        .nth(usize::try_from(steps.clamp(0, LevelFilter::max() as i32)).unwrap_or(0))
        .unwrap_or(LevelFilter::Info);
    std::iter::once(level.as_str().to_ascii_lowercase())
        .chain(directives.into_iter().map(str::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_is_shifted_and_directives_stand() {
        assert_eq!(shifted_filters("", 0, 0), "info");
        assert_eq!(shifted_filters("", 1, 0), "debug");
        assert_eq!(shifted_filters("", 0, 3), "off");
        assert_eq!(shifted_filters("warn", 2, 0), "debug");
        assert_eq!(shifted_filters("trace", 5, 0), "trace");
        assert_eq!(
            shifted_filters("a_chat::cluster=trace", 0, 1),
            "warn,a_chat::cluster=trace"
        );
        assert_eq!(
            shifted_filters(" error , a_chat=debug ,", 1, 0),
            "warn,a_chat=debug"
        );
    }
}
