//! Password generation and strength estimation.
//!
//! Alphabet: ASCII letters and digits only (62 symbols, 5.95 bits each). They need no quoting in
//! `.env` files, survive docker compose interpolation (no `$`), need no escaping in URLs, and
//! cannot start a command-line option.

use rand::TryRng as _;
use sealcache_env_detect::Environment;

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The password alphabet.
pub const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Entropy, in bits, that generated passwords carry in `env` (and that validation requires), as
/// [`sealcache_env_detect::Policy::password_bits`] decides.
#[must_use]
pub fn required_bits(env: Environment) -> u32 {
    sealcache_env_detect::password_bits(env)
}

/// Length of a generated password carrying `bits` of entropy over [`ALPHABET`].
#[must_use]
pub fn length_for_bits(bits: u32) -> usize {
    let per_char = (ALPHABET.len() as f64).log2();
    (f64::from(bits) / per_char).ceil() as usize
}

/// Draws a password of `bits` entropy from the OS CSPRNG (rejection sampling: no modulo bias).
///
/// The result always contains an upper-case letter, a lower-case letter and a digit, so that the
/// validator's estimate ([`estimated_bits`]) never judges a generated password weaker than it is;
/// the few draws this rejects cost under 0.1 bit.
///
/// # Errors
/// [`Error::Randomness`] if the OS generator fails.
pub fn generate(bits: u32) -> Result<SecretString> {
    let len = length_for_bits(bits);
    loop {
        let mut out = String::with_capacity(len);
        let mut buf = [0u8; 64];
        while out.len() < len {
            rand::rngs::SysRng
                .try_fill_bytes(&mut buf)
                .map_err(|_| Error::Randomness)?;
            for b in buf {
                // 248 = 4 * 62: bytes at or above it would bias the draw.
                if b < 248 && out.len() < len {
                    out.push(char::from(ALPHABET[usize::from(b % 62)]));
                }
            }
        }
        buf.fill(0);
        let secret = SecretString::new(out);
        let s = secret.expose_secret();
        if s.bytes().any(|c| c.is_ascii_uppercase())
            && s.bytes().any(|c| c.is_ascii_lowercase())
            && s.bytes().any(|c| c.is_ascii_digit())
        {
            return Ok(secret);
        }
    }
}

/// Estimated entropy in bits: length times log2 of the size of the character classes present
/// (lower 26, upper 26, digits 10, other printable 33). An upper bound for human-chosen passwords,
/// exact for generated ones.
#[must_use]
pub fn estimated_bits(password: &str) -> f64 {
    let mut pool = 0u32;
    if password.bytes().any(|c| c.is_ascii_lowercase()) {
        pool += 26;
    }
    if password.bytes().any(|c| c.is_ascii_uppercase()) {
        pool += 26;
    }
    if password.bytes().any(|c| c.is_ascii_digit()) {
        pool += 10;
    }
    if password.bytes().any(|c| !c.is_ascii_alphanumeric()) {
        pool += 33;
    }
    if pool == 0 {
        return 0.0;
    }
    password.chars().count() as f64 * f64::from(pool).log2()
}

/// Common and default passwords (compared case-insensitively, also with digits stripped).
pub const DENYLIST: &[&str] = &[
    "password",
    "passw0rd",
    "redis",
    "redispassword",
    "redis_password",
    "foobared",
    "changeme",
    "change_me",
    "secret",
    "admin",
    "root",
    "default",
    "letmein",
    "qwerty",
    "123456",
    "12345678",
    "123456789",
    "welcome",
    "test",
    "testing",
    "development",
    "production",
    "cache",
    "guest",
    "your_redis_password",
    "yourpassword",
    "mypassword",
    "example",
    "iloveyou",
    "dragon",
];

/// True when `password` is on (or a trivial variant of) the denylist.
#[must_use]
pub fn is_denylisted(password: &str) -> bool {
    let lower = password.trim().to_ascii_lowercase();
    let stripped: String = lower.chars().filter(|c| !c.is_ascii_digit()).collect();
    DENYLIST
        .iter()
        .any(|d| lower == *d || (!stripped.is_empty() && stripped == *d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_per_environment() {
        assert_eq!(length_for_bits(required_bits(Environment::Production)), 33);
        assert_eq!(length_for_bits(required_bits(Environment::Staging)), 25);
        assert_eq!(length_for_bits(required_bits(Environment::Testing)), 17);
        assert_eq!(length_for_bits(required_bits(Environment::Development)), 11);
    }

    #[test]
    fn generated_passwords_meet_their_estimate_and_alphabet() {
        for env in Environment::ALL {
            for _ in 0..200 {
                let p = generate(required_bits(env)).unwrap();
                assert!(p.expose_secret().bytes().all(|b| ALPHABET.contains(&b)));
                assert!(estimated_bits(p.expose_secret()) >= f64::from(required_bits(env)));
                assert!(!is_denylisted(p.expose_secret()));
            }
        }
    }

    #[test]
    fn denylist_catches_variants() {
        assert!(is_denylisted("Password123"));
        assert!(is_denylisted("foobared"));
        assert!(!is_denylisted("k3Jd9aQx"));
        assert!(estimated_bits("aaaa") < 20.0);
    }
}
