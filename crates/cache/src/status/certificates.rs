//! Days left of certificates (files, PEM, DER) and the expiry checks.

use std::path::Path;

use super::{CERTIFICATE_WARNING_DAYS, Check, CheckName, Impact};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Days left of one certificate file's certificates (`Err`: unreadable, with a reason).
pub(crate) fn file_days(path: &Path) -> Result<Vec<i64>, &'static str> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|_| "unreadable")?
        .collect::<Result<_, _>>()
        .map_err(|_| "not PEM")?;
    certs_days(&certs)
}

/// Days left of in-memory PEM certificates.
pub(crate) fn pem_days(pem: &[u8]) -> Result<Vec<i64>, &'static str> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| "not PEM")?;
    certs_days(&certs)
}

fn certs_days(certs: &[CertificateDer<'static>]) -> Result<Vec<i64>, &'static str> {
    if certs.is_empty() {
        return Err("no certificate in the file");
    }
    certs
        .iter()
        .map(|der| {
            der_days(der).ok_or(if cfg!(feature = "certificate-expiry") {
                "not an X.509 certificate"
            } else {
                "expiry not read (feature `certificate-expiry` is off)"
            })
        })
        .collect()
}

/// Days until a DER certificate's `notAfter` (negative once expired). `None` without the
/// `certificate-expiry` feature (the checks are then reported as not observed).
#[cfg(feature = "certificate-expiry")]
pub(crate) fn der_days(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Some((cert.validity().not_after.timestamp() - now).div_euclid(86_400))
}

/// Without the `certificate-expiry` feature no certificate is read.
#[cfg(not(feature = "certificate-expiry"))]
pub(crate) fn der_days(_der: &[u8]) -> Option<i64> {
    None
}

pub(super) fn certificate_check(
    name: CheckName,
    what: &str,
    days: Option<&Result<Vec<i64>, &'static str>>,
    absent: Check,
) -> (Check, Option<i64>) {
    match days {
        None => (absent, None),
        Some(Err(why)) => (
            Check::fail(name, Impact::Degraded, format!("{what}: {why}")),
            None,
        ),
        Some(Ok(days)) => match days.iter().min().copied() {
            Some(d) if d > CERTIFICATE_WARNING_DAYS => (
                Check::pass(name, format!("{what} expires in {d} days")),
                Some(d),
            ),
            Some(d) if d < 0 => (
                Check::fail(name, Impact::Degraded, format!("{what} has expired")),
                Some(d),
            ),
            Some(d) => (
                Check::fail(
                    name,
                    Impact::Degraded,
                    format!("{what} expires in {d} days (renew before {CERTIFICATE_WARNING_DAYS})"),
                ),
                Some(d),
            ),
            None => (Check::unobserved(name, format!("{what}: none read")), None),
        },
    }
}
