//! How a server joins a cluster ([`ClusterConfig`]): where Redis is ([`RedisTarget`]: one
//! server, or the sentinels that name it), the credentials it asks for (the password a
//! [`RedisPassword`] that no `Debug` shows), TLS, and the names' TTL. `url.rs` parses the URL
//! forms of contract section 9 into it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The environment variable that gives the password to Redis
/// ([`ClusterConfig::password_from_env`]), so that it stays off the command line.
pub const PASSWORD_ENV: &str = "A_CHAT_REDIS_PASSWORD";

/// How a server joins a cluster ([`crate::Server::with_cluster`]'s argument).
///
/// Its `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct ClusterConfig {
    /// Where Redis is.
    pub target: RedisTarget,
    /// The ACL user the node authenticates as (`HELLO 3 AUTH USER PASSWORD`); `None` is Redis's
    /// `default` user. Invariant (checked by [`crate::Server::with_cluster`]): a user is given
    /// with a password.
    pub user: Option<String>,
    /// The password; `None` (and no user) sends no `AUTH` at all.
    pub password: Option<RedisPassword>,
    /// Whether to speak TLS to Redis (`rediss://`, `rediss-sentinel://`).
    pub tls: bool,
    /// The TLS client configuration when [`ClusterConfig::tls`] is set: the roots Redis's
    /// certificate is checked against, and the client certificate if Redis asks for one (build
    /// it with [`crate::tls::client_config_from_pem`] or your own). The URL cannot say it, so
    /// [`ClusterConfig::from_url`] leaves it `None`, and [`crate::Server::with_cluster`] refuses
    /// TLS without it.
    #[cfg(feature = "tls")]
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// How long a node's names outlive it (`--cluster-ttl`): a node that cannot renew its
    /// hold for this long closes its peers, and a node that died has its names freed after it.
    pub ttl: Duration,
}

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTarget {
    /// One Redis server (`redis://`, `rediss://`).
    Server(RedisAddr),
    /// The sentinels that know the master named `master` (`redis-sentinel://`,
    /// `rediss-sentinel://`), at least one.
    Sentinel {
        /// The sentinels, in the URL's order.
        sentinels: Vec<RedisAddr>,
        /// The name the sentinels know the master by.
        master: String,
    },
}

/// An address of the URL: the host as written (the name a TLS certificate must show) and the
/// socket address it resolved to when the URL was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAddr {
    /// The host as the URL gives it, without the brackets of an IPv6 address.
    pub host: String,
    /// Where to connect.
    pub addr: SocketAddr,
}

/// A password for Redis: its `Debug` shows `"***"`, and it has no `Display`, so that no log
/// line, error or metric can show it by mistake.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword(String);

impl ClusterConfig {
    /// The default `--cluster-ttl`.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

    /// A configuration for the Redis at `addr`, without a password or TLS, with the default
    /// TTL (the host is `addr`'s IP).
    pub fn new(addr: SocketAddr) -> ClusterConfig {
        ClusterConfig::for_target(RedisTarget::Server(RedisAddr {
            host: addr.ip().to_string(),
            addr,
        }))
    }

    /// A configuration for `target`, without a password or TLS, with the default TTL.
    pub fn for_target(target: RedisTarget) -> ClusterConfig {
        ClusterConfig {
            target,
            user: None,
            password: None,
            tls: false,
            #[cfg(feature = "tls")]
            tls_config: None,
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// A configuration from a URL (contract section 9), with the default TTL:
    /// - `redis://[USER[:PASSWORD]@]HOST[:PORT]` (the port 6379 if left out), and `rediss://`
    ///   for TLS (feature `tls`; set [`ClusterConfig::tls_config`] too);
    /// - `redis-sentinel://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/MASTER` (the port 26379
    ///   if left out), and `rediss-sentinel://`.
    ///
    /// The user and password may be percent-encoded (`%40` for `@`). Hosts are resolved now.
    /// The environment is not read: see [`ClusterConfig::password_from_env`]. An error is a
    /// sentence that shows the URL with its password as `***`.
    ///
    /// ```
    /// # #[cfg(feature = "tls")] {
    /// let mut config = a_chat::ClusterConfig::from_url("rediss://a-chat:pw@127.0.0.1:6380")?;
    /// assert_eq!(config.to_string(), "rediss://a-chat:***@127.0.0.1:6380");
    /// assert!(!format!("{config:?}").contains("pw"));
    /// // Whom to trust: here an empty set of roots; add the CA of Redis's certificate.
    /// let roots = a_chat::tls::rustls::RootCertStore::empty();
    /// config.tls_config = Some(a_chat::tls::client_config(roots).map_err(|e| e.to_string())?);
    /// # }
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_url(url: &str) -> Result<ClusterConfig, String> {
        super::url::parse(url)
    }

    /// Takes the password from [`PASSWORD_ENV`] if it is set (and not empty). Fails when the
    /// URL gave one too (which of the two is meant?), or when a user was given and no password
    /// came from either.
    pub fn password_from_env(&mut self) -> Result<(), String> {
        let from_env = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        match (from_env, &self.password) {
            (Some(_), Some(_)) => Err(format!(
                "the Redis password is given twice, in the URL and in {PASSWORD_ENV}: give it once"
            )),
            (Some(password), None) => {
                self.password = Some(RedisPassword::from(password));
                Ok(())
            }
            (None, _) => self.check_credentials(),
        }
    }

    /// Fails when a user is given without a password.
    pub(crate) fn check_credentials(&self) -> Result<(), String> {
        match (&self.user, &self.password) {
            (Some(user), None) => Err(format!(
                "the Redis user {user} has no password: give it in the URL or in {PASSWORD_ENV}"
            )),
            _ => Ok(()),
        }
    }

    /// The user the node authenticates as: the given one, or Redis's `default`.
    pub fn user_or_default(&self) -> &str {
        self.user.as_deref().unwrap_or("default")
    }
}

impl RedisPassword {
    /// The password itself, for the `AUTH` of the handshake only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for RedisPassword {
    fn from(password: String) -> Self {
        RedisPassword(password)
    }
}

impl From<&str> for RedisPassword {
    fn from(password: &str) -> Self {
        RedisPassword(password.to_string())
    }
}

impl fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"***\"")
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ClusterConfig");
        s.field("target", &self.target)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("tls", &self.tls);
        #[cfg(feature = "tls")]
        s.field("tls_config", &self.tls_config.as_ref().map(|_| "..."));
        s.field("ttl", &self.ttl).finish()
    }
}

/// The URL again, the password shown as `***` (for log lines).
impl fmt::Display for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (&self.target, self.tls) {
            (RedisTarget::Server(_), false) => "redis",
            (RedisTarget::Server(_), true) => "rediss",
            (RedisTarget::Sentinel { .. }, false) => "redis-sentinel",
            (RedisTarget::Sentinel { .. }, true) => "rediss-sentinel",
        };
        write!(f, "{scheme}://")?;
        match (&self.user, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (None, None) => {}
        }
        write!(f, "{}", self.target)
    }
}

/// The target as the URL writes it: `HOST:PORT`, or `HOST:PORT,HOST:PORT/MASTER`.
impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Server(addr) => write!(f, "{addr}"),
            RedisTarget::Sentinel { sentinels, master } => {
                for (i, sentinel) in sentinels.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma}{sentinel}")?;
                }
                write!(f, "/{master}")
            }
        }
    }
}

/// `HOST:PORT`, an IPv6 host in brackets.
impl fmt::Display for RedisAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.addr.port())
        } else {
            write!(f, "{}:{}", self.host, self.addr.port())
        }
    }
}
