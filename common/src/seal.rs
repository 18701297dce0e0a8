//! Encryption of stored bytes: the building blocks of OceanBase's `SET ENCRYPTION`
//! (password mode) and of transparent encryption with a cluster master key (issue 15;
//! the layout is in `docs/FORMAT.md`, "Encryption").
//!
//! - Each backup set or piece gets a random 256-bit data key ([`DataKey::random`]).
//! - The data key is stored only wrapped ([`KeyWrap`]): sealed under a key derived from
//!   a password (argon2id; the salt and parameters are recorded beside it) or under a
//!   master key (its id is recorded, so several master keys can coexist after a
//!   rotation).
//! - Every stored frame is sealed with AES-256-GCM ([`seal`]): 12 bytes of nonce, the
//!   ciphertext, 16 bytes of tag ([`OVERHEAD`] = 28 bytes per frame). The nonce is the
//!   writer's position counter ([`frame_nonce`]: part, attempt, frame number), so it
//!   never repeats under one key; the frame's place (object key and offset,
//!   [`frame_aad`]) is authenticated as associated data, so a frame moved elsewhere,
//!   or two frames swapped, do not open ([`SealError::Tampered`]).
//!
//! Checksums in manifests are of the sealed bytes, so validation and copies need no
//! key; restore also checks the plaintext's.

use std::collections::BTreeMap;
use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of a data or master key (AES-256).
pub const KEY_LEN: usize = 32;
/// Bytes of the GCM tag at the end of a sealed frame.
pub const TAG_LEN: usize = 16;
/// What sealing adds to a frame: its nonce and its tag (bytes).
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// argon2id memory cost (KiB) of new password wraps: RFC 9106's second recommended
/// option (19 MiB, 2 passes, 1 lane), as for login passwords.
pub const KDF_M_COST_KIB: u32 = 19 * 1024;
/// argon2id passes of new password wraps.
pub const KDF_T_COST: u32 = 2;
/// The largest argon2id memory cost (KiB) a wrap read from storage may ask for: a
/// forged manifest cannot make restore allocate more than 1 GiB.
pub const KDF_MAX_M_COST_KIB: u32 = 1024 * 1024;
/// The most argon2id passes a wrap read from storage may ask for.
pub const KDF_MAX_T_COST: u32 = 16;
/// The most argon2id lanes a wrap read from storage may ask for.
pub const KDF_MAX_P_COST: u32 = 16;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// None of the passwords or master keys given opens the data key of `what`.
    #[error("{what}: {detail}")]
    WrongKey {
        /// The set or piece.
        what: String,
        /// Which kind of key was tried.
        detail: String,
    },
    /// A sealed frame does not open: its bytes, its place or its key are not those it
    /// was sealed with (a flipped byte, a moved or swapped frame).
    #[error("{what}: the encrypted frame does not authenticate (tampered, moved or swapped)")]
    Tampered {
        /// The object and offset.
        what: String,
    },
    /// A key wrap, key file or sealed frame that is not in the format.
    #[error("{0}")]
    Invalid(String),
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
}

/// `ENCRYPTION_MODE` of a backup set or piece (OceanBase's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EncryptionMode {
    /// Stored in the clear.
    #[default]
    None,
    /// `ALTER SYSTEM SET ENCRYPTION ON IDENTIFIED BY 'pwd' ONLY`.
    Password,
    /// The cluster master key.
    Transparent,
}

impl EncryptionMode {
    /// The `ENCRYPTION_MODE` column's value: `NONE`, `PASSWORD` or
    /// `TRANSPARENT_ENCRYPTION`.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionMode::None => "NONE",
            EncryptionMode::Password => "PASSWORD",
            EncryptionMode::Transparent => "TRANSPARENT_ENCRYPTION",
        }
    }
}

/// A 256-bit AES key, wiped from memory when dropped; shown as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl DataKey {
    /// A fresh key from the system's random source. Errors: [`SealError::Random`].
    pub fn random() -> Result<DataKey, SealError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(k.as_mut())
            .map_err(|_| SealError::Random)?;
        Ok(DataKey(k))
    }

    /// The key of these bytes. Errors: [`SealError::Invalid`] unless 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<DataKey, SealError> {
        let raw: [u8; KEY_LEN] = b.try_into().map_err(|_| {
            SealError::Invalid(format!("a key is {KEY_LEN} bytes, not {}", b.len()))
        })?;
        Ok(DataKey(Zeroizing::new(raw)))
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        UnboundKey::new(&AES_256_GCM, self.0.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| SealError::Invalid("not an AES-256 key".into()))
    }
}

/// A cluster master key with its id (the first 16 hex digits of the SHA-256 of the
/// key), read from a key file: 64 hex digits (32 bytes), whitespace around ignored.
#[derive(Clone)]
pub struct MasterKey {
    /// The id recorded in every wrap made with this key.
    pub id: String,
    key: DataKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, ***)", self.id)
    }
}

impl MasterKey {
    /// The master key written as `text` (a key file's contents).
    ///
    /// Errors: [`SealError::Invalid`] unless 64 hex digits.
    pub fn parse(text: &str) -> Result<MasterKey, SealError> {
        let raw = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
            SealError::Invalid("a master key file holds 64 hex digits (32 bytes)".into())
        })?);
        let key = DataKey::from_bytes(&raw).map_err(|_| {
            SealError::Invalid("a master key file holds 64 hex digits (32 bytes)".into())
        })?;
        let id = hex::encode(&Sha256::digest(raw.as_slice())[..8]);
        Ok(MasterKey { id, key })
    }
}

/// argon2id parameters of a password wrap, recorded beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// 16 random bytes, hex.
    pub salt: String,
    /// Memory cost, KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

/// A data key as stored: sealed under a password-derived key or a master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWrap {
    /// `PASSWORD` or `TRANSPARENT_ENCRYPTION`.
    pub mode: EncryptionMode,
    /// Password mode: how the wrapping key is derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<Kdf>,
    /// Transparent mode: the master key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_id: Option<String>,
    /// The sealed data key (nonce, ciphertext, tag), hex.
    pub sealed_key: String,
}

/// What may open a wrap: the session's `SET DECRYPTION` passwords (or a
/// `--decryption-password-file`), and the master keys configured (by id). Its
/// `Debug` shows how many of each, never them.
#[derive(Clone, Default)]
pub struct Keyring {
    /// Passwords, tried in order.
    pub passwords: Vec<Zeroizing<String>>,
    /// Master keys by id.
    pub master_keys: BTreeMap<String, MasterKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keyring({} password(s), master keys {:?})",
            self.passwords.len(),
            self.master_keys.keys().collect::<Vec<_>>()
        )
    }
}

impl Keyring {
    /// A keyring holding these passwords.
    pub fn with_passwords<I: IntoIterator<Item = String>>(passwords: I) -> Keyring {
        Keyring {
            passwords: passwords.into_iter().map(Zeroizing::new).collect(),
            master_keys: BTreeMap::new(),
        }
    }

    /// Adds a master key.
    pub fn add_master(&mut self, key: MasterKey) {
        self.master_keys.insert(key.id.clone(), key);
    }

    /// The passwords of a password file: one per line, blank lines ignored, a line's
    /// trailing `\r` removed (a file written on Windows).
    pub fn parse_password_file(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The wrapping key argon2id derives from `password` with `kdf`.
fn derive(password: &str, kdf: &Kdf) -> Result<DataKey, SealError> {
    if kdf.m_cost_kib > KDF_MAX_M_COST_KIB
        || kdf.t_cost > KDF_MAX_T_COST
        || kdf.p_cost > KDF_MAX_P_COST
    {
        return Err(SealError::Invalid(format!(
            "key wrap asks for argon2id m={} KiB t={} p={}, beyond this build's bounds ({} KiB, {} passes, {} lanes)",
            kdf.m_cost_kib,
            kdf.t_cost,
            kdf.p_cost,
            KDF_MAX_M_COST_KIB,
            KDF_MAX_T_COST,
            KDF_MAX_P_COST
        )));
    }
    let salt = hex::decode(&kdf.salt)
        .map_err(|_| SealError::Invalid("key wrap salt is not hex".into()))?;
    let params = Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(KEY_LEN))
        .map_err(|e| SealError::Invalid(format!("argon2id parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &salt, out.as_mut())
        .map_err(|e| SealError::Invalid(format!("argon2id: {e}")))?;
    Ok(DataKey(out))
}

/// The associated data of a wrap: what it is for, so a wrap cannot be moved between
/// modes or master keys.
fn wrap_aad(mode: EncryptionMode, id: &str) -> Vec<u8> {
    format!("backstop key wrap\0{}\0{id}", mode.as_str()).into_bytes()
}

fn seal_key(wrapping: &DataKey, aad: &[u8], key: &DataKey) -> Result<String, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;
    Ok(hex::encode(seal(wrapping, nonce, aad, key.0.as_ref())?))
}

/// `key` wrapped under argon2id(`password`), with a fresh salt.
///
/// Errors: [`SealError::Random`]; [`SealError::Invalid`] if argon2id refuses.
pub fn wrap_with_password(key: &DataKey, password: &str) -> Result<KeyWrap, SealError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| SealError::Random)?;
    let kdf = Kdf {
        salt: hex::encode(salt),
        m_cost_kib: KDF_M_COST_KIB,
        t_cost: KDF_T_COST,
        p_cost: 1,
    };
    let wrapping = derive(password, &kdf)?;
    let sealed_key = seal_key(&wrapping, &wrap_aad(EncryptionMode::Password, ""), key)?;
    Ok(KeyWrap {
        mode: EncryptionMode::Password,
        kdf: Some(kdf),
        master_key_id: None,
        sealed_key,
    })
}

/// `key` wrapped under `master`.
///
/// Errors: [`SealError::Random`].
pub fn wrap_with_master(key: &DataKey, master: &MasterKey) -> Result<KeyWrap, SealError> {
    let sealed_key = seal_key(
        &master.key,
        &wrap_aad(EncryptionMode::Transparent, &master.id),
        key,
    )?;
    Ok(KeyWrap {
        mode: EncryptionMode::Transparent,
        kdf: None,
        master_key_id: Some(master.id.clone()),
        sealed_key,
    })
}

/// The data key of `wrap` (of `what`, a set or piece named in errors), opened with
/// the first of `keys` that fits.
///
/// Errors: [`SealError::WrongKey`] when no password, or not the recorded master key,
/// opens it (naming which was missing); [`SealError::Invalid`] for a malformed wrap.
pub fn unwrap(wrap: &KeyWrap, keys: &Keyring, what: &str) -> Result<DataKey, SealError> {
    let sealed = hex::decode(&wrap.sealed_key)
        .map_err(|_| SealError::Invalid(format!("{what}: the sealed data key is not hex")))?;
    let opened = |wrapping: &DataKey, aad: &[u8]| {
        open(wrapping, aad, &sealed, what)
            .ok()
            .and_then(|k| DataKey::from_bytes(&k).ok())
    };
    match wrap.mode {
        EncryptionMode::Password => {
            let kdf = wrap.kdf.as_ref().ok_or_else(|| {
                SealError::Invalid(format!("{what}: a password wrap without its parameters"))
            })?;
            if keys.passwords.is_empty() {
                return Err(SealError::WrongKey {
                    what: what.to_string(),
                    detail: "encrypted with a password: give it (SET DECRYPTION IDENTIFIED BY, or --decryption-password-file)".into(),
                });
            }
            let aad = wrap_aad(EncryptionMode::Password, "");
            for pw in &keys.passwords {
                if let Some(k) = opened(&derive(pw, kdf)?, &aad) {
                    return Ok(k);
                }
            }
            Err(SealError::WrongKey {
                what: what.to_string(),
                detail: format!(
                    "none of the {} decryption password(s) given is the one it was encrypted with",
                    keys.passwords.len()
                ),
            })
        }
        EncryptionMode::Transparent => {
            let id = wrap.master_key_id.clone().unwrap_or_default();
            let Some(master) = keys.master_keys.get(&id) else {
                return Err(SealError::WrongKey {
                    what: what.to_string(),
                    detail: format!(
                        "encrypted with master key {id}, which is not configured here (master_key_file)"
                    ),
                });
            };
            opened(&master.key, &wrap_aad(EncryptionMode::Transparent, &id)).ok_or_else(|| {
                SealError::WrongKey {
                    what: what.to_string(),
                    detail: format!("master key {id} does not open its data key"),
                }
            })
        }
        EncryptionMode::None => Err(SealError::Invalid(format!(
            "{what}: a key wrap of mode NONE"
        ))),
    }
}

/// The nonce of frame number `frame` written by attempt `attempt` of part `part`:
/// the three as big-endian u32s. One data key seals one set or piece, whose parts
/// and attempts are unique and whose writer counts its frames, so a nonce never
/// repeats under a key.
pub fn frame_nonce(part: u32, attempt: u32, frame: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..4].copy_from_slice(&part.to_be_bytes());
    n[4..8].copy_from_slice(&attempt.to_be_bytes());
    n[8..].copy_from_slice(&frame.to_be_bytes());
    n
}

/// The associated data of a frame: its object key and offset there.
pub fn frame_aad(object: &str, offset: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(object.len() + 9);
    aad.extend_from_slice(object.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&offset.to_be_bytes());
    aad
}

/// `plain` sealed with AES-256-GCM under `key`: `nonce`, the ciphertext, the tag.
///
/// Errors: [`SealError::Invalid`] if the cipher refuses (a frame over GCM's 64 GiB).
pub fn seal(
    key: &DataKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut body = plain.to_vec();
    key.aead()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| SealError::Invalid("AES-256-GCM refused to seal".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reverses [`seal`].
///
/// Errors: [`SealError::Tampered`] (naming `what`) when the bytes, the place or the
/// key are not those it was sealed with, or it is shorter than [`OVERHEAD`].
pub fn open(key: &DataKey, aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>, SealError> {
    let tampered = || SealError::Tampered {
        what: what.to_string(),
    };
    if sealed.len() < OVERHEAD {
        return Err(tampered());
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| tampered())?;
    let mut buf = body.to_vec();
    let plain_len = key
        .aead()?
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| tampered())?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_frame_opens_only_with_its_key_at_its_place() {
        let key = DataKey::random().unwrap();
        let plain = b"eight kilobytes of a page, say".to_vec();
        let aad = frame_aad("data/backup_set_1_full/part_0/a1/obj_0", 4096);
        let sealed = seal(&key, frame_nonce(0, 1, 7), &aad, &plain).unwrap();
        assert_eq!(sealed.len(), plain.len() + OVERHEAD);
        assert_eq!(open(&key, &aad, &sealed, "f").unwrap(), plain);
        // Another key, another place (a moved or swapped frame), a flipped byte.
        let other = DataKey::random().unwrap();
        assert!(matches!(
            open(&other, &aad, &sealed, "f"),
            Err(SealError::Tampered { .. })
        ));
        let moved = frame_aad("data/backup_set_1_full/part_0/a1/obj_0", 8192);
        assert!(matches!(
            open(&key, &moved, &sealed, "f"),
            Err(SealError::Tampered { .. })
        ));
        let mut flipped = sealed.clone();
        flipped[OVERHEAD] ^= 1;
        assert!(matches!(
            open(&key, &aad, &flipped, "f"),
            Err(SealError::Tampered { .. })
        ));
        assert!(matches!(
            open(&key, &aad, &sealed[..10], "f"),
            Err(SealError::Tampered { .. })
        ));
    }

    #[test]
    fn a_password_wrap_opens_with_that_password_among_others_only() {
        let key = DataKey::random().unwrap();
        let wrap = wrap_with_password(&key, "right horse").unwrap();
        assert_eq!(wrap.mode, EncryptionMode::Password);
        let ring = Keyring::with_passwords(["wrong".to_string(), "right horse".to_string()]);
        assert_eq!(unwrap(&wrap, &ring, "set 1").unwrap(), key);
        let err = unwrap(
            &wrap,
            &Keyring::with_passwords(["wrong".to_string()]),
            "set 1",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("set 1: none of the 1"), "{err}");
        let err = unwrap(&wrap, &Keyring::default(), "set 1").unwrap_err();
        assert!(err.to_string().contains("SET DECRYPTION"), "{err}");
        // A forged wrap asking for a terabyte of memory is refused before argon2 runs.
        let mut forged = wrap.clone();
        if let Some(k) = forged.kdf.as_mut() {
            k.m_cost_kib = u32::MAX;
        }
        assert!(matches!(
            unwrap(&forged, &ring, "set 1"),
            Err(SealError::Invalid(_))
        ));
    }

    #[test]
    fn a_master_wrap_names_its_key_and_rotation_keeps_old_sets_readable() {
        let old = MasterKey::parse(&"ab".repeat(32)).unwrap();
        let new = MasterKey::parse(&format!("{}\n", "cd".repeat(32))).unwrap();
        assert_ne!(old.id, new.id);
        let key = DataKey::random().unwrap();
        let wrap = wrap_with_master(&key, &old).unwrap();
        assert_eq!(wrap.master_key_id.as_deref(), Some(old.id.as_str()));
        let mut ring = Keyring::default();
        ring.add_master(new.clone());
        let err = unwrap(&wrap, &ring, "piece 1").unwrap_err();
        assert!(err.to_string().contains(&old.id), "{err}");
        ring.add_master(old);
        assert_eq!(unwrap(&wrap, &ring, "piece 1").unwrap(), key);
        // Re-wrapping under the new key (rotation) reads back with the new key alone.
        let rewrapped = wrap_with_master(&key, &new).unwrap();
        let mut only_new = Keyring::default();
        only_new.add_master(new);
        assert_eq!(unwrap(&rewrapped, &only_new, "piece 1").unwrap(), key);
        assert!(MasterKey::parse("not hex").is_err());
        assert!(MasterKey::parse("abcd").is_err());
    }

    #[test]
    fn password_files_hold_one_password_per_line() {
        assert_eq!(
            Keyring::parse_password_file("one\r\n\ntwo words\n"),
            vec!["one".to_string(), "two words".to_string()]
        );
    }
}
