//! TLS failures told as sentences: every `rustls::Error` a session can end with, in one place,
//! for the client's and the load generator's error messages and the server's log lines (never
//! rustls's `Debug` names, such as `Other(OtherError(CaUsedAsEndEntity))`).

use std::fmt;

use rustls::{AlertDescription, CertificateError, Error};

/// Which end of the session saw the failure: it decides who "the peer" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server (the peer is a client).
    Server,
    /// A client (the peer is the server).
    Client,
}

impl Side {
    fn peer(self) -> &'static str {
        match self {
            Side::Server => "the client",
            Side::Client => "the server",
        }
    }
}

/// A TLS session's failure, with a hand-written `Display`: what happened and, where a user can
/// do something about it, what to do.
#[derive(Debug, Clone)]
pub struct TlsError {
    /// What rustls reported.
    pub error: Error,
    /// The end that saw it.
    pub side: Side,
}

impl std::error::Error for TlsError {}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = self.side.peer();
        match &self.error {
            Error::InvalidCertificate(error) => certificate(error, f),
            Error::NoCertificatesPresented => write!(f, "{peer} presented no certificate"),
            Error::AlertReceived(AlertDescription::CertificateRequired)
                if self.side == Side::Client =>
            {
                write!(
                    f,
                    "the server asks for a client certificate and was given none (alert: \
                     certificate required)"
                )
            }
            Error::AlertReceived(alert) => match (self.side, alert_is_about_certificates(*alert)) {
                (Side::Server, true) => write!(
                    f,
                    "the client refused the server's certificate ({}): give the client the \
                     certificate of the CA that signed it (a-chat client --ca FILE), or use one \
                     it trusts",
                    alert_name(*alert)
                ),
                (_, true) => write!(
                    f,
                    "the server refused a certificate ({})",
                    alert_name(*alert)
                ),
                _ => write!(f, "{peer} ended the handshake ({})", alert_name(*alert)),
            },
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => match self.side {
                Side::Server => f.write_str(
                    "the client does not speak TLS (or sent a corrupt record); is it a plain \
                     client on a TLS port?",
                ),
                Side::Client => f.write_str(
                    "the server does not speak TLS here (or sent a corrupt record); is it a \
                     plain port? try without --tls",
                ),
            },
            Error::InappropriateHandshakeMessage { .. } | Error::PeerMisbehaved(_) => {
                write!(f, "{peer} broke the TLS protocol")
            }
            Error::PeerIncompatible(_) => write!(
                f,
                "{peer} has no TLS version, cipher suite or key exchange in common with this end"
            ),
            Error::DecryptError => {
                write!(
                    f,
                    "a record from {peer} failed to decrypt (corrupt or tampered with)"
                )
            }
            Error::PeerSentOversizedRecord => write!(f, "{peer} sent an oversized TLS record"),
            other => write!(f, "TLS failed: {other}"),
        }
    }
}

/// The sentence for a server certificate the client rejected.
fn certificate(error: &CertificateError, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match error {
        CertificateError::UnknownIssuer => f.write_str(
            "the server's certificate has an unknown issuer: pass --ca FILE with the \
             certificate of the CA that signed it (or the certificate itself if it is \
             self-signed)",
        ),
        CertificateError::NotValidForName => f.write_str(
            "the server's certificate is not valid for the name connected to: connect with a \
             name it holds, or make it with subjectAltName for this one (see README, TLS)",
        ),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            write!(
                f,
                "the server's certificate is not valid for {}",
                expected.to_str()
            )?;
            if presented.is_empty() {
                f.write_str(" (it holds no name)")?;
            } else {
                write!(f, " (it holds {})", presented.join(", "))?;
            }
            f.write_str(
                ": connect with a name it holds, or make it with subjectAltName for this one \
                 (see README, TLS)",
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            f.write_str("the server's certificate has expired: renew it")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => f.write_str(
            "the server's certificate is not valid yet: check the clocks, or its start date",
        ),
        CertificateError::Revoked => f.write_str("the server's certificate has been revoked"),
        CertificateError::BadSignature => {
            f.write_str("the server's certificate has a bad signature")
        }
        CertificateError::BadEncoding => f.write_str("the server's certificate is malformed"),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => f
            .write_str(
                "the server's certificate is not meant for TLS servers (its extended key usage)",
            ),
        CertificateError::UnhandledCriticalExtension => f.write_str(
            "the server's certificate has a critical extension this client does not know",
        ),
        CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => f.write_str(
                "the certificate is a CA certificate used as a server certificate; make one \
                     with CA:FALSE (see README, TLS)",
            ),
            Some(webpki::Error::EndEntityUsedAsCa) => f.write_str(
                "a server certificate was used as a CA certificate: pass --ca FILE with the \
                     CA's certificate, not a server's",
            ),
            _ => write!(f, "the server's certificate is not acceptable: {other}"),
        },
        other => write!(f, "the server's certificate is not acceptable: {other}"),
    }
}

/// Whether `alert` says that a certificate was refused.
fn alert_is_about_certificates(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
    )
}

/// The alert's name as the TLS specifications write it.
fn alert_name(alert: AlertDescription) -> String {
    let name = match alert {
        AlertDescription::CloseNotify => "close notify",
        AlertDescription::UnexpectedMessage => "unexpected message",
        AlertDescription::BadRecordMac => "bad record MAC",
        AlertDescription::RecordOverflow => "record overflow",
        AlertDescription::HandshakeFailure => "handshake failure",
        AlertDescription::BadCertificate => "bad certificate",
        AlertDescription::UnsupportedCertificate => "unsupported certificate",
        AlertDescription::CertificateRevoked => "certificate revoked",
        AlertDescription::CertificateExpired => "certificate expired",
        AlertDescription::CertificateUnknown => "certificate unknown",
        AlertDescription::IllegalParameter => "illegal parameter",
        AlertDescription::UnknownCA => "unknown CA",
        AlertDescription::AccessDenied => "access denied",
        AlertDescription::DecodeError => "decode error",
        AlertDescription::DecryptError => "decrypt error",
        AlertDescription::ProtocolVersion => "protocol version",
        AlertDescription::InsufficientSecurity => "insufficient security",
        AlertDescription::InternalError => "internal error",
        AlertDescription::UnrecognisedName => "unrecognised name",
        AlertDescription::NoApplicationProtocol => "no application protocol",
        AlertDescription::CertificateRequired => "certificate required",
        other => return format!("alert {}", u8::from(other)),
    };
    format!("alert: {name}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::{CertificateError, Error, OtherError};

    use super::*;

    fn say(error: Error, side: Side) -> String {
        TlsError { error, side }.to_string()
    }

    #[test]
    fn certificate_errors_are_sentences() {
        let client = |e: CertificateError| say(Error::InvalidCertificate(e), Side::Client);
        let ca = CertificateError::Other(OtherError(Arc::new(webpki::Error::CaUsedAsEndEntity)));
        assert_eq!(
            client(ca),
            "the certificate is a CA certificate used as a server certificate; make one with \
             CA:FALSE (see README, TLS)"
        );
        assert!(client(CertificateError::UnknownIssuer).contains("unknown issuer: pass --ca FILE"));
        let name = client(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("chat.example.org").unwrap(),
            presented: vec!["DnsName(\"localhost\")".into()],
        });
        assert!(name.starts_with("the server's certificate is not valid for chat.example.org"));
        assert!(client(CertificateError::Expired).contains("has expired"));
        assert!(client(CertificateError::NotValidYet).contains("not valid yet"));
        for text in [
            client(CertificateError::BadSignature),
            client(CertificateError::Revoked),
            client(CertificateError::InvalidPurpose),
        ] {
            assert!(text.starts_with("the server's certificate "), "{text}");
        }
    }

    #[test]
    fn alerts_and_protocol_errors_name_the_peer() {
        let refused = say(
            Error::AlertReceived(AlertDescription::UnknownCA),
            Side::Server,
        );
        assert!(
            refused.starts_with("the client refused the server's certificate (alert: unknown CA)"),
            "{refused}"
        );
        let garbage = Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(say(garbage.clone(), Side::Server).starts_with("the client does not speak TLS"));
        assert!(say(garbage, Side::Client).contains("try without --tls"));
        let ended = say(
            Error::AlertReceived(AlertDescription::HandshakeFailure),
            Side::Client,
        );
        assert_eq!(
            ended,
            "the server ended the handshake (alert: handshake failure)"
        );
    }

    #[test]
    fn no_debug_names_leak() {
        let errors = [
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                webpki::Error::CaUsedAsEndEntity,
            )))),
            Error::AlertReceived(AlertDescription::BadCertificate),
            Error::DecryptError,
            Error::NoCertificatesPresented,
        ];
        for error in errors {
            for side in [Side::Server, Side::Client] {
                let text = say(error.clone(), side);
                assert!(
                    !text.contains("Other(") && !text.contains("Error("),
                    "{text}"
                );
            }
        }
    }
}
