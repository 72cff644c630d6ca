//! The one security-posture assessment: [`SecurityStatus`] (a type of `sealcache-api`, the JSON
//! the server serves) is built here and nowhere else.
//!
//! The cache gathers [`Observations`] (what Redis and the TLS handshakes showed); [`assess`] turns
//! them into typed [`Check`]s and one [`SecurityLevel`]. A caller that observes more (the server's
//! network-isolation probe) adds a check with [`SecurityStatus::add_check`], which re-assesses.
//!
//! The rules, in order:
//! 1. not strict ([`Policy::is_strict`] false) → `development`;
//! 2. a check that was observed and failed in a way that leaves a core protection missing
//!    (plaintext transport, the `default` user, anonymous access) → `insecure`;
//! 3. every check observed and passed → `production_ready`;
//! 4. anything else (a check that could not be observed, Redis unavailable, refused credentials, a
//!    failed handshake, a certificate within 30 days of expiry) → `degraded`, with the reason in
//!    the check's detail. What could not be seen is never reported as `insecure`.

mod assess;
mod certificates;
mod cluster;

pub(crate) use assess::{Observations, assess};
pub(crate) use certificates::{der_days, file_days, pem_days};
pub use cluster::{ClusterStatus, NodeRole, NodeStatus};
pub(crate) use cluster::{NodeObservation, Topology};

use crate::error::{Error, TlsFailure};

pub use sealcache_api::status::{
    CERTIFICATE_WARNING_DAYS, Check, CheckName, Impact, L1CoherenceStatus, SecurityLevel,
    SecurityStatus,
};

/// Why a connection to Redis was refused, as last observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `WRONGPASS`, `NOAUTH`, `NOPERM` while connecting.
    Authentication(&'static str),
    /// A failed TLS handshake.
    Tls(TlsFailure),
}

impl Refusal {
    pub(crate) fn of(err: &Error) -> Option<Self> {
        match err {
            Error::AuthenticationRefused { code } => Some(Refusal::Authentication(code)),
            Error::Tls { failure } => Some(Refusal::Tls(*failure)),
            _ => None,
        }
    }

    fn detail(self) -> String {
        match self {
            Refusal::Authentication(code) => format!("authentication refused ({code})"),
            Refusal::Tls(failure) => format!("TLS handshake failed: {failure}"),
        }
    }
}

/// What a TLS probe saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsProbe {
    pub(crate) version: Option<String>,
    /// Days left of each certificate in the chain the server presented.
    pub(crate) chain_days: Vec<i64>,
    /// The handshake failed (observed).
    pub(crate) failure: Option<TlsFailure>,
    /// The probe could not run or finish (nothing observed), and why.
    pub(crate) unobserved: Option<String>,
}
