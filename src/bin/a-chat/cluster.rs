//! `a-chat server --cluster`: the cluster's configuration from the command line and the
//! environment: the URL, the password of `A_CHAT_REDIS_PASSWORD`, the TTL, and TLS's roots
//! and client certificate.

use std::io;

use a_chat::ClusterConfig;

use crate::cli::ServerArgs;
use crate::tls_client::native_roots;

/// The cluster `args` ask for, if any. Errors are sentences that never show the password (the
/// URL is parsed here rather than by clap, whose error would quote it).
pub fn config(args: &ServerArgs) -> io::Result<Option<ClusterConfig>> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let Some(url) = &args.cluster else {
        return Ok(None);
    };
    let mut config = ClusterConfig::from_url(url).map_err(|e| invalid(format!("--cluster {e}")))?;
    config.password_from_env().map_err(invalid)?;
    if args.cluster_ttl.is_zero() {
        return Err(invalid("--cluster-ttl must be above 0".into()));
    }
    config.ttl = args.cluster_ttl;
    let tls_files = args.cluster_ca.is_some() || args.cluster_cert.is_some();
    if tls_files && !config.tls {
        return Err(invalid(
            "--cluster-ca, --cluster-cert and --cluster-key are for TLS to Redis: the --cluster \
             URL must then be rediss://... or rediss-sentinel://..."
                .into(),
        ));
    }
    if config.tls {
        let roots = match &args.cluster_ca {
            Some(ca) => a_chat::tls::roots_from_pem(ca)?,
            None => native_roots("give Redis's CA with --cluster-ca")?,
        };
        let tls = match (&args.cluster_cert, &args.cluster_key) {
            (Some(cert), Some(key)) => a_chat::tls::client_config_from_pem(roots, cert, key)?,
            _ => a_chat::tls::client_config(roots).map_err(io::Error::other)?,
        };
        config.tls_config = Some(tls);
    }
    Ok(Some(config))
}
