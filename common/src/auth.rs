//! Password hashing for `user@tenant` accounts.
//!
//! Two hashes are kept per password, both computed before a command is proposed so
//! that applying it is deterministic:
//! - an argon2id hash (PHC string, RFC 9106 defaults: 19 MiB, 2 passes) used by `ctl`
//!   and other gRPC password logins; records written before it hold a salted SHA-256
//!   (`salt` non-empty), still verified until the password is next set;
//! - MySQL's `mysql_native_password` stage-2 hash, `SHA1(SHA1(password))`, which the
//!   SQL gateway needs to check the client's scrambled reply (it is what MySQL itself
//!   stores in `mysql.user.authentication_string`).

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Hashes of one password. Never contains the password itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    /// Legacy records only: 16 random bytes, hex; empty when `login` is argon2id.
    pub salt: String,
    /// The gRPC login hash: an argon2id PHC string (`$argon2id$v=19$…`), or, when
    /// `salt` is set, the legacy `SHA256(salt || password)` in hex.
    #[serde(alias = "sha256")]
    pub login: String,
    /// `SHA1(SHA1(password))`, hex (40 chars); empty for an empty password.
    pub mysql_native: String,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt (argon2id: about 20 ms of CPU
    /// and 19 MiB; call it off the async runtime's hot path where that matters).
    pub fn new(password: &str) -> PasswordHash {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        // Only an out-of-range salt or parameter can fail, and both are fixed here;
        // an empty `login` then verifies nothing.
        let login = SaltString::encode_b64(&salt)
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(password.as_bytes(), &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default();
        PasswordHash {
            salt: String::new(),
            login,
            mysql_native: if password.is_empty() {
                String::new()
            } else {
                hex::encode(Sha1::digest(Sha1::digest(password.as_bytes())))
            },
        }
    }

    /// Whether `password` matches the login hash (argon2id, or a legacy record's
    /// salted SHA-256). Costs what [`PasswordHash::new`] costs.
    pub fn verify(&self, password: &str) -> bool {
        if self.salt.is_empty() {
            return argon2::PasswordHash::new(&self.login).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            });
        }
        let Ok(salt) = hex::decode(&self.salt) else {
            return false;
        };
        let computed = hex::encode(salted(&salt, password));
        // Compare without an early exit so timing does not leak the prefix length.
        computed.len() == self.login.len()
            && computed
                .bytes()
                .zip(self.login.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl PasswordHash {
    /// Checks a `mysql_native_password` reply: the client sends
    /// `SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw)))`; XOR with `SHA1(salt + stage2)`
    /// gives `SHA1(pw)`, whose SHA1 must equal the stored stage-2 hash.
    pub fn verify_native(&self, salt: &[u8], reply: &[u8]) -> bool {
        if self.mysql_native.is_empty() {
            return reply.is_empty();
        }
        let Ok(stage2) = hex::decode(&self.mysql_native) else {
            return false;
        };
        if reply.len() != 20 {
            return false;
        }
        let mut h = Sha1::new();
        h.update(salt);
        h.update(&stage2);
        let mask = h.finalize();
        let stage1: Vec<u8> = reply.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
        let check = Sha1::digest(&stage1);
        check
            .iter()
            .zip(stage2.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn salted(salt: &[u8], password: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_password_and_salts_differ() {
        let a = PasswordHash::new("pw");
        let b = PasswordHash::new("pw");
        assert!(a.verify("pw"));
        assert!(!a.verify("pW"));
        assert_ne!(a.login, b.login, "salted");
        assert!(a.login.starts_with("$argon2id$"), "{}", a.login);
        assert_eq!(a.mysql_native, b.mysql_native);
        assert_eq!(a.mysql_native.len(), 40);
        assert!(!format!("{a:?}").contains(&a.login));
        // A record written before argon2id still verifies.
        let salt = [7u8; 16];
        let legacy = PasswordHash {
            salt: hex::encode(salt),
            login: hex::encode(salted(&salt, "old")),
            mysql_native: String::new(),
        };
        assert!(legacy.verify("old") && !legacy.verify("new"));
    }

    #[test]
    fn native_password_replies_verify() {
        let h = PasswordHash::new("secret");
        let salt = b"01234567890123456789";
        let stage1 = Sha1::digest(b"secret");
        let stage2 = Sha1::digest(stage1);
        let mut m = Sha1::new();
        m.update(salt);
        m.update(stage2);
        let mask = m.finalize();
        let reply: Vec<u8> = stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
        assert!(h.verify_native(salt, &reply));
        assert!(!h.verify_native(b"another salt 1234567", &reply));
        assert!(!h.verify_native(salt, &[]));
        assert!(PasswordHash::new("").verify_native(salt, &[]));
    }
}
