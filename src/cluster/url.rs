//! The cluster URL parsed into a [`ClusterConfig`] (contract section 9): the scheme, the
//! percent-encoded user and password, one host or a list of them, and the master's name of
//! the sentinel forms. (A list of hosts is not a standard URL, which is why no URL crate
//! parses it.) No error shows the password: each names the URL with it as `***`.

use std::net::ToSocketAddrs;

use super::config::{ClusterConfig, RedisAddr, RedisPassword, RedisTarget};

/// The port of a Redis server left out of the URL.
const REDIS_PORT: u16 = 6379;

/// The port of a sentinel left out of the URL.
const SENTINEL_PORT: u16 = 26379;

/// The URL's forms, for the error of an unknown scheme.
const FORMS: &str = "redis://[USER[:PASSWORD]@]HOST[:PORT], rediss://..., \
                     redis-sentinel://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/MASTER or \
                     rediss-sentinel://...";

/// Parses `url` (see [`ClusterConfig::from_url`]).
pub(super) fn parse(url: &str) -> Result<ClusterConfig, String> {
    let shown = redacted(url);
    let bad = |what: String| format!("{shown}: {what}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad(format!("a cluster URL is {FORMS}")))?;
    let (tls, sentinel) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, false),
        "rediss" => (true, false),
        "redis-sentinel" => (false, true),
        "rediss-sentinel" => (true, true),
        _ => return Err(bad(format!("a cluster URL is {FORMS}"))),
    };
    if tls && cfg!(not(feature = "tls")) {
        return Err(bad(
            "TLS to Redis needs a-chat built with its `tls` feature".into(),
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("options after `?` or `#` are not supported".into()));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut config = if sentinel {
        let master = path.trim_end_matches('/');
        if master.is_empty() || master.contains('/') {
            return Err(bad(
                "a sentinel URL ends with /MASTER, the name the sentinels know the master by"
                    .into(),
            ));
        }
        let sentinels = hosts
            .split(',')
            .map(|host| address(host, SENTINEL_PORT))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        ClusterConfig::for_target(RedisTarget::Sentinel {
            sentinels,
            master: master.to_string(),
        })
    } else {
        if !matches!(path, "" | "0" | "0/") {
            return Err(bad(
                "a database in the URL is not supported (cluster mode uses database 0)".into(),
            ));
        }
        if hosts.contains(',') {
            return Err(bad(
                "a list of hosts is for redis-sentinel:// (sentinels, then /MASTER)".into(),
            ));
        }
        ClusterConfig::for_target(RedisTarget::Server(
            address(hosts, REDIS_PORT).map_err(bad)?,
        ))
    };
    config.tls = tls;
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = percent_decode(user).ok_or_else(|| bad("the user is badly encoded".into()))?;
        config.user = (!user.is_empty()).then_some(user);
        if let Some(password) = password {
            let password = percent_decode(password)
                .ok_or_else(|| bad("the password is badly encoded".into()))?;
            config.password = (!password.is_empty()).then(|| RedisPassword::from(password));
        }
    }
    Ok(config)
}

/// `HOST[:PORT]` (an IPv6 host in brackets), resolved.
fn address(text: &str, default_port: u16) -> Result<RedisAddr, String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{text}: an IPv6 address ends with `]`"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(format!("{text}: a port comes after `]:`")),
        };
        (host, port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("a host is missing".into());
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| format!("{text}: the port is a number from 1 to 65535"))?,
    };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    Ok(RedisAddr {
        host: host.to_string(),
        addr,
    })
}

/// `url` with the password of its user information (between `:` and the last `@` before the
/// path) as `***`, for error messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL at all: it may be anything, a password pasted by mistake included.
        return "the cluster URL".into();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{}", &rest[userinfo.len() + 1..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `text` with its `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn server(config: &ClusterConfig) -> &RedisAddr {
        match &config.target {
            RedisTarget::Server(addr) => addr,
            other => panic!("not a server: {other:?}"),
        }
    }

    #[test]
    fn plain_urls() {
        let config = ClusterConfig::from_url("redis://127.0.0.1:7000").unwrap();
        assert_eq!(server(&config).addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(server(&config).host, "127.0.0.1");
        assert_eq!(config.ttl, Duration::from_secs(10));
        assert!(!config.tls && config.user.is_none() && config.password.is_none());
        let config = ClusterConfig::from_url("redis://127.0.0.1").unwrap();
        assert_eq!(server(&config).addr.port(), 6379);
        let config = ClusterConfig::from_url("redis://[::1]:7001/").unwrap();
        assert_eq!(server(&config).addr, "[::1]:7001".parse().unwrap());
        assert_eq!(server(&config).host, "::1");
        assert_eq!(config.to_string(), "redis://[::1]:7001");
        let config = ClusterConfig::from_url("redis://localhost:7002/0").unwrap();
        assert_eq!(server(&config).host, "localhost");
        assert_eq!(server(&config).addr.port(), 7002);
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let config = ClusterConfig::from_url("redis://node:s%40cr%3At@127.0.0.1:7000").unwrap();
        assert_eq!(config.user.as_deref(), Some("node"));
        assert_eq!(config.password.as_ref().unwrap().expose(), "s@cr:t");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s@cr:t") && debug.contains("***"),
            "{debug}"
        );
        assert_eq!(config.to_string(), "redis://node:***@127.0.0.1:7000");
        // The password alone is the default user's.
        let config = ClusterConfig::from_url("redis://:hunter2@127.0.0.1:7000").unwrap();
        assert_eq!(config.user, None);
        assert_eq!(config.user_or_default(), "default");
        assert_eq!(config.password.as_ref().unwrap().expose(), "hunter2");
        // A user alone: the password is to come from the environment.
        let config = ClusterConfig::from_url("redis://node@127.0.0.1:7000").unwrap();
        assert_eq!(config.user.as_deref(), Some("node"));
        assert!(config.password.is_none());
        assert!(
            config
                .check_credentials()
                .unwrap_err()
                .contains("A_CHAT_REDIS_PASSWORD")
        );
    }

    #[test]
    fn errors_name_the_url_without_its_password() {
        for url in [
            "redis://u:hunter2@127.0.0.1:0",
            "redis://u:hunter2@127.0.0.1:7000/5",
            "redis://u:hunter2@[::1:7000",
            "redis://u:hunter2@a,b",
            "redis://u:hunter2@127.0.0.1?x=1",
            "redis://u:hunt%zzer2@127.0.0.1",
            "redis://u:hunter2@",
            "http://u:hunter2@127.0.0.1",
            "u:hunter2@127.0.0.1",
            "redis-sentinel://u:hunter2@127.0.0.1:26379",
        ] {
            let error = ClusterConfig::from_url(url).unwrap_err();
            assert!(!error.contains("hunter2"), "{url}: {error}");
            if url.contains("://") {
                assert!(error.contains("u:***@"), "{url}: {error}");
            }
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_and_sentinel_forms() {
        let config = ClusterConfig::from_url("rediss://localhost:7000").unwrap();
        assert!(config.tls && config.tls_config.is_none());
        assert_eq!(server(&config).host, "localhost");
        let config = ClusterConfig::from_url(
            "rediss-sentinel://u:p@127.0.0.1:26380,localhost,[::1]:26382/mymaster",
        )
        .unwrap();
        assert!(config.tls);
        let RedisTarget::Sentinel { sentinels, master } = &config.target else {
            panic!("{config:?}");
        };
        assert_eq!(master, "mymaster");
        let ports: Vec<u16> = sentinels.iter().map(|s| s.addr.port()).collect();
        assert_eq!(ports, [26380, 26379, 26382]);
        assert_eq!(
            config.to_string(),
            "rediss-sentinel://u:***@127.0.0.1:26380,localhost:26379,[::1]:26382/mymaster"
        );
        let config = ClusterConfig::from_url("redis-sentinel://127.0.0.1:1/m").unwrap();
        assert!(!config.tls);
    }
}
